package pci

import (
	"encoding/binary"
	"fmt"
)

// Virtio structure types of a vendor-specific PCI capability, the cfg_type
// field (virtio spec 1.2 section 4.1.4).
const (
	CapCommonCfg       = 1 // VIRTIO_PCI_CAP_COMMON_CFG
	CapNotifyCfg       = 2 // VIRTIO_PCI_CAP_NOTIFY_CFG
	CapISRCfg          = 3 // VIRTIO_PCI_CAP_ISR_CFG
	CapDeviceCfg       = 4 // VIRTIO_PCI_CAP_DEVICE_CFG
	CapPCICfg          = 5 // VIRTIO_PCI_CAP_PCI_CFG
	CapSharedMemoryCfg = 8 // VIRTIO_PCI_CAP_SHARED_MEMORY_CFG
	CapVendorCfg       = 9 // VIRTIO_PCI_CAP_VENDOR_CFG
)

// PCI configuration space offsets and bits used here (PCI Local Bus 3.0).
const (
	cfgCommand    = 0x04 // 16-bit command register
	cfgStatus     = 0x06 // 16-bit status register
	cfgCapPointer = 0x34 // first capability

	cmdMemorySpace  = 1 << 1
	cmdBusMaster    = 1 << 2
	cmdINTxDisable  = 1 << 10
	statusCapList   = 1 << 4
	capIDVendor     = 0x09 // vendor-specific capability, which virtio uses
	configSpaceSize = 256  // the classic capability list lives here
	headerSize      = 0x40 // capabilities may not point into the header
)

// Sizes of the virtio capability structures (virtio spec 1.2 section
// 4.1.4): struct virtio_pci_cap, virtio_pci_notify_cap, virtio_pci_cap64.
const (
	capLen       = 16
	notifyCapLen = 20
	cap64Len     = 24
)

// commonCfgMinLen is the size of struct virtio_pci_common_cfg up to and
// including queue_device, all that this driver touches.
const commonCfgMinLen = 0x38

// Region is one virtio structure as a capability describes it: Length bytes
// at Offset in BAR.
type Region struct {
	Type   uint8  // cfg_type
	BAR    uint8  // 0-5; other values are reserved and such caps are ignored
	ID     uint8  // tells apart several caps of one type (shmid for shared memory)
	Offset uint64 // within the BAR
	Length uint64 // 0: the structure is absent
	Cap    uint8  // offset of the capability in configuration space
}

// Present reports whether the region was found.
func (r Region) Present() bool { return r.Length != 0 }

func (r Region) String() string {
	return fmt.Sprintf("cap@%#02x type %d bar %d id %d offset %#x length %#x", r.Cap, r.Type, r.BAR, r.ID, r.Offset, r.Length)
}

// Capabilities is what a device's capability list says about where its
// virtio structures are.
type Capabilities struct {
	Common Region // required
	Notify Region // required
	ISR    Region // optional (this driver polls)
	Device Region // optional (devices without configuration)

	// NotifyOffMultiplier scales queue_notify_off into an offset within
	// Notify (0: all queues share one address).
	NotifyOffMultiplier uint32

	// SharedMemory holds the first shared-memory region of each id, in
	// list order (virtio-fs: id 0 is the DAX cache).
	SharedMemory []Region

	// All is every virtio capability seen, in list order, including
	// ignored ones; for diagnostics.
	All []Region
}

// SharedMemoryRegion returns the shared-memory region with the given id.
func (c *Capabilities) SharedMemoryRegion(id uint8) (Region, bool) {
	for _, r := range c.SharedMemory {
		if r.ID == id {
			return r, true
		}
	}
	return Region{}, false
}

