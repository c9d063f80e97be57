package mmio

import (
	"unsafe"

	"github.com/govirtiofs/govirtiofs/virtio/internal/reg"
)

// Register offsets of the virtio-mmio version 2 layout (virtio spec 1.2
// section 4.2.2, table "MMIO Device Register Layout"). Every register is 32
// bits wide and must be accessed with aligned 32-bit loads and stores.
const (
	regMagicValue        = 0x000 // R: 0x74726976, "virt" in little endian
	regVersion           = 0x004 // R: 2 (1 is the legacy layout)
	regDeviceID          = 0x008 // R: virtio device type, 0 = empty slot
	regVendorID          = 0x00c // R
	regDeviceFeatures    = 0x010 // R: 32 feature bits selected by DeviceFeaturesSel
	regDeviceFeaturesSel = 0x014 // W
	regDriverFeatures    = 0x020 // W: 32 feature bits selected by DriverFeaturesSel
	regDriverFeaturesSel = 0x024 // W
	regQueueSel          = 0x030 // W: the queue the Queue* registers refer to
	regQueueNumMax       = 0x034 // R: largest queue size, 0 = queue absent
	regQueueNum          = 0x038 // W: queue size the driver uses
	regQueueReady        = 0x044 // RW
	regQueueNotify       = 0x050 // W: the index of a queue with new buffers
	regInterruptStatus   = 0x060 // R
	regInterruptACK      = 0x064 // W
	regStatus            = 0x070 // RW: device status, 0 resets
	regQueueDescLow      = 0x080 // W: descriptor table address
	regQueueDescHigh     = 0x084 // W
	regQueueDriverLow    = 0x090 // W: available ring address
	regQueueDriverHigh   = 0x094 // W
	regQueueDeviceLow    = 0x0a0 // W: used ring address
	regQueueDeviceHigh   = 0x0a4 // W
	regSHMSel            = 0x0ac // W: shared memory region selector
	regSHMLenLow         = 0x0b0 // R: region length, all ones = no region
	regSHMLenHigh        = 0x0b4 // R
	regSHMBaseLow        = 0x0b8 // R: region guest-physical address
	regSHMBaseHigh       = 0x0bc // R
	regConfigGeneration  = 0x0fc // R
	regConfig            = 0x100 // device-specific configuration space
)

// Values the transport checks.
const (
	// MagicValue is "virt" read as a little-endian 32-bit word.
	MagicValue = 0x74726976
	// VersionModern is the register layout this package drives (virtio 1.x).
	VersionModern = 2
	// VersionLegacy is the pre-1.0 layout (QueuePFN, GuestPageSize).
	VersionLegacy = 1
	// DeviceIDFS is the virtio-fs device type (virtio spec 1.2 section 5).
	DeviceIDFS = 26
	// shmNone is the SHMLen of a region that does not exist.
	shmNone = ^uint64(0)
)

// registers is a device's register block, accessed with exact-width loads
// and stores at byte offsets. window implements it over mapped memory; the
// tests implement it with a device model.
//
// Implementations never panic on an offset the transport computes; the
// transport checks caller-supplied offsets (config space) itself.
type registers interface {
	read32(off int) uint32
	write32(off int, v uint32)
	read16(off int) uint16
	read8(off int) uint8
}

// window is a register block mapped into memory (from /dev/mem in a guest,
// or any byte slice in tests). Accesses go through reg.Load32/reg.Store32 and
// friends, which are single instructions of exactly the asked width: MMIO
// must not be merged, split, elided or turned into read-modify-write.
type window struct {
	mem []byte // immutable; the mapping outlives the window
}

// ptr returns a pointer to off if an access of n bytes there is aligned and
// inside the window, else nil.
func (w window) ptr(off, n int) unsafe.Pointer {
	if off < 0 || off%n != 0 || off > len(w.mem)-n {
		return nil
	}
	return unsafe.Pointer(&w.mem[off])
}

func (w window) read32(off int) uint32 {
	p := w.ptr(off, 4)
	if p == nil {
		return 0
	}
	return reg.Load32((*uint32)(p))
}

func (w window) write32(off int, v uint32) {
	if p := w.ptr(off, 4); p != nil {
		reg.Store32((*uint32)(p), v)
	}
}

func (w window) read16(off int) uint16 {
	p := w.ptr(off, 2)
	if p == nil {
		return 0
	}
	return reg.Load16((*uint16)(p))
}

func (w window) read8(off int) uint8 {
	p := w.ptr(off, 1)
	if p == nil {
		return 0
	}
	return reg.Load8((*uint8)(p))
}
