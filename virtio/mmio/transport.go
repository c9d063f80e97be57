package mmio

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govirtiofs/govirtiofs/virtio"
)

// Errors Open returns for windows it cannot drive.
var (
	// ErrNoDevice: the window's DeviceID register reads 0, an empty slot.
	ErrNoDevice = errors.New("mmio: no device behind this window")
	// ErrLegacy: the window has the version 1 (legacy) register layout.
	ErrLegacy = errors.New("mmio: legacy (version 1) virtio-mmio device; start QEMU with -global virtio-mmio.force-legacy=false")
)

// Limits of this transport.
const (
	// maxQueues bounds the queue probe; QEMU's VIRTIO_QUEUE_MAX is 1024.
	maxQueues = 1024
	// maxQueueSize is the largest queue size accepted (QEMU reports 1024).
	maxQueueSize = 1 << 15
	// configRetries bounds ConfigGeneration retries in ReadConfig.
	configRetries = 100
	// resetPolls bounds the reads of Status waiting for a reset to finish.
	resetPolls = 1000
	// watchInterval is how often a live device's Status is polled for
	// NEEDS_RESET (no interrupts: this driver polls); as pci's, long
	// enough that an idle device costs next to no CPU in a TCG guest (each
	// wake-up of an idle program costs about 1.5 ms there), short enough
	// to find a dead device within a second.
	watchInterval = 500 * time.Millisecond
)

// mapFunc maps size bytes of guest-physical memory at addr read-write and
// returns the mapping and a function releasing it.
type mapFunc func(addr uint64, size int) (mem []byte, unmap func() error, err error)

// Transport drives one modern virtio-mmio device. It implements
// virtio.Transport.
//
// Lock order: Transport.mu is the only lock; the register accesses under it
// never block.
type Transport struct {
	regs     registers     // immutable; valid until closed under mu
	base     uint64        // immutable: guest-physical address of regs
	size     int           // immutable: window length in bytes
	mem      virtio.Memory // immutable
	mapPhys  mapFunc       // immutable: maps shared memory regions
	unmap    func() error  // immutable: releases regs; may be nil
	deviceID uint32        // immutable
	vendorID uint32        // immutable
	interval time.Duration // immutable: NEEDS_RESET watch interval

	// numQueues is the probed queue count, -1 until probed. Atomic: the
	// probe runs under mu held for reading.
	numQueues atomic.Int64

	// done is closed once, by goneOnce, when the device is gone.
	done     chan struct{}
	goneOnce sync.Once

	// mu guards the fields below. Register accesses hold it for reading
	// so that Close (which holds it for writing) cannot unmap the window
	// under them; set-up is single-threaded by the Transport contract.
	mu        sync.RWMutex
	closing   bool                // Close has begun
	closed    bool                // the registers are unmapped
	shm       map[uint8]shmRegion // mapped shared memory regions
	watching  bool                // the NEEDS_RESET watcher runs
	stopWatch chan struct{}       // closed by Close to stop the watcher
	watchDone chan struct{}       // closed by the watcher when it exits
}

// shmRegion is one mapped shared memory region.
type shmRegion struct {
	mem   []byte
	addr  uint64
	unmap func() error
}

var _ virtio.Transport = (*Transport)(nil)

// newTransport checks the register block and builds a Transport over it.
// It only reads registers: a window whose device is driven by someone else
// is left untouched.
//
// Errors: ErrNoDevice, ErrLegacy, or an error naming a bad magic value or
// an unknown version. On error unmap has not been called.
func newTransport(regs registers, base uint64, size int, mem virtio.Memory, mapPhys mapFunc, unmap func() error) (*Transport, error) {
	if size < regConfig {
		return nil, fmt.Errorf("mmio: window at %#x is %d bytes, want at least %d", base, size, regConfig)
	}
	if magic := regs.read32(regMagicValue); magic != MagicValue {
		return nil, fmt.Errorf("mmio: window at %#x: magic value %#08x, want %#08x (\"virt\")", base, magic, MagicValue)
	}
	switch v := regs.read32(regVersion); v {
	case VersionModern:
	case VersionLegacy:
		return nil, fmt.Errorf("%w (window at %#x)", ErrLegacy, base)
	default:
		return nil, fmt.Errorf("mmio: window at %#x: unknown register layout version %d", base, v)
	}
	id := regs.read32(regDeviceID)
	if id == 0 {
		return nil, fmt.Errorf("%w (window at %#x)", ErrNoDevice, base)
	}
	t := &Transport{
		regs:     regs,
		base:     base,
		size:     size,
		mem:      mem,
		mapPhys:  mapPhys,
		unmap:    unmap,
		deviceID: id,
		vendorID: regs.read32(regVendorID),
		interval: watchInterval,
		done:     make(chan struct{}),
		shm:      make(map[uint8]shmRegion),
	}
	t.numQueues.Store(-1)
	return t, nil
}

