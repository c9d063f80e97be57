package pci

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Virtio PCI identifiers (virtio spec 1.2 section 4.1.2): modern devices
// are 0x1040 + the virtio device id.
const (
	VendorVirtio = 0x1af4
	DeviceFS     = 0x1040 + 26 // virtio-fs, 0x105a
)

// SysfsDevices is where Linux lists PCI functions.
const SysfsDevices = "/sys/bus/pci/devices"

// ioresourceMem is IORESOURCE_MEM in the flags column of sysfs `resource`.
const ioresourceMem = 0x200

// BAR is one base address register as sysfs `resource` describes it.
type BAR struct {
	Start, End uint64 // physical addresses of the first and last byte
	Flags      uint64 // IORESOURCE_* bits
}

// Size is the BAR's length, 0 if it is unassigned.
func (b BAR) Size() uint64 {
	if b.End == 0 || b.End < b.Start {
		return 0
	}
	return b.End - b.Start + 1
}

// Memory reports whether the BAR decodes memory (not I/O ports).
func (b BAR) Memory() bool { return b.Flags&ioresourceMem != 0 }

// ParseResource decodes a sysfs `resource` file: one line per resource,
// "start end flags" in hex; the first six are the BARs.
//
// Errors: fewer than six lines, or a malformed line.
func ParseResource(b []byte) ([6]BAR, error) {
	var bars [6]BAR
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 6 {
		return bars, fmt.Errorf("pci: resource file has %d lines, want at least 6", len(lines))
	}
	for i := range bars {
		f := strings.Fields(lines[i])
		if len(f) != 3 {
			return bars, fmt.Errorf("pci: resource line %d %q: want 3 fields", i, lines[i])
		}
		var v [3]uint64
		for j, s := range f {
			n, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
			if err != nil {
				return bars, fmt.Errorf("pci: resource line %d %q: %v", i, lines[i], err)
			}
			v[j] = n
		}
		bars[i] = BAR{Start: v[0], End: v[1], Flags: v[2]}
	}
	return bars, nil
}

// memorySizes returns the size of each memory BAR, 0 for the others.
func memorySizes(bars [6]BAR) [6]uint64 {
	var s [6]uint64
	for i, b := range bars {
		if b.Memory() {
			s[i] = b.Size()
		}
	}
	return s
}

// Find returns the addresses ("0000:00:03.0") of the virtio PCI devices
// with the given PCI device id (DeviceFS for virtio-fs), sorted.
//
// Errors: sysfs is not mounted or unreadable.
func Find(deviceID uint16) ([]string, error) {
	return findIn(SysfsDevices, VendorVirtio, deviceID)
}

func findIn(dir string, vendor, device uint16) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("pci: listing devices: %w", err)
	}
	var found []string
	for _, e := range ents {
		v, err1 := readHex16(filepath.Join(dir, e.Name(), "vendor"))
		d, err2 := readHex16(filepath.Join(dir, e.Name(), "device"))
		if err1 == nil && err2 == nil && v == vendor && d == device {
			found = append(found, e.Name())
		}
	}
	sort.Strings(found)
	return found, nil
}

func readHex16(path string) (uint16, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(string(b)), "0x"), 16, 16)
	return uint16(n), err
}
