package mmio

import (
	"fmt"
	"sync"
)

// fakeDevice models the register semantics of a modern virtio-mmio device
// (virtio spec 1.2 section 4.2.2): selector registers, per-queue state,
// status with reset, config space with a generation counter and shared
// memory regions. It records every access so tests can check widths and
// order.
type fakeDevice struct {
	mu sync.Mutex // guards all fields

	magic, version, deviceID, vendorID uint32
	features                           uint64
	featuresSel, driverFeaturesSel     uint32
	driverFeatures                     uint64
	queueSel                           uint32
	queues                             []fakeQueue
	status                             uint32
	resetReads                         int // reads of Status that still show the old value after a reset
	config                             []byte
	generation                         uint32
	bumpGeneration                     int // config reads that change the generation
	shm                                map[uint32][2]uint64
	shmSel                             uint32
	notifies                           []uint32
	log                                []access
}

type fakeQueue struct {
	numMax, num, ready   uint32
	desc, driver, device uint64
}

// access is one register access: kind 'r' or 'w', width in bytes.
type access struct {
	kind  byte
	off   int
	width int
}

func (a access) String() string { return fmt.Sprintf("%c%d@%#x", a.kind, a.width, a.off) }

func newFakeDevice(queues int) *fakeDevice {
	d := &fakeDevice{
		magic: MagicValue, version: VersionModern, deviceID: DeviceIDFS, vendorID: 0x554d4551,
		features: 1<<32 | 1<<29 | 1<<28,
		shm:      make(map[uint32][2]uint64),
	}
	for range queues {
		d.queues = append(d.queues, fakeQueue{numMax: 1024})
	}
	return d
}

func (d *fakeDevice) queue() *fakeQueue {
	if int(d.queueSel) < len(d.queues) {
		return &d.queues[d.queueSel]
	}
	return nil
}

func setHalf(v *uint64, high bool, x uint32) {
	if high {
		*v = *v&0xffffffff | uint64(x)<<32
	} else {
		*v = *v&^0xffffffff | uint64(x)
	}
}

func (d *fakeDevice) read32(off int) uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.log = append(d.log, access{'r', off, 4})
	if off >= regConfig {
		return uint32(d.configByteLocked(off)) | uint32(d.configByteLocked(off+1))<<8 |
			uint32(d.configByteLocked(off+2))<<16 | uint32(d.configByteLocked(off+3))<<24
	}
	q := d.queue()
	switch off {
	case regMagicValue:
		return d.magic
	case regVersion:
		return d.version
	case regDeviceID:
		return d.deviceID
	case regVendorID:
		return d.vendorID
	case regDeviceFeatures:
		if d.featuresSel > 1 {
			return 0
		}
		return uint32(d.features >> (32 * d.featuresSel))
	case regQueueNumMax:
		if q == nil {
			return 0
		}
		return q.numMax
	case regQueueReady:
		if q == nil {
			return 0
		}
		return q.ready
	case regStatus:
		if d.resetReads > 0 {
			d.resetReads--
			return 1
		}
		return d.status
	case regConfigGeneration:
		return d.generation
	case regSHMLenLow, regSHMLenHigh, regSHMBaseLow, regSHMBaseHigh:
		r, ok := d.shm[d.shmSel]
		if !ok {
			r = [2]uint64{shmNone, 0}
		}
		v := r[0]
		if off >= regSHMBaseLow {
			v = r[1]
		}
		if off == regSHMLenHigh || off == regSHMBaseHigh {
			v >>= 32
		}
		return uint32(v)
	}
	return 0
}

func (d *fakeDevice) write32(off int, v uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.log = append(d.log, access{'w', off, 4})
	q := d.queue()
	switch off {
	case regDeviceFeaturesSel:
		d.featuresSel = v
	case regDriverFeaturesSel:
		d.driverFeaturesSel = v
	case regDriverFeatures:
		if d.driverFeaturesSel <= 1 {
			setHalf(&d.driverFeatures, d.driverFeaturesSel == 1, v)
		}
	case regQueueSel:
		d.queueSel = v
	case regQueueNum:
		if q != nil {
			q.num = v
		}
	case regQueueReady:
		if q != nil {
			q.ready = v & 1
		}
	case regQueueDescLow, regQueueDescHigh:
		if q != nil {
			setHalf(&q.desc, off == regQueueDescHigh, v)
		}
	case regQueueDriverLow, regQueueDriverHigh:
		if q != nil {
			setHalf(&q.driver, off == regQueueDriverHigh, v)
		}
	case regQueueDeviceLow, regQueueDeviceHigh:
		if q != nil {
			setHalf(&q.device, off == regQueueDeviceHigh, v)
		}
	case regQueueNotify:
		d.notifies = append(d.notifies, v)
	case regStatus:
		d.status = v
		if v == 0 {
			for i := range d.queues {
				d.queues[i] = fakeQueue{numMax: d.queues[i].numMax}
			}
			d.driverFeatures = 0
		}
	case regSHMSel:
		d.shmSel = v
	}
}

func (d *fakeDevice) read16(off int) uint16 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.log = append(d.log, access{'r', off, 2})
	return uint16(d.configByteLocked(off)) | uint16(d.configByteLocked(off+1))<<8
}

func (d *fakeDevice) read8(off int) uint8 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.log = append(d.log, access{'r', off, 1})
	return d.configByteLocked(off)
}

// configByteLocked reads config space; a pending bumpGeneration changes
// the generation, as a device updating its config mid-read would.
//
// Preconditions: d.mu is held.
func (d *fakeDevice) configByteLocked(off int) byte {
	if d.bumpGeneration > 0 {
		d.bumpGeneration--
		d.generation++
	}
	i := off - regConfig
	if i < 0 || i >= len(d.config) {
		return 0
	}
	return d.config[i]
}

// set changes the device's state under its lock.
func (d *fakeDevice) set(f func(d *fakeDevice)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

// accesses returns the access log and clears it.
func (d *fakeDevice) accesses() []access {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.log
	d.log = nil
	return l
}
