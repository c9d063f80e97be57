// Command demo is the guest program that "govirtiofs run" boots when given no --prog. It opens the
// share named by $GOVIRTIOFS_TAG with the govirtiofs userspace driver, lists its tree, reads a
// file, writes one back (the host prints it after the VM stops) and shows that the submount at
// /mnt has its own st_dev.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// WrittenFile is the file the demo writes into the share's root.
const WrittenFile = "written-by-guest.txt"

func main() {
	tag := os.Getenv("GOVIRTIOFS_TAG")
	if tag == "" {
		tag = "share"
	}
	os.Exit(demo(tag))
}

// listDevices prints the PCI devices as vendor:device, marking virtio-fs (1af4:105a), and the
// virtio-mmio windows that microvm announces through ACPI (LNRO0005 in /proc/iomem).
func listDevices() {
	listPCI()
	iomem, _ := os.ReadFile("/proc/iomem")
	for _, line := range strings.Split(string(iomem), "\n") {
		if rng, _, ok := strings.Cut(strings.TrimSpace(line), " : LNRO0005:"); ok {
			fmt.Printf("  virtio-mmio window %s\n", rng)
		}
	}
}

// listPCI prints the PCI devices as vendor:device, marking virtio-fs (1af4:105a).
func listPCI() {
	devs, _ := filepath.Glob("/sys/bus/pci/devices/*")
	for _, d := range devs {
		v, _ := os.ReadFile(filepath.Join(d, "vendor"))
		p, _ := os.ReadFile(filepath.Join(d, "device"))
		id := strings.TrimPrefix(strings.TrimSpace(string(v)), "0x") + ":" + strings.TrimPrefix(strings.TrimSpace(string(p)), "0x")
		mark := ""
		if id == "1af4:105a" {
			mark = "  <- virtio-fs"
		}
		fmt.Printf("  pci %s %s%s\n", filepath.Base(d), id, mark)
	}
}