// ParseCapabilities walks the capability list in config (PCI configuration
// space, at least the 64-byte header; only the first 256 bytes are
// searched) and returns the virtio structures it names. barSizes holds the
// size of each memory BAR (0 for absent and I/O BARs); every structure the
// driver uses must lie inside its BAR.
//
// It follows the rules of virtio spec 1.2 section 4.1.4: the first
// capability of each type wins, caps naming a reserved BAR (> 5) are
// ignored, unknown types are ignored.
//
// Errors: a list that loops, points into the header or past configuration
// space, a truncated capability, a structure outside its BAR, or a device
// without common or notify configuration.
func ParseCapabilities(config []byte, barSizes [6]uint64) (Capabilities, error) {
	var c Capabilities
	if len(config) < headerSize {
		return c, fmt.Errorf("pci: configuration space is %d bytes, want at least %d", len(config), headerSize)
	}
	if len(config) > configSpaceSize {
		config = config[:configSpaceSize]
	}
	if binary.LittleEndian.Uint16(config[cfgStatus:])&statusCapList == 0 {
		return c, fmt.Errorf("pci: device has no capability list (status register %#04x)", binary.LittleEndian.Uint16(config[cfgStatus:]))
	}
	var seen [configSpaceSize]bool
	// The two low bits of capability pointers are reserved (PCI 3.0
	// section 6.7).
	for ptr := int(config[cfgCapPointer] &^ 3); ptr != 0; {
		if ptr < headerSize {
			return c, fmt.Errorf("pci: capability pointer %#x points into the configuration header", ptr)
		}
		if ptr+2 > len(config) {
			return c, fmt.Errorf("pci: capability pointer %#x is past configuration space (%d bytes)", ptr, len(config))
		}
		if seen[ptr] {
			return c, fmt.Errorf("pci: capability list loops at %#x", ptr)
		}
		seen[ptr] = true
		id, next := config[ptr], int(config[ptr+1]&^3)
		if id == capIDVendor {
			r, mult, err := parseVirtioCap(config, ptr)
			if err != nil {
				return c, err
			}
			c.All = append(c.All, r)
			if err := c.add(r, mult, barSizes); err != nil {
				return c, err
			}
		}
		ptr = next
	}
	if !c.Common.Present() {
		return c, fmt.Errorf("pci: no virtio common configuration capability (not a virtio 1.x device?)")
	}
	if c.Common.Length < commonCfgMinLen {
		return c, fmt.Errorf("pci: common configuration is %d bytes, want at least %d", c.Common.Length, commonCfgMinLen)
	}
	if !c.Notify.Present() {
		return c, fmt.Errorf("pci: no virtio notify capability")
	}
	if c.Notify.Length < 2 {
		return c, fmt.Errorf("pci: notify region is %d bytes, want at least 2", c.Notify.Length)
	}
	return c, nil
}

// parseVirtioCap decodes the virtio capability at ptr, returning the
// notify_off_multiplier for a notify capability.
func parseVirtioCap(config []byte, ptr int) (Region, uint32, error) {
	if ptr+capLen > len(config) {
		return Region{}, 0, fmt.Errorf("pci: virtio capability at %#x runs past configuration space", ptr)
	}
	n := int(config[ptr+2]) // cap_len
	if n < capLen {
		return Region{}, 0, fmt.Errorf("pci: virtio capability at %#x has cap_len %d, want at least %d", ptr, n, capLen)
	}
	if ptr+n > len(config) {
		return Region{}, 0, fmt.Errorf("pci: virtio capability at %#x (cap_len %d) runs past configuration space", ptr, n)
	}
	r := Region{
		Cap:    uint8(ptr),
		Type:   config[ptr+3],
		BAR:    config[ptr+4],
		ID:     config[ptr+5],
		Offset: uint64(binary.LittleEndian.Uint32(config[ptr+8:])),
		Length: uint64(binary.LittleEndian.Uint32(config[ptr+12:])),
	}
	var mult uint32
	switch r.Type {
	case CapNotifyCfg:
		if n < notifyCapLen {
			return r, 0, fmt.Errorf("pci: notify capability at %#x has cap_len %d, want at least %d", ptr, n, notifyCapLen)
		}
		mult = binary.LittleEndian.Uint32(config[ptr+16:])
	case CapSharedMemoryCfg:
		if n < cap64Len {
			return r, 0, fmt.Errorf("pci: shared memory capability at %#x has cap_len %d, want at least %d", ptr, n, cap64Len)
		}
		r.Offset |= uint64(binary.LittleEndian.Uint32(config[ptr+16:])) << 32
		r.Length |= uint64(binary.LittleEndian.Uint32(config[ptr+20:])) << 32
	}
	return r, mult, nil
}

// add records r if it is the first of its kind, after checking it against
// its BAR.
func (c *Capabilities) add(r Region, mult uint32, barSizes [6]uint64) error {
	var slot *Region
	switch r.Type {
	case CapCommonCfg:
		slot = &c.Common
	case CapNotifyCfg:
		slot = &c.Notify
	case CapISRCfg:
		slot = &c.ISR
	case CapDeviceCfg:
		slot = &c.Device
	case CapSharedMemoryCfg:
		if _, dup := c.SharedMemoryRegion(r.ID); dup {
			return nil
		}
	default:
		return nil // PCI cfg access, vendor and unknown types: not used
	}
	if r.BAR > 5 {
		return nil // reserved BAR: the spec says to ignore the capability
	}
	if slot != nil && slot.Present() {
		return nil // the first of each type wins
	}
	if r.Length == 0 {
		return nil // an empty structure is as good as none
	}
	size := barSizes[r.BAR]
	if size == 0 {
		return fmt.Errorf("pci: %v: BAR %d is absent or not a memory BAR", r, r.BAR)
	}
	if r.Offset > size || r.Length > size-r.Offset {
		return fmt.Errorf("pci: %v: runs past the end of BAR %d (%#x bytes)", r, r.BAR, size)
	}
	switch {
	case slot != nil:
		*slot = r
		if r.Type == CapNotifyCfg {
			c.NotifyOffMultiplier = mult
		}
	default:
		c.SharedMemory = append(c.SharedMemory, r)
	}
	return nil
}
