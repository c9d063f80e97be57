package boot

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Machine types that [Start] knows how to assemble.
const (
	// MachineQ35 is the PCI machine: vhost-user-fs-pci, device 1af4:105a.
	MachineQ35 = "q35"
	// MachinePC is the i440fx PCI machine, with the same devices as q35.
	MachinePC = "pc"
	// MachineMicroVM has no PCI: vhost-user-fs-device on virtio-mmio (modern), announced via ACPI.
	MachineMicroVM = "microvm"
)

// qemuArgs assembles the QEMU command line (without argv[0]) for cfg, whose defaults are
// already filled in; sockets[i] is the vhost-user socket of cfg.Shares[i].
func qemuArgs(cfg *VMConfig, sockets []string, tscKHz int) ([]string, error) {
	mem := fmt.Sprintf("%dM", cfg.MemoryMiB)
	args := []string{"-accel", "tcg"}
	pci := true
	switch cfg.Machine {
	case MachineQ35, MachinePC:
		args = append(args, "-machine", cfg.Machine)
	case MachineMicroVM:
		pci = false
		args = append(args, "-machine", "microvm,memory-backend=mem,pit=on,pic=on,rtc=on",
			"-global", "virtio-mmio.force-legacy=false")
	default:
		return nil, fmt.Errorf("boot: unknown machine %q (want %s, %s or %s)", cfg.Machine, MachineQ35, MachinePC, MachineMicroVM)
	}
	if cfg.CPU != "" {
		args = append(args, "-cpu", cfg.CPU)
	}
	args = append(args,
		"-smp", strconv.Itoa(cfg.CPUs),
		"-m", mem,
		// vhost-user needs guest RAM in shared, fd-backed memory.
		"-object", "memory-backend-memfd,id=mem,size="+mem+",share=on",
	)
	if pci {
		args = append(args, "-numa", "node,memdev=mem")
	}
	args = append(args,
		// Thread names ("CPU 0/TCG" for a vCPU), so that a host tool can tell the vCPU
		// threads from QEMU's I/O threads (the bench pins and prioritizes them apart).
		"-name", "govirtiofs,debug-threads=on",
		"-nodefaults", "-no-user-config", "-display", "none",
		"-serial", "stdio", "-no-reboot",
		"-kernel", cfg.Kernel, "-initrd", cfg.Initrd,
		"-append", strings.Join(kernelCmdline(cfg, tscKHz), " "),
	)
	fsDev, p9Dev := "vhost-user-fs-pci", "virtio-9p-pci"
	if !pci {
		fsDev, p9Dev = "vhost-user-fs-device", "virtio-9p-device"
	}
	for i, sh := range cfg.Shares {
		id := fmt.Sprintf("vfs%d", i)
		args = append(args,
			"-chardev", "socket,id="+id+",path="+qemuOptEscape(sockets[i]),
			// queue-size: QEMU's default of 128 bounds the kernel's max_pages to 124
			// (one descriptor per page); 1024 (VIRTQUEUE_MAX_SIZE) lets it reach 256,
			// as govirtiofs does over any queue size. Every device gets it, so the
			// kernel's virtiofs and govirtiofs are compared on equal devices.
			"-device", fsDev+",chardev="+id+",tag="+qemuOptEscape(sh.Tag)+",queue-size=1024")
	}
	for i, sh := range cfg.NineP {
		id := fmt.Sprintf("p9%d", i)
		args = append(args,
			"-fsdev", "local,id="+id+",path="+qemuOptEscape(sh.Dir)+",security_model="+sh.SecurityModel,
			"-device", p9Dev+",fsdev="+id+",mount_tag="+qemuOptEscape(sh.Tag))
	}
	return append(args, cfg.QEMUArgs...), nil
}

// kernelCmdline returns the guest kernel's arguments.
func kernelCmdline(cfg *VMConfig, tscKHz int) []string {
	c := []string{"console=ttyS0", "quiet", "panic=-1"}
	if cfg.Hugepages > 0 {
		c = append(c, fmt.Sprintf("hugepages=%d", cfg.Hugepages))
	}
	if cfg.Machine == MachineMicroVM && tscKHz > 0 {
		// tsc_early_khz: without it the kernel hangs calibrating the TSC against the PIT under TCG.
		// tsc=reliable: microvm has no HPET or ACPI PM timer to check the TSC against; under load the
		// clocksource watchdog judged it unstable and fell back to jiffies (4 ms steps).
		c = append(c, fmt.Sprintf("tsc_early_khz=%d", tscKHz), "tsc=reliable")
	}
	return append(c, cfg.Cmdline...)
}

// qemuOptEscape doubles commas, QEMU's escape inside option values.
func qemuOptEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// hostTSCKHz estimates the host TSC frequency from the first "cpu MHz" line of /proc/cpuinfo.
func hostTSCKHz() (int, error) {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseCPUMHz(bufio.NewScanner(f))
}

func parseCPUMHz(sc *bufio.Scanner) (int, error) {
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(k) != "cpu MHz" {
			continue
		}
		mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || mhz <= 0 {
			return 0, fmt.Errorf("boot: bad cpu MHz %q in /proc/cpuinfo", v)
		}
		return int(mhz * 1000), nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("boot: no cpu MHz line in /proc/cpuinfo")
}
