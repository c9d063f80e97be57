// Command hello is the smallest guest program: it prints the kernel's name and release, lists the
// PCI devices from sysfs and the virtio-mmio devices from /proc/iomem, and checks that the
// virtio-fs device is present (PCI 1af4:105a, or with -mmio an LNRO0005 virtio-mmio window, as
// microvm announces it through ACPI), exiting 0 if so and 1 if not. qemutests.TestHello boots it.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	mmio := len(os.Args) > 1 && os.Args[1] == "-mmio"
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		fmt.Fprintln(os.Stderr, "hello: uname:", err)
		os.Exit(2)
	}
	fmt.Printf("hello: uname %s %s %s\n", cstr(u.Sysname[:]), cstr(u.Release[:]), cstr(u.Machine[:]))
	fmt.Printf("hello: %s=%q args=%q\n", "GOVIRTIOFS_TAG", os.Getenv("GOVIRTIOFS_TAG"), os.Args[1:])

	if mmio {
		iomem, err := os.ReadFile("/proc/iomem")
		if err != nil {
			fmt.Fprintln(os.Stderr, "hello:", err)
			os.Exit(1)
		}
		n := 0
		for _, line := range strings.Split(string(iomem), "\n") {
			if strings.Contains(line, "LNRO0005") {
				fmt.Printf("hello: mmio %s\n", strings.TrimSpace(line))
				n++
			}
		}
		if n == 0 {
			fmt.Println("hello: no virtio-mmio device in /proc/iomem")
			os.Exit(1)
		}
		fmt.Printf("hello: %d virtio-mmio device(s) present\n", n)
		return
	}
	devs, _ := filepath.Glob("/sys/bus/pci/devices/*")
	found := false
	for _, d := range devs {
		id := readID(d, "vendor") + ":" + readID(d, "device")
		fmt.Printf("hello: pci %s %s\n", filepath.Base(d), id)
		if id == "1af4:105a" {
			found = true
		}
	}
	if !found {
		fmt.Println("hello: virtio-fs device 1af4:105a not found")
		os.Exit(1)
	}
	fmt.Println("hello: virtio-fs device 1af4:105a present")
}

// readID returns a sysfs id file without its 0x prefix, or "?".
func readID(dev, name string) string {
	b, err := os.ReadFile(filepath.Join(dev, name))
	if err != nil {
		return "?"
	}
	return strings.TrimPrefix(strings.TrimSpace(string(b)), "0x")
}

func cstr(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}