// DeviceID is the virtio device type (26 for virtio-fs).
func (t *Transport) DeviceID() uint32 { return t.deviceID }

// VendorID is the device's vendor ID register ("QEMU" for QEMU).
func (t *Transport) VendorID() uint32 { return t.vendorID }

// Base is the guest-physical address of the register block.
func (t *Transport) Base() uint64 { return t.base }

// lock takes mu for reading and fails if the transport is closed.
func (t *Transport) lock() error {
	t.mu.RLock()
	if t.closed {
		t.mu.RUnlock()
		return fmt.Errorf("mmio: transport closed: %w", virtio.ErrDeviceGone)
	}
	return nil
}

// gone closes done once.
func (t *Transport) gone() {
	t.goneOnce.Do(func() { close(t.done) })
}

// DeviceFeatures implements virtio.Transport.DeviceFeatures: the two 32-bit
// halves selected through DeviceFeaturesSel.
func (t *Transport) DeviceFeatures() (uint64, error) {
	if err := t.lock(); err != nil {
		return 0, err
	}
	defer t.mu.RUnlock()
	return t.deviceFeaturesLocked(), nil
}

// Preconditions: t.mu is held.
func (t *Transport) deviceFeaturesLocked() uint64 {
	t.regs.write32(regDeviceFeaturesSel, 0)
	lo := t.regs.read32(regDeviceFeatures)
	t.regs.write32(regDeviceFeaturesSel, 1)
	hi := t.regs.read32(regDeviceFeatures)
	return uint64(hi)<<32 | uint64(lo)
}

// SetDriverFeatures implements virtio.Transport.SetDriverFeatures.
//
// Errors: features not offered by the device.
func (t *Transport) SetDriverFeatures(features uint64) error {
	if err := t.lock(); err != nil {
		return err
	}
	defer t.mu.RUnlock()
	if extra := features &^ t.deviceFeaturesLocked(); extra != 0 {
		return fmt.Errorf("mmio: driver features %#x not offered by the device", extra)
	}
	t.regs.write32(regDriverFeaturesSel, 0)
	t.regs.write32(regDriverFeatures, uint32(features))
	t.regs.write32(regDriverFeaturesSel, 1)
	t.regs.write32(regDriverFeatures, uint32(features>>32))
	return nil
}

// Status implements virtio.Transport.Status. A status with NEEDS_RESET set
// closes Done.
func (t *Transport) Status() (uint8, error) {
	if err := t.lock(); err != nil {
		return 0, err
	}
	defer t.mu.RUnlock()
	s := uint8(t.regs.read32(regStatus))
	if s&virtio.StatusNeedsReset != 0 {
		t.gone()
	}
	return s, nil
}

// SetStatus implements virtio.Transport.SetStatus. Writing 0 resets the
// device and waits until Status reads back 0 (virtio spec 1.2 section
// 4.2.3.1). Setting DRIVER_OK starts a watcher that polls Status for
// NEEDS_RESET and closes Done when the device sets it.
//
// Errors: the device does not finish a reset.
func (t *Transport) SetStatus(status uint8) error {
	if err := t.lock(); err != nil {
		return err
	}
	t.regs.write32(regStatus, uint32(status))
	if status == 0 {
		defer t.mu.RUnlock()
		for range resetPolls {
			if t.regs.read32(regStatus) == 0 {
				return nil
			}
		}
		return fmt.Errorf("mmio: device at %#x did not finish its reset", t.base)
	}
	t.mu.RUnlock()
	if status&virtio.StatusDriverOK != 0 {
		t.startWatch()
	}
	return nil
}

// startWatch starts the NEEDS_RESET watcher unless it runs already.
func (t *Transport) startWatch() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing || t.watching || t.interval <= 0 {
		return
	}
	t.watching = true
	t.stopWatch = make(chan struct{})
	t.watchDone = make(chan struct{})
	go t.watch(t.stopWatch, t.watchDone)
}

// watch polls Status until stop is closed or the device is gone.
func (t *Transport) watch(stop <-chan struct{}, exited chan<- struct{}) {
	defer close(exited)
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.done:
			return
		case <-tick.C:
			if _, err := t.Status(); err != nil {
				return
			}
		}
	}
}

