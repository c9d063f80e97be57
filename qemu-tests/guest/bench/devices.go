//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/govirtiofs/govirtiofs/virtio/dmamem"
	"github.com/govirtiofs/govirtiofs/virtio/pci"
)

// device is one virtio-fs PCI function and its tag.
type device struct {
	addr, tag string
}

// tagLen is the size of the tag field at the start of the virtio-fs configuration (virtio spec
// 1.2 section 5.11.4): UTF-8, NUL-padded.
const tagLen = 36

// probeTags returns every virtio-fs PCI device with its tag, in address order. It reads the
// configuration space through virtio/pci with no driver set-up (the tag is QEMU's, it needs no
// virtiofsd round trip), which resets each device: it runs before anything uses them.
//
// Errors: sysfs, the hugepage, a device that cannot be opened or read.
func probeTags() ([]device, error) {
	addrs, err := pci.Find(pci.DeviceFS)
	if err != nil {
		return nil, err
	}
	mem, err := dmamem.New(1)
	if err != nil {
		return nil, fmt.Errorf("DMA memory: %w", err)
	}
	defer mem.Close()
	var devs []device
	for _, addr := range addrs {
		t, err := pci.Open(addr, mem)
		if err != nil {
			return nil, err
		}
		cfg := make([]byte, tagLen)
		err = t.ReadConfig(0, cfg)
		t.Close()
		if err != nil {
			return nil, fmt.Errorf("PCI %s: reading the tag: %w", addr, err)
		}
		devs = append(devs, device{addr: addr, tag: strings.TrimRight(string(cfg), "\x00")})
	}
	return devs, nil
}

// noDriver is written into driver_override: no driver has this name, so no kernel driver binds
// the device (drivers/pci/pci-driver.c pci_match_device matches only the named driver).
const noDriver = "govirtiofs-userspace"

// keepFromKernel keeps kernel drivers, virtio_pci above all, from binding the PCI device at addr,
// which the userspace driver is to drive: pci.Open refuses a bound device, and binding would reset
// a device in use.
//
// Errors: sysfs.
func keepFromKernel(addr string) error {
	p := filepath.Join(pci.SysfsDevices, addr, "driver_override")
	if err := os.WriteFile(p, []byte(noDriver), 0); err != nil {
		return fmt.Errorf("keeping %s from kernel drivers: %w", addr, err)
	}
	return nil
}
