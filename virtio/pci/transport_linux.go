package pci

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/virtio"
)

// Offsets in struct virtio_pci_common_cfg (virtio spec 1.2 section 4.1.4.3).
const (
	ccDeviceFeatureSelect = 0x00 // le32
	ccDeviceFeature       = 0x04 // le32
	ccDriverFeatureSelect = 0x08 // le32
	ccDriverFeature       = 0x0c // le32
	ccConfigMSIXVector    = 0x10 // le16
	ccNumQueues           = 0x12 // le16
	ccDeviceStatus        = 0x14 // u8
	ccConfigGeneration    = 0x15 // u8
	ccQueueSelect         = 0x16 // le16
	ccQueueSize           = 0x18 // le16
	ccQueueMSIXVector     = 0x1a // le16
	ccQueueEnable         = 0x1c // le16
	ccQueueNotifyOff      = 0x1e // le16
	ccQueueDesc           = 0x20 // le64
	ccQueueDriver         = 0x28 // le64
	ccQueueDevice         = 0x30 // le64

	noVector = 0xffff // VIRTIO_MSI_NO_VECTOR
)

// Timing of the status checks.
const (
	// resetTimeout bounds the wait for device_status to read 0 after a
	// reset (section 4.1.4.3.2).
	resetTimeout = 2 * time.Second
	// watchInterval is how often the watcher looks for NEEDS_RESET. The
	// status read is one trapped access, but each wake-up of an otherwise
	// idle Go program costs about 1.5 ms of CPU in a TCG guest (measured:
	// a bare 100 ms ticker used 1.5% of the vCPU, 500 ms 0.4-0.7%), so a
	// device nobody uses would cost 1.5% at 100 ms. 500 ms still finds a
	// dead device well within a second.
	watchInterval = 500 * time.Millisecond
	// generationRetries bounds ReadConfig's retries while the device keeps
	// changing its configuration.
	generationRetries = 100
)

// Transport is a virtio PCI device opened through sysfs; it implements
// virtio.Transport.
type Transport struct {
	addr string        // immutable: PCI address
	mem  virtio.Memory // immutable
	caps Capabilities  // immutable
	bars [6]BAR        // immutable
	dev  string        // immutable: sysfs directory
	nq   int           // immutable: num_queues at Open

	// common, notify and device are windows into maps; immutable, valid
	// while life is held for reading and closed is false.
	common, notify, device window

	// notifyOff[i] is queue i's offset in notify, or -1 before
	// EnableQueue(i). Atomic: set during set-up, read by Notify.
	notifyOff []atomic.Int64

	// mu serialises set-up: it guards the selector registers
	// (device_feature_select, driver_feature_select, queue_select).
	mu sync.Mutex

	// life guards closed and the BAR mappings: register accesses hold it
	// for reading, Close for writing.
	life   sync.RWMutex
	closed bool
	maps   [][]byte // BAR mappings to unmap on Close

	// shmMu guards shm.
	shmMu sync.Mutex
	shm   map[uint8]sharedMemory

	done     chan struct{} // closed once the device is gone
	doneOnce sync.Once
	stop     chan struct{} // closed by Close to end the watcher
	watched  chan struct{} // closed when the watcher has returned
}

// sharedMemory is a mapped shared-memory region.
type sharedMemory struct {
	region []byte
	addr   uint64
}

var _ virtio.Transport = (*Transport)(nil)

// Open takes over the virtio PCI device at addr (as Find returns it): it
// enables memory decoding and bus mastering with INTx off, parses the
// capability list, maps the BARs that hold the common, notify and device
// structures, and resets the device. mem is the DMA memory the driver's
// rings and buffers come from.
//
// Errors: the device is missing, bound to a kernel driver, not a virtio 1.x
// device, or its capabilities are malformed; sysfs access fails (not root).
func Open(addr string, mem virtio.Memory) (*Transport, error) {
	t, err := open(addr, mem)
	if err != nil {
		return nil, fmt.Errorf("pci: open %s: %w", addr, err)
	}
	return t, nil
}