// ReadConfig implements virtio.Transport.ReadConfig. A read of 1, 2, 4 or 8
// bytes at an offset aligned to its size (4 for 8) is taken to be one field
// and read with accesses of its width (8 bytes as two 32-bit halves); any
// other read is done byte by byte, as byte arrays such as the virtio-fs tag
// require (virtio spec 1.2 section 4.2.2.2). Reads are repeated until
// ConfigGeneration is the same before and after (section 2.5.1).
//
// Errors: the range lies outside the configuration space of this window, or
// the device keeps changing the configuration.
func (t *Transport) ReadConfig(off int, p []byte) error {
	if err := t.lock(); err != nil {
		return err
	}
	defer t.mu.RUnlock()
	space := t.size - regConfig
	if off < 0 || off > space || len(p) > space-off {
		return fmt.Errorf("mmio: config read of %d bytes at %d outside the %d-byte config space", len(p), off, space)
	}
	for range configRetries {
		before := t.regs.read32(regConfigGeneration)
		t.readConfigOnceLocked(regConfig+off, p)
		if t.regs.read32(regConfigGeneration) == before {
			return nil
		}
	}
	return fmt.Errorf("mmio: config of device at %#x changed on each of %d reads", t.base, configRetries)
}

// readConfigOnceLocked reads p from the register offset off.
//
// Preconditions: t.mu is held; off and len(p) lie inside the window.
func (t *Transport) readConfigOnceLocked(off int, p []byte) {
	switch {
	case len(p) == 2 && off%2 == 0:
		v := t.regs.read16(off)
		p[0], p[1] = byte(v), byte(v>>8)
	case len(p) == 4 && off%4 == 0:
		putLE32(p, t.regs.read32(off))
	case len(p) == 8 && off%4 == 0:
		putLE32(p[:4], t.regs.read32(off))
		putLE32(p[4:], t.regs.read32(off+4))
	default:
		for i := range p {
			p[i] = t.regs.read8(off + i)
		}
	}
}

