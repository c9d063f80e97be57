// Command hello is the smallest guest program: it prints the kernel's name and release, lists the
// PCI devices from sysfs and checks that the virtio-fs device (1af4:105a) is present, exiting 0 if
// so and 1 if not. qemutests.TestHello boots it.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		fmt.Fprintln(os.Stderr, "hello: uname:", err)
		os.Exit(2)
	}
	fmt.Printf("hello: uname %s %s %s\n", cstr(u.Sysname[:]), cstr(u.Release[:]), cstr(u.Machine[:]))
	fmt.Printf("hello: %s=%q args=%q\n", "GOVIRTIOFS_TAG", os.Getenv("GOVIRTIOFS_TAG"), os.Args[1:])

	devs, err := filepath.Glob("/sys/bus/pci/devices/*")
	if err != nil || len(devs) == 0 {
		fmt.Fprintln(os.Stderr, "hello: no PCI devices in sysfs:", err)
		os.Exit(1)
	}
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