func open(addr string, mem virtio.Memory) (*Transport, error) {
	if mem == nil {
		return nil, errors.New("no DMA memory")
	}
	if filepath.Base(addr) != addr || addr == "." || addr == ".." {
		return nil, fmt.Errorf("bad PCI address %q", addr)
	}
	dev := filepath.Join(SysfsDevices, addr)
	if drv, err := os.Readlink(filepath.Join(dev, "driver")); err == nil {
		return nil, fmt.Errorf("bound to kernel driver %s: unbind it first (echo %s > %s/unbind)", filepath.Base(drv), addr, drv)
	}
	res, err := os.ReadFile(filepath.Join(dev, "resource"))
	if err != nil {
		return nil, err
	}
	bars, err := ParseResource(res)
	if err != nil {
		return nil, err
	}
	cfg, err := os.OpenFile(filepath.Join(dev, "config"), os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer cfg.Close()
	config := make([]byte, configSpaceSize)
	if n, err := cfg.ReadAt(config, 0); n < headerSize {
		return nil, fmt.Errorf("reading configuration space: %d bytes: %v", n, err)
	}
	caps, err := ParseCapabilities(config, memorySizes(bars))
	if err != nil {
		return nil, err
	}
	// Memory space for the BARs, bus master for DMA, and INTx off: this
	// driver polls.
	cmd := binary.LittleEndian.Uint16(config[cfgCommand:]) | cmdMemorySpace | cmdBusMaster | cmdINTxDisable
	if _, err := cfg.WriteAt(binary.LittleEndian.AppendUint16(nil, cmd), cfgCommand); err != nil {
		return nil, fmt.Errorf("writing the command register: %w", err)
	}
	t := newTransport(addr, mem, caps, bars)
	t.dev = dev
	if err := t.mapStructures(); err != nil {
		t.unmapAll()
		return nil, err
	}
	if err := t.start(); err != nil {
		t.unmapAll()
		return nil, err
	}
	return t, nil
}

// newTransport returns a Transport whose windows are still to be set.
func newTransport(addr string, mem virtio.Memory, caps Capabilities, bars [6]BAR) *Transport {
	return &Transport{
		addr:    addr,
		mem:     mem,
		caps:    caps,
		bars:    bars,
		shm:     make(map[uint8]sharedMemory),
		done:    make(chan struct{}),
		stop:    make(chan struct{}),
		watched: make(chan struct{}),
	}
}

// start resets the device, learns the number of queues and starts the
// NEEDS_RESET watcher. Resetting first is step 1 of device initialisation
// (virtio spec 1.2 section 3.1.1), and clears a NEEDS_RESET left by a
// previous driver.
func (t *Transport) start() error {
	if err := t.resetLocked(); err != nil {
		return err
	}
	t.nq = int(t.common.read16(ccNumQueues))
	t.notifyOff = make([]atomic.Int64, t.nq)
	for i := range t.notifyOff {
		t.notifyOff[i].Store(-1)
	}
	go t.watch()
	return nil
}

// mapStructures maps, for each BAR that holds common, notify, ISR or
// device structures, the page-aligned span that covers them.
func (t *Transport) mapStructures() error {
	regions := []Region{t.caps.Common, t.caps.Notify, t.caps.ISR, t.caps.Device}
	page := uint64(os.Getpagesize())
	for bar := uint8(0); bar < 6; bar++ {
		lo, hi := ^uint64(0), uint64(0)
		for _, r := range regions {
			if r.Present() && r.BAR == bar {
				lo, hi = min(lo, r.Offset), max(hi, r.Offset+r.Length)
			}
		}
		if hi == 0 {
			continue
		}
		lo &^= page - 1
		b, err := t.mapBAR(bar, lo, hi-lo)
		if err != nil {
			return err
		}
		t.maps = append(t.maps, b)
		win := func(r Region) window {
			if !r.Present() || r.BAR != bar {
				return window{}
			}
			return window{b: b[r.Offset-lo : r.Offset-lo+r.Length : r.Offset-lo+r.Length]}
		}
		if w := win(t.caps.Common); w.b != nil {
			t.common = w
		}
		if w := win(t.caps.Notify); w.b != nil {
			t.notify = w
		}
		if w := win(t.caps.Device); w.b != nil {
			t.device = w
		}
	}
	return nil
}

// mapBAR maps n bytes at off (page-aligned) of BAR bar through its sysfs
// resource file, uncached.
func (t *Transport) mapBAR(bar uint8, off, n uint64) ([]byte, error) {
	page := uint64(os.Getpagesize())
	size := (n + page - 1) &^ (page - 1)
	if off%page != 0 || size == 0 || size > 1<<40 || off > 1<<40 {
		return nil, fmt.Errorf("mapping BAR %d: bad span %#x+%#x", bar, off, n)
	}
	name := filepath.Join(t.dev, fmt.Sprintf("resource%d", bar))
	f, err := os.OpenFile(name, os.O_RDWR|os.O_SYNC, 0)
	if err != nil {
		return nil, fmt.Errorf("mapping BAR %d: %w", bar, err)
	}
	defer f.Close()
	b, err := unix.Mmap(int(f.Fd()), int64(off), int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mapping BAR %d at %#x+%#x: %w", bar, off, size, err)
	}
	return b[:n:n], nil
}

func (t *Transport) unmapAll() {
	for _, b := range t.maps {
		unix.Munmap(b[:cap(b)])
	}
	t.maps = nil
	for id, s := range t.shm {
		unix.Munmap(s.region[:cap(s.region)])
		delete(t.shm, id)
	}
}

// Address is the device's PCI address.
func (t *Transport) Address() string { return t.addr }

// Capabilities returns what the capability list said.
func (t *Transport) Capabilities() Capabilities { return t.caps }

// BARs returns the device's BARs as sysfs reports them.
func (t *Transport) BARs() [6]BAR { return t.bars }

// alive takes life for reading; the caller must call t.life.RUnlock if it
// returns nil.
func (t *Transport) alive() error {
	t.life.RLock()
	if t.closed {
		t.life.RUnlock()
		return virtio.ErrDeviceGone
	}
	return nil
}

// gone closes Done.
func (t *Transport) gone() { t.doneOnce.Do(func() { close(t.done) }) }

// watch closes Done when the device sets NEEDS_RESET (or the function
// vanished and reads all ones).
func (t *Transport) watch() {
	defer close(t.watched)
	tick := time.NewTicker(watchInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
			if _, err := t.Status(); err != nil {
				return
			}
		}
	}
}

