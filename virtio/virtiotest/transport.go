package virtiotest

import (
	"encoding/binary"
	"fmt"
	"sync"
	"syscall"

	"github.com/govirtiofs/govirtiofs/virtio"
)

// Config describes a fake device. Zero fields take the defaults noted.
type Config struct {
	// Features offered; 0 means VERSION_1 | EVENT_IDX | INDIRECT_DESC.
	Features uint64
	// NumQueues; 0 means 2 (virtio-fs: hiprio and one request queue).
	NumQueues int
	// MaxQueueSize of every queue; 0 means 128 (QEMU's PCI limit).
	MaxQueueSize int
	// DeviceConfig is the device-specific configuration space (see
	// FSConfig).
	DeviceConfig []byte
	// MemorySize of the DMA memory; 0 means 16 MiB.
	MemorySize int
	// Handler serves every chain of every queue; nil writes nothing.
	Handler Handler
	// Async runs the Handler for each chain on its own goroutine, so that
	// chains complete out of order, as on a real multi-threaded device.
	Async bool
	// SharedMemory regions by id (the virtio-fs DAX window is 0), with
	// the device address of each region's first byte.
	SharedMemory map[uint8]SharedRegion
}

// SharedRegion is a virtio shared memory region.
type SharedRegion struct {
	Bytes []byte
	Addr  uint64
}

// FSConfig encodes a virtio-fs configuration space (virtio spec 1.2
// section 5.11.4): tag[36], NUL-padded, and le32 num_request_queues.
func FSConfig(tag string, numRequestQueues int) []byte {
	b := make([]byte, 40)
	copy(b[:36], tag)
	binary.LittleEndian.PutUint32(b[36:], uint32(numRequestQueues))
	return b
}

// Transport is a fake virtio device implementing virtio.Transport.
type Transport struct {
	cfg  Config        // immutable after NewTransport
	mem  *Memory       // immutable
	done chan struct{} // immutable; closed by Disconnect or Close

	// mu guards the fields below.
	mu        sync.Mutex
	status    uint8
	driver    uint64 // driver features
	queues    map[int]*deviceQueue
	notifies  map[int]int
	gone      bool
	deviceErr error // the first chain error the device hit
}

var _ virtio.Transport = (*Transport)(nil)

// NewTransport returns a fake device as configured.
func NewTransport(cfg Config) *Transport {
	if cfg.Features == 0 {
		cfg.Features = virtio.FeatureVersion1 | virtio.FeatureEventIdx | virtio.FeatureIndirectDesc
	}
	if cfg.NumQueues == 0 {
		cfg.NumQueues = 2
	}
	if cfg.MaxQueueSize == 0 {
		cfg.MaxQueueSize = 128
	}
	if cfg.MemorySize == 0 {
		cfg.MemorySize = 16 << 20
	}
	if cfg.Handler == nil {
		cfg.Handler = func(_, _ [][]byte) int { return 0 }
	}
	return &Transport{
		cfg:      cfg,
		mem:      NewMemory(cfg.MemorySize),
		done:     make(chan struct{}),
		queues:   make(map[int]*deviceQueue),
		notifies: make(map[int]int),
	}
}

func (t *Transport) goneErr() error {
	return fmt.Errorf("virtiotest: %w", virtio.ErrDeviceGone)
}

// DeviceFeatures implements virtio.Transport.DeviceFeatures.
func (t *Transport) DeviceFeatures() (uint64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone {
		return 0, t.goneErr()
	}
	return t.cfg.Features, nil
}

// SetDriverFeatures implements virtio.Transport.SetDriverFeatures. A
// feature the device did not offer makes the next FEATURES_OK fail to stick,
// as section 3.1.1 describes.
func (t *Transport) SetDriverFeatures(features uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone {
		return t.goneErr()
	}
	t.driver = features
	return nil
}

// DriverFeatures returns what the driver last accepted.
func (t *Transport) DriverFeatures() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.driver
}

// Status implements virtio.Transport.Status.
func (t *Transport) Status() (uint8, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone {
		return 0, t.goneErr()
	}
	return t.status, nil
}

// SetStatus implements virtio.Transport.SetStatus: 0 resets the device
// (stopping its queues); FEATURES_OK sticks only if the driver's features
// are a subset of the device's.
func (t *Transport) SetStatus(status uint8) error {
	t.mu.Lock()
	if t.gone {
		t.mu.Unlock()
		return t.goneErr()
	}
	var stopped []*deviceQueue
	if status == 0 {
		for i, q := range t.queues {
			stopped = append(stopped, q)
			delete(t.queues, i)
		}
		t.driver = 0
	}
	if status&virtio.StatusFeaturesOK != 0 && t.driver&^t.cfg.Features != 0 {
		status &^= virtio.StatusFeaturesOK
	}
	t.status = status
	t.mu.Unlock()
	for _, q := range stopped {
		close(q.stop)
		q.wg.Wait()
	}
	return nil
}