func putLE32(p []byte, v uint32) {
	p[0], p[1], p[2], p[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

// NumQueues implements virtio.Transport.NumQueues: the queues are probed,
// once, by selecting each index until QueueNumMax reads 0. It is 0 after
// Close.
func (t *Transport) NumQueues() int {
	if t.lock() != nil {
		return 0
	}
	defer t.mu.RUnlock()
	return t.numQueuesLocked()
}

// numQueuesLocked probes the queues on first use. The probe writes only
// QueueSel; the count is cached because the set of queues is fixed.
//
// Preconditions: t.mu is held.
func (t *Transport) numQueuesLocked() int {
	if n := t.numQueues.Load(); n >= 0 {
		return int(n)
	}
	n := 0
	for n < maxQueues {
		t.regs.write32(regQueueSel, uint32(n))
		if t.regs.read32(regQueueNumMax) == 0 {
			break
		}
		n++
	}
	t.numQueues.Store(int64(n))
	return n
}

// MaxQueueSize implements virtio.Transport.MaxQueueSize (QueueNumMax; QEMU
// reports 1024 for every queue).
//
// Errors: i is negative or not below NumQueues; ErrDeviceGone after Close.
func (t *Transport) MaxQueueSize(i int) (int, error) {
	if err := t.lock(); err != nil {
		return 0, err
	}
	defer t.mu.RUnlock()
	return t.maxQueueSizeLocked(i)
}

// Preconditions: t.mu is held.
func (t *Transport) maxQueueSizeLocked(i int) (int, error) {
	if n := t.numQueuesLocked(); i < 0 || i >= n {
		return 0, fmt.Errorf("mmio: queue %d does not exist (device has %d)", i, n)
	}
	t.regs.write32(regQueueSel, uint32(i))
	return int(min(t.regs.read32(regQueueNumMax), maxQueueSize)), nil
}

// EnableQueue implements virtio.Transport.EnableQueue (virtio spec 1.2
// section 4.2.3.2): select the queue, check it is not live, write its size
// and the three ring addresses as 32-bit halves, then set QueueReady.
//
// Errors: the queue does not exist or is live already; the size is not a
// power of two or exceeds QueueNumMax; a ring is too small or misaligned
// (descriptors 16, driver area 2, device area 4 bytes, section 2.7).
func (t *Transport) EnableQueue(i int, q virtio.QueueAddrs) error {
	if err := t.lock(); err != nil {
		return err
	}
	defer t.mu.RUnlock()
	max, err := t.maxQueueSizeLocked(i)
	if err != nil {
		return err
	}
	if q.Size <= 0 || q.Size&(q.Size-1) != 0 || q.Size > max {
		return fmt.Errorf("mmio: queue %d: size %d is not a power of two up to %d", i, q.Size, max)
	}
	for _, r := range []struct {
		name       string
		b          virtio.Buffer
		min, align int
	}{
		{"descriptor table", q.Desc, 16 * q.Size, 16},
		{"driver area", q.Avail, 6 + 2*q.Size, 2},
		{"device area", q.Used, 6 + 8*q.Size, 4},
	} {
		if len(r.b.Bytes) < r.min || r.b.Addr%uint64(r.align) != 0 {
			return fmt.Errorf("mmio: queue %d: %s of %d bytes at %#x, want %d bytes aligned to %d", i, r.name, len(r.b.Bytes), r.b.Addr, r.min, r.align)
		}
	}
	t.regs.write32(regQueueSel, uint32(i))
	if t.regs.read32(regQueueReady) != 0 {
		return fmt.Errorf("mmio: queue %d is live already", i)
	}
	t.regs.write32(regQueueNum, uint32(q.Size))
	t.write64Locked(regQueueDescLow, q.Desc.Addr)
	t.write64Locked(regQueueDriverLow, q.Avail.Addr)
	t.write64Locked(regQueueDeviceLow, q.Used.Addr)
	t.regs.write32(regQueueReady, 1)
	return nil
}

// write64Locked writes v to the Low/High register pair at off.
//
// Preconditions: t.mu is held.
func (t *Transport) write64Locked(off int, v uint64) {
	t.regs.write32(off, uint32(v))
	t.regs.write32(off+4, uint32(v>>32))
}

// Notify implements virtio.Transport.Notify: write the queue index to
// QueueNotify. Safe for concurrent use.
//
// Errors: the transport is closed or the device gone (ErrDeviceGone).
func (t *Transport) Notify(i int) error {
	if err := t.lock(); err != nil {
		return err
	}
	defer t.mu.RUnlock()
	select {
	case <-t.done:
		return fmt.Errorf("mmio: device at %#x needs a reset: %w", t.base, virtio.ErrDeviceGone)
	default:
	}
	if i < 0 || i >= maxQueues {
		return fmt.Errorf("mmio: notify of queue %d out of range", i)
	}
	t.regs.write32(regQueueNotify, uint32(i))
	return nil
}

// Memory implements virtio.Transport.Memory.
func (t *Transport) Memory() virtio.Memory { return t.mem }

// SharedMemory implements virtio.Transport.SharedMemory through the SHMSel,
// SHMLen and SHMBase registers (virtio spec 1.2 section 4.2.2). A length of
// all ones (or 0, which devices without the registers read as) means no
// region. The region is mapped on first use and stays mapped until Close;
// the caller must not use it after Close.
func (t *Transport) SharedMemory(id uint8) (region []byte, addr uint64, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, 0, false
	}
	if r, ok := t.shm[id]; ok {
		return r.mem, r.addr, true
	}
	t.regs.write32(regSHMSel, uint32(id))
	length := uint64(t.regs.read32(regSHMLenHigh))<<32 | uint64(t.regs.read32(regSHMLenLow))
	base := uint64(t.regs.read32(regSHMBaseHigh))<<32 | uint64(t.regs.read32(regSHMBaseLow))
	if length == shmNone || length == 0 || length > uint64(maxInt) || base > ^uint64(0)-length+1 || t.mapPhys == nil {
		return nil, 0, false
	}
	mem, unmap, err := t.mapPhys(base, int(length))
	if err != nil {
		return nil, 0, false
	}
	t.shm[id] = shmRegion{mem: mem, addr: base, unmap: unmap}
	return mem, base, true
}

const maxInt = int(^uint(0) >> 1)

// Done implements virtio.Transport.Done: closed on Close, or once Status
// shows NEEDS_RESET (read by Status or by the watcher DRIVER_OK starts).
func (t *Transport) Done() <-chan struct{} { return t.done }

// Close implements virtio.Transport.Close: it resets the device, unmaps the
// shared memory regions and the registers and closes Done. Closing twice
// returns nil; so does a Close racing with the first.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closing {
		t.mu.Unlock()
		return nil
	}
	t.closing = true
	stop, exited := t.stopWatch, t.watchDone
	t.mu.Unlock()
	if stop != nil {
		// The watcher takes mu through Status: stop it before taking mu.
		close(stop)
		<-exited
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	t.regs.write32(regStatus, 0)
	var errs []error
	for id, r := range t.shm {
		if r.unmap != nil {
			errs = append(errs, r.unmap())
		}
		delete(t.shm, id)
	}
	if t.unmap != nil {
		errs = append(errs, t.unmap())
	}
	t.gone()
	return errors.Join(errs...)
}