// DeviceFeatures implements virtio.Transport.DeviceFeatures.
func (t *Transport) DeviceFeatures() (uint64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.alive(); err != nil {
		return 0, err
	}
	defer t.life.RUnlock()
	t.common.write32(ccDeviceFeatureSelect, 0)
	lo := t.common.read32(ccDeviceFeature)
	t.common.write32(ccDeviceFeatureSelect, 1)
	hi := t.common.read32(ccDeviceFeature)
	return uint64(hi)<<32 | uint64(lo), nil
}

// SetDriverFeatures implements virtio.Transport.SetDriverFeatures.
func (t *Transport) SetDriverFeatures(features uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.alive(); err != nil {
		return err
	}
	defer t.life.RUnlock()
	t.common.write32(ccDriverFeatureSelect, 0)
	t.common.write32(ccDriverFeature, uint32(features))
	t.common.write32(ccDriverFeatureSelect, 1)
	t.common.write32(ccDriverFeature, uint32(features>>32))
	return nil
}

// Status implements virtio.Transport.Status. A status with NEEDS_RESET
// closes Done and returns ErrDeviceGone along with the status.
func (t *Transport) Status() (uint8, error) {
	if err := t.alive(); err != nil {
		return 0, err
	}
	s := t.common.read8(ccDeviceStatus)
	t.life.RUnlock()
	if s&virtio.StatusNeedsReset != 0 {
		t.gone()
		return s, fmt.Errorf("pci: %s: device status %#x: %w", t.addr, s, virtio.ErrDeviceGone)
	}
	return s, nil
}