// ReadConfig implements virtio.Transport.ReadConfig.
func (t *Transport) ReadConfig(off int, p []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone {
		return t.goneErr()
	}
	if off < 0 || off > len(t.cfg.DeviceConfig) || len(p) > len(t.cfg.DeviceConfig)-off {
		return fmt.Errorf("virtiotest: config read [%d, +%d) beyond %d bytes: %w", off, len(p), len(t.cfg.DeviceConfig), syscall.EINVAL)
	}
	copy(p, t.cfg.DeviceConfig[off:])
	return nil
}

// NumQueues implements virtio.Transport.NumQueues.
func (t *Transport) NumQueues() int { return t.cfg.NumQueues }

// MaxQueueSize implements virtio.Transport.MaxQueueSize.
func (t *Transport) MaxQueueSize(i int) (int, error) {
	if i < 0 || i >= t.cfg.NumQueues {
		return 0, nil
	}
	return t.cfg.MaxQueueSize, nil
}

// EnableQueue implements virtio.Transport.EnableQueue: the device reads
// the rings at q's device addresses, and starts serving the queue.
//
// Errors: EINVAL for a queue index out of range, a size above the maximum,
// rings outside the memory, or a call before FEATURES_OK.
func (t *Transport) EnableQueue(i int, q virtio.QueueAddrs) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone {
		return t.goneErr()
	}
	if i < 0 || i >= t.cfg.NumQueues || q.Size > t.cfg.MaxQueueSize || t.status&virtio.StatusFeaturesOK == 0 {
		return fmt.Errorf("virtiotest: enable queue %d of size %d (status %#x): %w", i, q.Size, t.status, syscall.EINVAL)
	}
	if _, ok := t.queues[i]; ok {
		return fmt.Errorf("virtiotest: queue %d already enabled: %w", i, syscall.EBUSY)
	}
	dq, err := newDeviceQueue(t.mem, i, q, t.driver)
	if err != nil {
		return fmt.Errorf("%w: %w", err, syscall.EINVAL)
	}
	dq.handler = t.cfg.Handler
	dq.async = t.cfg.Async
	dq.fail = t.fail
	t.queues[i] = dq
	dq.start()
	return nil
}

// fail records a device error and sets NEEDS_RESET, as a real device does
// when the driver breaks the ring rules (section 2.1.2).
func (t *Transport) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.deviceErr == nil {
		t.deviceErr = err
	}
	t.status |= virtio.StatusNeedsReset
}

// Err returns the first error the device hit walking the driver's rings
// (a malformed chain, an address outside memory), or nil.
func (t *Transport) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.deviceErr
}

// Notify implements virtio.Transport.Notify.
func (t *Transport) Notify(i int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone {
		return t.goneErr()
	}
	t.notifies[i]++
	if q, ok := t.queues[i]; ok {
		select {
		case q.kick <- struct{}{}:
		default: // a kick is already pending
		}
	}
	return nil
}

// Notifies is how many times the driver notified queue i.
func (t *Transport) Notifies(i int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.notifies[i]
}

// Interrupts is how many used entries of queue i the driver asked to be
// interrupted for (VIRTQ_AVAIL_F_NO_INTERRUPT clear, or used_event hit).
func (t *Transport) Interrupts(i int) int {
	t.mu.Lock()
	q := t.queues[i]
	t.mu.Unlock()
	if q == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.interrupts
}

// InjectUsed publishes a used entry with the given id and len on queue i
// without any chain behind it: a device bug or attack, for tests and
// fuzzing of the driver's used ring handling.
//
// Errors: EINVAL if queue i is not enabled.
func (t *Transport) InjectUsed(i int, id, length uint32) error {
	t.mu.Lock()
	q := t.queues[i]
	t.mu.Unlock()
	if q == nil {
		return fmt.Errorf("virtiotest: inject on queue %d, not enabled: %w", i, syscall.EINVAL)
	}
	q.publish(id, length)
	return nil
}

// Memory implements virtio.Transport.Memory.
func (t *Transport) Memory() virtio.Memory { return t.mem }

// Mem returns the device's memory with its device-side accessors.
func (t *Transport) Mem() *Memory { return t.mem }

// SharedMemory implements virtio.Transport.SharedMemory.
func (t *Transport) SharedMemory(id uint8) ([]byte, uint64, bool) {
	r, ok := t.cfg.SharedMemory[id]
	return r.Bytes, r.Addr, ok
}

// Done implements virtio.Transport.Done.
func (t *Transport) Done() <-chan struct{} { return t.done }

// Disconnect makes the device go away: Done closes, the queues stop, and
// every later call returns virtio.ErrDeviceGone. Used entries already
// published stay readable.
func (t *Transport) Disconnect() {
	t.mu.Lock()
	if t.gone {
		t.mu.Unlock()
		return
	}
	t.gone = true
	close(t.done)
	qs := t.queues
	t.queues = map[int]*deviceQueue{}
	t.mu.Unlock()
	for _, q := range qs {
		close(q.stop)
		q.wg.Wait()
	}
}

// Close implements virtio.Transport.Close; it disconnects the device and
// waits for its goroutines.
func (t *Transport) Close() error {
	t.Disconnect()
	return nil
}
