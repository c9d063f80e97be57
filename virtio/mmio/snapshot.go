package mmio

import "fmt"

// Snapshot is the readable registers of a device, for diagnostics and
// logs. Reading them has no side effect on the device.
type Snapshot struct {
	Magic, Version, DeviceID, VendorID uint32
	DeviceFeatures                     uint64
	Status, InterruptStatus            uint32
	ConfigGeneration                   uint32
	QueueNumMax                        []uint32 // per queue, as NumQueues probed
	SHMLen, SHMBase                    uint64   // shared memory region 0; SHMLen all ones: none
}

// String formats the registers as "name=value" pairs.
func (s Snapshot) String() string {
	return fmt.Sprintf("magic=%#08x version=%d deviceid=%d vendorid=%#08x features=%#x status=%#x isr=%#x generation=%d queuenummax=%v shm0len=%#x shm0base=%#x",
		s.Magic, s.Version, s.DeviceID, s.VendorID, s.DeviceFeatures, s.Status, s.InterruptStatus, s.ConfigGeneration, s.QueueNumMax, s.SHMLen, s.SHMBase)
}

// Snapshot reads the device's readable registers. It writes only selector
// registers (features, queue and shared memory selectors), so it must not
// run concurrently with set-up.
//
// Errors: the transport is closed (ErrDeviceGone).
func (t *Transport) Snapshot() (Snapshot, error) {
	if err := t.lock(); err != nil {
		return Snapshot{}, err
	}
	defer t.mu.RUnlock()
	s := Snapshot{
		Magic:            t.regs.read32(regMagicValue),
		Version:          t.regs.read32(regVersion),
		DeviceID:         t.regs.read32(regDeviceID),
		VendorID:         t.regs.read32(regVendorID),
		DeviceFeatures:   t.deviceFeaturesLocked(),
		Status:           t.regs.read32(regStatus),
		InterruptStatus:  t.regs.read32(regInterruptStatus),
		ConfigGeneration: t.regs.read32(regConfigGeneration),
	}
	for i := range t.numQueuesLocked() {
		t.regs.write32(regQueueSel, uint32(i))
		s.QueueNumMax = append(s.QueueNumMax, t.regs.read32(regQueueNumMax))
	}
	t.regs.write32(regSHMSel, 0)
	s.SHMLen = uint64(t.regs.read32(regSHMLenHigh))<<32 | uint64(t.regs.read32(regSHMLenLow))
	s.SHMBase = uint64(t.regs.read32(regSHMBaseHigh))<<32 | uint64(t.regs.read32(regSHMBaseLow))
	return s, nil
}