// SetStatus implements virtio.Transport.SetStatus. Writing 0 resets the
// device and waits for the reset to finish.
func (t *Transport) SetStatus(status uint8) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.alive(); err != nil {
		return err
	}
	defer t.life.RUnlock()
	if status == 0 {
		return t.resetLocked()
	}
	t.common.write8(ccDeviceStatus, status)
	return nil
}

// resetLocked writes 0 to device_status and waits until it reads 0
// (virtio spec 1.2 section 4.1.4.3.2), then forgets the queues.
//
// Preconditions: t.mu is held or t is not yet shared; life is held for
// reading or t is not yet shared.
func (t *Transport) resetLocked() error {
	t.common.write8(ccDeviceStatus, 0)
	deadline := time.Now().Add(resetTimeout)
	var b virtio.Backoff
	for t.common.read8(ccDeviceStatus) != 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("pci: %s: device status still %#x %v after reset", t.addr, t.common.read8(ccDeviceStatus), resetTimeout)
		}
		b.Wait()
	}
	for i := range t.notifyOff {
		t.notifyOff[i].Store(-1)
	}
	return nil
}

// ReadConfig implements virtio.Transport.ReadConfig: it reads the device
// configuration with accesses of natural width and retries until
// config_generation is the same before and after (section 4.1.4.3.1).
func (t *Transport) ReadConfig(off int, p []byte) error {
	if err := t.alive(); err != nil {
		return err
	}
	defer t.life.RUnlock()
	if off < 0 || uint64(off)+uint64(len(p)) > uint64(len(t.device.b)) {
		return fmt.Errorf("pci: %s: config read of %d bytes at %d outside the %d-byte device configuration: %w", t.addr, len(p), off, len(t.device.b), syscall.EINVAL)
	}
	for range generationRetries {
		gen := t.common.read8(ccConfigGeneration)
		t.device.readConfig(uint64(off), p)
		if t.common.read8(ccConfigGeneration) == gen {
			return nil
		}
	}
	return fmt.Errorf("pci: %s: device configuration kept changing over %d reads: %w", t.addr, generationRetries, syscall.EIO)
}

// NumQueues implements virtio.Transport.NumQueues.
func (t *Transport) NumQueues() int { return t.nq }

