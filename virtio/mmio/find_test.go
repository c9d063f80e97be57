package mmio

import (
	"reflect"
	"strings"
	"testing"
)

// iomemMicrovmACPI is /proc/iomem as QEMU microvm with ACPI shows it: the
// virtio-mmio windows appear only under their ACPI hardware ID.
const iomemMicrovmACPI = `00000000-00000fff : Reserved
00001000-0009fbff : System RAM
000f0000-000fffff : Reserved
00100000-1fffffff : System RAM
  0d400000-0e1fffff : Kernel code
fea00000-fea001ff : LNRO0005:00
fea00200-fea003ff : LNRO0005:01
feb00000-feb00fff : Reserved
fec00000-fec003ff : IOAPIC 0
fee00000-fee00fff : Local APIC
`

func TestParseIomem(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Device
	}{
		{
			name: "microvm with ACPI",
			in:   iomemMicrovmACPI,
			want: []Device{
				{Base: 0xfea00000, Size: 512, IRQ: -1, Name: "LNRO0005:00", Source: SourceIomem},
				{Base: 0xfea00200, Size: 512, IRQ: -1, Name: "LNRO0005:01", Source: SourceIomem},
			},
		},
		{
			name: "command-line platform devices, nested",
			in:   "c0000000-febfffff : PCI Bus\n  feb00000-feb001ff : virtio-mmio.0\n    feb00000-feb001ff : virtio-mmio\n",
			want: []Device{
				{Base: 0xfeb00000, Size: 512, IRQ: -1, Name: "virtio-mmio.0", Source: SourceIomem},
				{Base: 0xfeb00000, Size: 512, IRQ: -1, Name: "virtio-mmio", Source: SourceIomem},
			},
		},
		{
			name: "device tree",
			in:   "0a003e00-0a003fff : a003e00.virtio_mmio\n",
			want: []Device{{Base: 0xa003e00, Size: 512, IRQ: -1, Name: "a003e00.virtio_mmio", Source: SourceIomem}},
		},
		{name: "unprivileged reader sees zeros", in: "00000000-00000000 : LNRO0005:00\n"},
		{name: "end before start", in: "feb001ff-feb00000 : LNRO0005:00\n"},
		{name: "not hex", in: "0xfeb00000-feb001ff : LNRO0005:00\nzz-feb001ff : LNRO0005:00\n"},
		{name: "no range", in: "feb00000 : LNRO0005:00\n"},
		{name: "huge", in: "100000000-1ffffffff : LNRO0005:00\n"},
		{name: "top of the address space", in: "ffffffffffffff00-ffffffffffffffff : LNRO0005:00\n",
			want: []Device{{Base: 0xffffffffffffff00, Size: 256, IRQ: -1, Name: "LNRO0005:00", Source: SourceIomem}}},
		{name: "other ACPI device", in: "fed00000-fed003ff : PNP0103:00\n"},
		{name: "empty", in: ""},
		{name: "no trailing newline", in: "fea00000-fea001ff : LNRO0005:00",
			want: []Device{{Base: 0xfea00000, Size: 512, IRQ: -1, Name: "LNRO0005:00", Source: SourceIomem}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseIomem([]byte(tt.in)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseIomem(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseCmdline(t *testing.T) {
	dev := func(arg string, base uint64, size, irq int) Device {
		return Device{Base: base, Size: size, IRQ: irq, Name: arg, Source: SourceCmdline}
	}
	tests := []struct {
		name    string
		in      string
		want    []Device
		wantErr string
	}{
		{
			name: "microvm acpi=off",
			in:   "earlyprintk=ttyS0 console=ttyS0 reboot=t virtio_mmio.device=512@0xfeb00e00:12 virtio_mmio.device=512@0xfeb00c00:11 root=/dev/ram0\n",
			want: []Device{
				dev("virtio_mmio.device=512@0xfeb00e00:12", 0xfeb00e00, 512, 12),
				dev("virtio_mmio.device=512@0xfeb00c00:11", 0xfeb00c00, 512, 11),
			},
		},
		{name: "after the init arguments", in: "console=ttyS0 -- -tag=myfs virtio_mmio.device=512@0xfeb00e00:12",
			want: []Device{dev("virtio_mmio.device=512@0xfeb00e00:12", 0xfeb00e00, 512, 12)}},
		{name: "hex size", in: "virtio_mmio.device=0x200@0xfeb00000:5", want: []Device{dev("virtio_mmio.device=0x200@0xfeb00000:5", 0xfeb00000, 512, 5)}},
		{name: "K suffix", in: "virtio_mmio.device=4K@0x1e000:74", want: []Device{dev("virtio_mmio.device=4K@0x1e000:74", 0x1e000, 4096, 74)}},
		{name: "lower k and id", in: "virtio_mmio.device=1k@0x1001e000:74:3", want: []Device{dev("virtio_mmio.device=1k@0x1001e000:74:3", 0x1001e000, 1024, 74)}},
		{name: "octal and decimal base", in: "virtio_mmio.device=01000@4096:010", want: []Device{dev("virtio_mmio.device=01000@4096:010", 4096, 512, 8)}},
		{name: "dashes in the name", in: "virtio-mmio.device=512@0xd0000000:9", want: []Device{dev("virtio-mmio.device=512@0xd0000000:9", 0xd0000000, 512, 9)}},
		{name: "quoted", in: `a="b c" "virtio_mmio.device=512@0xd0000000:9"`, want: []Device{dev("virtio_mmio.device=512@0xd0000000:9", 0xd0000000, 512, 9)}},
		{name: "hex E is a digit", in: "virtio_mmio.device=0x1E@0xd0000000:9", want: []Device{dev("virtio_mmio.device=0x1E@0xd0000000:9", 0xd0000000, 30, 9)}},
		{name: "other arguments only", in: "console=ttyS0 virtio_mmio.foo=1 virtio_mmio.device"},
		{name: "empty", in: ""},
		{name: "no at", in: "virtio_mmio.device=512", wantErr: "missing '@'"},
		{name: "no irq", in: "virtio_mmio.device=512@0xd0000000", wantErr: "want SIZE@BASE:IRQ"},
		{name: "too many fields", in: "virtio_mmio.device=512@0xd0000000:1:2:3", wantErr: "want SIZE@BASE:IRQ"},
		{name: "zero size", in: "virtio_mmio.device=0@0xd0000000:1", wantErr: "size is zero"},
		{name: "zero base", in: "virtio_mmio.device=512@0:1", wantErr: "base is zero"},
		{name: "huge size", in: "virtio_mmio.device=1G@0xd0000000:1", wantErr: "larger than"},
		{name: "overflowing suffix", in: "virtio_mmio.device=0xfffffffffffffffK@0xd0000000:1", wantErr: "overflows"},
		{name: "wraps", in: "virtio_mmio.device=512@0xffffffffffffff00:1", wantErr: "wraps"},
		{name: "negative irq", in: "virtio_mmio.device=512@0xd0000000:-1", wantErr: "irq"},
		{name: "huge irq", in: "virtio_mmio.device=512@0xd0000000:4294967296", wantErr: "irq"},
		{name: "bad id", in: "virtio_mmio.device=512@0xd0000000:1:x", wantErr: "id"},
		{name: "signed size", in: "virtio_mmio.device=+512@0xd0000000:1", wantErr: "size"},
		{name: "bad base", in: "virtio_mmio.device=512@0xzz:1", wantErr: "base"},
		{name: "bad octal", in: "virtio_mmio.device=512@09:1", wantErr: "base"},
		{name: "good and bad", in: "virtio_mmio.device=512@0xd0000000:1 virtio_mmio.device=x@1:1",
			want: []Device{dev("virtio_mmio.device=512@0xd0000000:1", 0xd0000000, 512, 1)}, wantErr: "size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCmdline(tt.in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseCmdline(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("ParseCmdline(%q) error %v, want nil", tt.in, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("ParseCmdline(%q) error %v, want one containing %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	cmd := []Device{{Base: 0x2000, Size: 512, IRQ: 5, Source: SourceCmdline}}
	iomem := []Device{
		{Base: 0x3000, Size: 512, IRQ: -1, Source: SourceIomem},
		{Base: 0x2000, Size: 512, IRQ: -1, Source: SourceIomem},
		{Base: 0x1000, Size: 512, IRQ: -1, Source: SourceIomem},
	}
	want := []Device{iomem[2], cmd[0], iomem[0]}
	if got := merge(cmd, iomem); !reflect.DeepEqual(got, want) {
		t.Errorf("merge = %+v, want %+v", got, want)
	}
}

// checkDevices holds for every window a parser returns.
func checkDevices(t *testing.T, in string, devs []Device) {
	t.Helper()
	for _, d := range devs {
		if d.Base == 0 || d.Size <= 0 || d.Size > maxWindow || d.Base+uint64(d.Size)-1 < d.Base {
			t.Fatalf("input %q gave bad window %+v", in, d)
		}
	}
}

func FuzzParseIomem(f *testing.F) {
	f.Add([]byte(iomemMicrovmACPI))
	f.Add([]byte("feb00000-feb001ff : virtio-mmio.0\n"))
	f.Add([]byte("ffffffffffffff00-ffffffffffffffff : LNRO0005:00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkDevices(t, string(in), ParseIomem(in))
	})
}

func FuzzParseCmdline(f *testing.F) {
	f.Add("virtio_mmio.device=512@0xfeb00e00:12 virtio_mmio.device=4K@0x1e000:74:2")
	f.Add(`"virtio-mmio.device=0x200@0xd0000000:1" x="y`)
	f.Add("virtio_mmio.device=1E@0xd0000000:1")
	f.Fuzz(func(t *testing.T, in string) {
		devs, err := ParseCmdline(in)
		checkDevices(t, in, devs)
		if err == nil && strings.Count(in, "device=") < len(devs) {
			t.Fatalf("input %q gave %d windows", in, len(devs))
		}
	})
}
