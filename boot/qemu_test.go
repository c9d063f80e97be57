package boot

import (
	"bufio"
	"slices"
	"strings"
	"testing"
)

func TestQEMUArgs(t *testing.T) {
	base := func(machine string) VMConfig {
		return VMConfig{
			Kernel: "/k/vmlinuz", Initrd: "/k/initrd.cpio", Machine: machine, CPUs: 2, MemoryMiB: 256,
			Hugepages: 8, Cmdline: []string{"x=1"},
			Shares: []Share{{Dir: "/s", Tag: "share"}},
			NineP:  []NinePShare{{Dir: "/n,m", Tag: "p9", SecurityModel: "passthrough"}},
		}
	}
	tests := []struct {
		machine string
		want    string
	}{
		{MachineQ35, "-accel tcg -machine q35 -smp 2 -m 256M -object memory-backend-memfd,id=mem,size=256M,share=on " +
			"-numa node,memdev=mem -name govirtiofs,debug-threads=on -nodefaults -no-user-config -display none -serial stdio -no-reboot " +
			"-kernel /k/vmlinuz -initrd /k/initrd.cpio -append console=ttyS0 quiet panic=-1 hugepages=8 x=1 " +
			"-chardev socket,id=vfs0,path=/run/v.sock -device vhost-user-fs-pci,chardev=vfs0,tag=share,queue-size=1024 " +
			"-fsdev local,id=p90,path=/n,,m,security_model=passthrough -device virtio-9p-pci,fsdev=p90,mount_tag=p9"},
		{MachineMicroVM, "-accel tcg -machine microvm,memory-backend=mem,pit=on,pic=on,rtc=on " +
			"-global virtio-mmio.force-legacy=false -smp 2 -m 256M -object memory-backend-memfd,id=mem,size=256M,share=on " +
			"-name govirtiofs,debug-threads=on -nodefaults -no-user-config -display none -serial stdio -no-reboot " +
			"-kernel /k/vmlinuz -initrd /k/initrd.cpio -append console=ttyS0 quiet panic=-1 hugepages=8 tsc_early_khz=2000000 tsc=reliable x=1 " +
			"-chardev socket,id=vfs0,path=/run/v.sock -device vhost-user-fs-device,chardev=vfs0,tag=share,queue-size=1024 " +
			"-fsdev local,id=p90,path=/n,,m,security_model=passthrough -device virtio-9p-device,fsdev=p90,mount_tag=p9"},
	}
	for _, tt := range tests {
		t.Run(tt.machine, func(t *testing.T) {
			cfg := base(tt.machine)
			args, err := qemuArgs(&cfg, []string{"/run/v.sock"}, 2000000)
			if err != nil {
				t.Fatal(err)
			}
			// The -append value is one argument; compare it as such.
			i := slices.Index(args, "-append")
			if i < 0 || strings.Count(args[i+1], " ") == 0 {
				t.Fatalf("no single -append argument in %q", args)
			}
			if got := strings.Join(args, " "); got != tt.want {
				t.Errorf("qemuArgs:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
	cfg := base("isapc")
	if _, err := qemuArgs(&cfg, []string{"/run/v.sock"}, 0); err == nil {
		t.Error("qemuArgs accepted machine isapc")
	}
}

func TestParseCPUMHz(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"processor\t: 0\ncpu MHz\t\t: 2095.078\n", 2095078, false},
		{"cpu MHz : 3000\n", 3000000, false},
		{"model name : x\n", 0, true},
		{"cpu MHz : fast\n", 0, true},
		{"cpu MHz : -1\n", 0, true},
	}
	for _, tt := range tests {
		got, err := parseCPUMHz(bufio.NewScanner(strings.NewReader(tt.in)))
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("parseCPUMHz(%q) = %d, %v; want %d, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