// MaxQueueSize implements virtio.Transport.MaxQueueSize.
func (t *Transport) MaxQueueSize(i int) (int, error) {
	if i < 0 || i >= t.nq {
		return 0, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.alive(); err != nil {
		return 0, err
	}
	defer t.life.RUnlock()
	t.common.write16(ccQueueSelect, uint16(i))
	return int(t.common.read16(ccQueueSize)), nil
}

// EnableQueue implements virtio.Transport.EnableQueue (section 4.1.5.1.3).
func (t *Transport) EnableQueue(i int, q virtio.QueueAddrs) error {
	if i < 0 || i >= t.nq {
		return fmt.Errorf("pci: %s: queue %d of %d: %w", t.addr, i, t.nq, syscall.EINVAL)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.alive(); err != nil {
		return err
	}
	defer t.life.RUnlock()
	t.common.write16(ccQueueSelect, uint16(i))
	max := int(t.common.read16(ccQueueSize))
	if max == 0 {
		return fmt.Errorf("pci: %s: queue %d is absent: %w", t.addr, i, syscall.EINVAL)
	}
	if q.Size < 1 || q.Size > max || q.Size&(q.Size-1) != 0 {
		return fmt.Errorf("pci: %s: queue %d size %d: want a power of two up to %d: %w", t.addr, i, q.Size, max, syscall.EINVAL)
	}
	if t.common.read16(ccQueueEnable) != 0 {
		return fmt.Errorf("pci: %s: queue %d already enabled: %w", t.addr, i, syscall.EBUSY)
	}
	// queue_notify_off scaled by the multiplier must land inside the
	// notify structure (section 4.1.4.4); the device supplies both.
	off := uint64(t.common.read16(ccQueueNotifyOff)) * uint64(t.caps.NotifyOffMultiplier)
	if !t.notify.fits(off, 2) {
		return fmt.Errorf("pci: %s: queue %d notify offset %#x is outside the %d-byte notify structure: %w", t.addr, i, off, len(t.notify.b), syscall.EIO)
	}
	t.common.write16(ccQueueSize, uint16(q.Size))
	t.common.write16(ccQueueMSIXVector, noVector)
	t.common.write64(ccQueueDesc, q.Desc.Addr)
	t.common.write64(ccQueueDriver, q.Avail.Addr)
	t.common.write64(ccQueueDevice, q.Used.Addr)
	t.common.write16(ccQueueEnable, 1)
	t.notifyOff[i].Store(int64(off))
	return nil
}

// Notify implements virtio.Transport.Notify: it writes the queue index to
// the queue's notify address (section 4.1.5.2).
func (t *Transport) Notify(i int) error {
	if i < 0 || i >= len(t.notifyOff) {
		return fmt.Errorf("pci: %s: notify of queue %d of %d: %w", t.addr, i, t.nq, syscall.EINVAL)
	}
	off := t.notifyOff[i].Load()
	if off < 0 {
		return fmt.Errorf("pci: %s: notify of queue %d, which is not enabled: %w", t.addr, i, syscall.EINVAL)
	}
	if err := t.alive(); err != nil {
		return err
	}
	t.notify.write16(uint64(off), uint16(i))
	t.life.RUnlock()
	return nil
}

// Memory implements virtio.Transport.Memory.
func (t *Transport) Memory() virtio.Memory { return t.mem }

// SharedMemory implements virtio.Transport.SharedMemory: it maps the
// shared-memory region with the given id (a page-aligned region of its
// BAR) on first use. addr is the region's guest-physical address. ok is
// false also when the region cannot be mapped (an offset that is not
// page-aligned, a failed mmap) or after Close. The mapping lives until Close.
func (t *Transport) SharedMemory(id uint8) (region []byte, addr uint64, ok bool) {
	r, ok := t.caps.SharedMemoryRegion(id)
	if !ok {
		return nil, 0, false
	}
	if t.alive() != nil {
		return nil, 0, false
	}
	defer t.life.RUnlock()
	t.shmMu.Lock()
	defer t.shmMu.Unlock()
	if s, ok := t.shm[id]; ok {
		return s.region, s.addr, true
	}
	page := uint64(os.Getpagesize())
	if r.Offset%page != 0 {
		return nil, 0, false // a window must be page-aligned to be mapped
	}
	b, err := t.mapBAR(r.BAR, r.Offset, r.Length)
	if err != nil {
		return nil, 0, false
	}
	s := sharedMemory{region: b, addr: t.bars[r.BAR].Start + r.Offset}
	t.shm[id] = s
	return s.region, s.addr, true
}

// Done implements virtio.Transport.Done. The watcher checks the status
// every watchInterval (500 ms); every Status call checks it too.
func (t *Transport) Done() <-chan struct{} { return t.done }

// Close implements virtio.Transport.Close: it resets the device, unmaps
// the BARs and closes Done. The DMA memory stays the caller's to close.
func (t *Transport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.life.Lock()
	if t.closed {
		t.life.Unlock()
		return nil
	}
	err := t.resetLocked()
	t.closed = true
	t.shmMu.Lock()
	t.unmapAll()
	t.shmMu.Unlock()
	t.life.Unlock()
	close(t.stop)
	<-t.watched
	t.gone()
	return err
}
