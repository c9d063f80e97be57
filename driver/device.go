package driver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/govirtiofs/govirtiofs/fuse"
	"github.com/govirtiofs/govirtiofs/virtio"
)

// Virtio-fs configuration space layout (virtio spec 1.2 section 5.11.4).
const (
	tagLen               = 36 // tag: UTF-8, NUL-padded, not NUL-terminated when full
	numRequestQueuesOff  = 36 // le32
	configLen            = 40
	hiprioQueue          = 0
	defaultQueueSize     = 256
	defaultRequestQueues = 1
	fuseMaxMaxPages      = 256 // FUSE_MAX_MAX_PAGES
	resetTimeout         = time.Second
	drainTimeout         = time.Second
	// INDIRECT_DESC is not accepted: a request is a chain of two
	// buffers, which two ring descriptors hold as well as one descriptor
	// and a table, without the table's cache lookup here and its
	// translation in the device (a queue of 256 still holds 128 requests).
	// A zero-copy WRITE's longer chain goes into the ring directly too.
	acceptedFeatures      = virtio.FeatureVersion1
	fuseInHeaderLen       = 40
	fuseOutHeaderLen      = 16
	fuseUniqueOff         = 8 // unique is at bytes 8..16 of both headers
	fuseInHeaderOpcodeOff = 4
	fuseRelease           = 18 // FUSE_RELEASE
	fuseDestroy           = 38 // FUSE_DESTROY
)

// Options configure a Device. The zero value takes the defaults.
type Options struct {
	// RequestQueues is how many request queues to use, at most the
	// device's num_request_queues; 0 means 1.
	RequestQueues int
	// QueueSize is the size of every queue, at most what the transport
	// allows (rounded down to a power of two); 0 means 256.
	QueueSize int
	// Logger receives a line for each misbehaviour of the device; nil
	// means slog.Default().
	Logger *slog.Logger
	// Backoff paces the completion goroutines; the zero value takes
	// virtio.Backoff's defaults.
	Backoff virtio.Backoff
	// EventIdx negotiates VIRTIO_F_EVENT_IDX when the device offers it.
	// It is off by default: with it, libvhost-user (virtiofsd 7.2) signals
	// the call eventfd after the first completion on a freshly started
	// queue whatever used_event says, and QEMU starts a queue (and the
	// back end's queue thread, which takes a waiting request at once)
	// before it hands over that queue's call eventfd. A driver as quick as
	// this one has FUSE_INIT answered in between, and virtiofsd dies with
	// "fv_panic: libvhost-user: Error writing eventfd: Bad file
	// descriptor" (seen on the second to fourth bring-up of a device in
	// one VM). Without EVENT_IDX the driver sets VRING_AVAIL_F_NO_INTERRUPT
	// and the back end never signals. The price is a notification per
	// request even while the device is busy, which costs nothing when
	// requests come one at a time.
	EventIdx bool
	// Spin is how long a caller of RoundTrip polls the used ring for its
	// reply itself before it parks and leaves the polling to the
	// completion goroutine; 0 means DefaultSpin, a negative value means
	// never (always park).
	Spin time.Duration
	// RequestTimeout is how long a request (RoundTrip or Send) may go
	// without a reply before the device is taken for dead, as Linux 6.14's
	// FUSE request timeouts (fs/fuse max_request_timeout) abort the
	// connection: every waiter, every pending Send's done and every later
	// call get ENOTCONN, as when the transport loses the device. QEMU does
	// not tell a PCI or MMIO guest that virtiofsd died (no NEEDS_RESET),
	// so without it a request to a dead daemon waits forever. 0 means no
	// timeout. A request is found late by at most about a quarter of the
	// timeout plus a poll: the check piggybacks on polls that look at the
	// clock anyway (see checkTimeout), with no timer per request.
	RequestTimeout time.Duration
	// OnRoundTrip, if set, is called after each RoundTrip that got its
	// reply, with the request's FUSE opcode and its round trip: from just
	// before the request is published to the device (and the device
	// notified) until the reply is seen, without the copies into and out of
	// the DMA buffers. It runs on RoundTrip's caller and must be quick. It
	// is for measurements: unset, RoundTrip reads no clock.
	OnRoundTrip func(opcode uint32, d time.Duration)
	// UserPages, if set, lets RoundTrip hand the device a request's
	// large trailing data (a WRITE's) and a reply's large trailing
	// buffer (a READ's), at least zeroCopyMin bytes each, in place, as
	// runs of the caller's own pages, instead of copying them through
	// DMA memory (Linux's virtio_fs maps page-cache and pinned user pages
	// into the chain likewise). A buffer that does not resolve, or whose
	// runs would take more than half a queue's descriptors, is copied as
	// usual. A device that lies about a reply's length may have written
	// the whole reply buffer, not just what it claims, as with Linux.
	// Only for a device that reaches all of guest memory (PCI or MMIO in
	// a guest, never vhost-user), and only in a process whose pages stay
	// put (dmamem.LockProcess). A queue of 1024 takes a
	// 1 MiB WRITE of scattered 4 KiB pages.
	UserPages PageResolver
}

// PageResolver finds the guest-physical runs of a caller's buffer:
// dmamem.PageResolver in a guest.
type PageResolver interface {
	// Resolve appends b's physically contiguous runs, in order, to
	// dst; each Buffer's Bytes is that part of b.
	Resolve(b []byte, dst []virtio.Buffer) ([]virtio.Buffer, error)
	// ResolveWritable is Resolve for a buffer the device writes into.
	ResolveWritable(b []byte, dst []virtio.Buffer) ([]virtio.Buffer, error)
}

// zeroCopyMin is the smallest data that goes to the device in place:
// below it, the copy into DMA memory costs less than the pagemap read
// that resolves it (one read of 8 bytes per page).
const zeroCopyMin = 32 << 10

// DefaultSpin is Options.Spin's default. A GETATTR through virtiofsd takes
// about 30-80 µs in a TCG guest and 40-100 µs on a host, a large READ or
// WRITE a few hundred: most requests complete within the spin, and one
// that does not costs at most this much processor time (shared with other
// goroutines, as the spinning caller yields between polls).
const DefaultSpin = time.Millisecond

// Device is a virtio-fs device brought up by New. It implements
// fuse.Sender; its methods are safe for concurrent use.
type Device struct {
	t        virtio.Transport // immutable
	log      *slog.Logger     // immutable
	tag      string           // immutable
	features uint64           // immutable: negotiated
	hiprio   *queue           // immutable
	reqs     []*queue         // immutable: the request queues
	pool     *pool            // immutable
	limits   fuse.Limits      // immutable
	maxBuf   int              // immutable: the largest request or reply
	window   []byte           // immutable: the DAX window, or nil
	spin     time.Duration    // immutable: Options.Spin resolved; <= 0: never spin
	// lazyDelay is how long a RELEASE from Send may wait for the queue's
	// next request to notify the device (the constant lazyDelay; tests
	// shorten it before the first Send).
	lazyDelay time.Duration
	timeout   time.Duration               // immutable: Options.RequestTimeout; <= 0: none
	onRT      func(uint32, time.Duration) // immutable: Options.OnRoundTrip
	epoch     time.Time                   // immutable: the origin of queue.nextCheck and of OnRoundTrip's timing

	userPages  PageResolver  // immutable: Options.UserPages
	zeroCopies atomic.Uint64 // requests whose data the device read in place

	next atomic.Uint32 // round-robin request queue choice

	dead      chan struct{} // immutable; closed when the device is gone or closing
	deadOnce  sync.Once
	closing   chan struct{} // immutable; closed by Close
	closeOnce sync.Once
	stop      chan struct{} // immutable; closed when the completion goroutines are to exit
	stopped   chan struct{} // immutable; closed when the teardown after dead is done
	hung      chan struct{} // immutable; closed when a request outlived the timeout
	hungOnce  sync.Once

	wg sync.WaitGroup // completion goroutines

	// callbacks are the completed requests from Send, for the callback
	// goroutine (runCallbacks), which closes cbDone once supervise has
	// closed cbStop and none is left.
	callbacks callbacks
	cbStop    chan struct{} // immutable
	cbDone    chan struct{} // immutable

	// callMu's read side is held by every RoundTrip and SendHiprio for
	// their whole duration (they return promptly once dead is closed);
	// Close takes the write side before releasing the memory they use.
	callMu sync.RWMutex
	closed bool // guarded by callMu's write side: Close has run
}

var _ fuse.Sender = (*Device)(nil)

// New brings up the virtio-fs device behind t (virtio spec 1.2 section
// 3.1.1, as virtio_fs_probe in Linux fs/fuse/virtio_fs.c): reset,
// ACKNOWLEDGE|DRIVER, feature negotiation (VERSION_1 required; EVENT_IDX
// with Options.EventIdx; never INDIRECT_DESC, ACCESS_PLATFORM or
// RING_PACKED), FEATURES_OK, the configuration (tag, num_request_queues), queue 0 (hiprio)
// and the request queues, DRIVER_OK.
//
// On success the Device owns t: Close closes it. On failure New sets the
// FAILED status (best effort) and leaves t to the caller.
//
// Errors: ENODEV if the device lacks VERSION_1 or refuses FEATURES_OK;
// EINVAL for an empty tag, num_request_queues of 0, or a transport without a
// request queue; errors from t and from queue set-up, wrapped.
func New(ctx context.Context, t virtio.Transport, opts Options) (*Device, error) {
	d, err := newDevice(ctx, t, opts)
	if err != nil {
		t.SetStatus(virtio.StatusFailed)
		return nil, fmt.Errorf("driver: virtio-fs: %w", err)
	}
	return d, nil
}

func newDevice(ctx context.Context, t virtio.Transport, opts Options) (*Device, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := reset(ctx, t); err != nil {
		return nil, err
	}
	status := uint8(virtio.StatusAcknowledge | virtio.StatusDriver)
	if err := t.SetStatus(status); err != nil {
		return nil, fmt.Errorf("setting ACKNOWLEDGE|DRIVER: %w", err)
	}
	offered, err := t.DeviceFeatures()
	if err != nil {
		return nil, fmt.Errorf("reading device features: %w", err)
	}
	if offered&virtio.FeatureVersion1 == 0 {
		return nil, fmt.Errorf("device features %#x lack VIRTIO_F_VERSION_1: %w", offered, syscall.ENODEV)
	}
	accepted := uint64(acceptedFeatures)
	if opts.EventIdx {
		accepted |= virtio.FeatureEventIdx
	}
	features := offered & accepted
	if err := t.SetDriverFeatures(features); err != nil {
		return nil, fmt.Errorf("setting driver features %#x: %w", features, err)
	}
	status |= virtio.StatusFeaturesOK
	if err := t.SetStatus(status); err != nil {
		return nil, fmt.Errorf("setting FEATURES_OK: %w", err)
	}
	got, err := t.Status()
	if err != nil {
		return nil, fmt.Errorf("reading status: %w", err)
	}
	if got&virtio.StatusFeaturesOK == 0 {
		return nil, fmt.Errorf("device refused features %#x (status %#x): %w", features, got, syscall.ENODEV)
	}

	tag, numReq, err := readConfig(t)
	if err != nil {
		return nil, err
	}
	nreq := defaultRequestQueues
	if opts.RequestQueues > 0 {
		nreq = opts.RequestQueues
	}
	nreq = min(nreq, numReq, t.NumQueues()-1)
	if nreq < 1 {
		return nil, fmt.Errorf("transport has %d queues, no request queue: %w", t.NumQueues(), syscall.EINVAL)
	}
	want := defaultQueueSize
	if opts.QueueSize > 0 {
		want = opts.QueueSize
	}

	mem := t.Memory()
	d := &Device{
		t:        t,
		log:      log,
		tag:      tag,
		features: features,
		dead:     make(chan struct{}),
		closing:  make(chan struct{}),
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
		cbStop:   make(chan struct{}),
		cbDone:   make(chan struct{}),
		spin:     opts.Spin,
		timeout:  opts.RequestTimeout,
		onRT:     opts.OnRoundTrip,
		epoch:    time.Now(),
		hung:     make(chan struct{}),

		userPages: opts.UserPages,
		lazyDelay: lazyDelay,
	}
	d.callbacks.kick = make(chan struct{}, 1)
	if d.spin == 0 {
		d.spin = DefaultSpin
	}
	qsize := 0
	var queues []*queue
	for i := range 1 + nreq {
		q, err := d.setupQueue(i, want)
		if err != nil {
			for _, q := range queues {
				q.vq.Close()
			}
			reset(ctx, t)
			return nil, err
		}
		if i > 0 && (qsize == 0 || q.vq.Size() < qsize) {
			qsize = q.vq.Size()
		}
		queues = append(queues, q)
	}
	d.hiprio, d.reqs = queues[0], queues[1:]

	// Not bounded by the queue size: a request is two descriptors
	// whatever its size (see the package comment).
	d.limits = fuse.Limits{MaxPages: min(fuseMaxMaxPages, mem.MaxAlloc()/pageSize-1)}
	if d.limits.MaxPages < 1 {
		for _, q := range queues {
			q.vq.Close()
		}
		reset(ctx, t)
		return nil, fmt.Errorf("largest DMA allocation %d leaves no room for a page of data: %w", mem.MaxAlloc(), syscall.EINVAL)
	}
	d.maxBuf = (d.limits.MaxPages + 1) * pageSize
	d.pool = newPool(mem, d.maxBuf)
	if region, _, ok := t.SharedMemory(0); ok {
		d.window = region
	}

	if err := t.SetStatus(status | virtio.StatusDriverOK); err != nil {
		for _, q := range queues {
			q.vq.Close()
		}
		reset(ctx, t)
		return nil, fmt.Errorf("setting DRIVER_OK: %w", err)
	}
	for _, q := range queues {
		b := opts.Backoff
		if q.index == hiprioQueue {
			// Nobody waits for a hiprio completion (only for its buffers
			// to come back, and SendHiprio takes those back itself):
			// let the request callers have the processor. No spin or
			// yield phase either: yielding for 100 µs after each FORGET
			// took turns with a spinning caller (with one P, every
			// Gosched of the caller ran this poller before it).
			b.Park = true
			b.SpinFor, b.YieldFor = time.Nanosecond, time.Nanosecond
		}
		d.wg.Add(1)
		go q.complete(b)
	}
	go d.runCallbacks()
	go d.supervise()
	log.Debug("virtio-fs device ready", "tag", tag, "features", fmt.Sprintf("%#x", features),
		"request_queues", nreq, "queue_size", qsize, "max_pages", d.limits.MaxPages)
	return d, nil
}

// reset writes status 0 and waits for it to read back as 0 (section
// 2.4.1: the driver must not proceed until then).
func reset(ctx context.Context, t virtio.Transport) error {
	if err := t.SetStatus(0); err != nil {
		return fmt.Errorf("resetting: %w", err)
	}
	deadline := time.Now().Add(resetTimeout)
	var b virtio.Backoff
	for {
		s, err := t.Status()
		if err != nil {
			return fmt.Errorf("reading status after reset: %w", err)
		}
		if s == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("status still %#x %v after reset: %w", s, resetTimeout, syscall.ETIMEDOUT)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		b.Wait()
	}
}

// readConfig reads the tag and num_request_queues.
func readConfig(t virtio.Transport) (string, int, error) {
	var cfg [configLen]byte
	if err := t.ReadConfig(0, cfg[:tagLen]); err != nil {
		return "", 0, fmt.Errorf("reading the tag: %w", err)
	}
	if err := t.ReadConfig(numRequestQueuesOff, cfg[numRequestQueuesOff:configLen]); err != nil {
		return "", 0, fmt.Errorf("reading num_request_queues: %w", err)
	}
	return parseConfig(cfg[:])
}

// parseConfig decodes a virtio-fs configuration space, as
// virtio_fs_read_tag in Linux.
//
// Errors: EINVAL for a short config, an empty tag, or no request queue.
func parseConfig(cfg []byte) (string, int, error) {
	if len(cfg) < configLen {
		return "", 0, fmt.Errorf("config of %d bytes, want %d: %w", len(cfg), configLen, syscall.EINVAL)
	}
	tag := cfg[:tagLen]
	if i := bytes.IndexByte(tag, 0); i >= 0 {
		tag = tag[:i]
	}
	if len(tag) == 0 {
		return "", 0, fmt.Errorf("empty tag: %w", syscall.EINVAL)
	}
	n := binary.LittleEndian.Uint32(cfg[numRequestQueuesOff:])
	if n == 0 {
		return "", 0, fmt.Errorf("num_request_queues is 0: %w", syscall.EINVAL)
	}
	return string(tag), int(min(n, 1<<16)), nil
}

// setupQueue creates and enables queue i of at most want descriptors.
func (d *Device) setupQueue(i, want int) (*queue, error) {
	max, err := d.t.MaxQueueSize(i)
	if err != nil {
		return nil, fmt.Errorf("queue %d size: %w", i, err)
	}
	size := min(want, max, 32768)
	if size < 2 {
		return nil, fmt.Errorf("queue %d: maximum size %d: %w", i, max, syscall.EINVAL)
	}
	size = 1 << (bits.Len(uint(size)) - 1) // split rings are powers of two
	vq, err := virtio.NewQueue(d.t.Memory(), i, size, d.features)
	if err != nil {
		return nil, err
	}
	if err := d.t.EnableQueue(i, vq.Addrs()); err != nil {
		vq.Close()
		return nil, fmt.Errorf("enabling queue %d: %w", i, err)
	}
	return newQueue(d, i, vq), nil
}

// Tag is the device's tag, the name the host gave the share.
func (d *Device) Tag() string { return d.tag }

// Features are the negotiated feature bits.
func (d *Device) Features() uint64 { return d.features }

// Limits implements fuse.Sender.Limits; see the package comment for how
// MaxPages is derived.
func (d *Device) Limits() fuse.Limits { return d.limits }

// Window implements fuse.Sender.Window: shared memory region 0 of the
// transport, or nil.
func (d *Device) Window() []byte { return d.window }

// Done is closed once the device is gone (its transport's Done closed) or
// Close was called.
func (d *Device) Done() <-chan struct{} { return d.dead }

// supervise waits for the transport to lose its device, for a request to
// outlive Options.RequestTimeout, or for Close, then
// tears the queues down: fail later calls and waiters with ENOTCONN, on
// Close wait (bounded) for the device to give back every chain, stop the
// completion goroutines, reset the device, wake goroutines waiting for
// room in a full queue, and let go of the device's hold on request buffers.
func (d *Device) supervise() {
	defer close(d.stopped)
	gone, hung := false, false
	select {
	case <-d.t.Done():
		gone = true
		d.log.Error("virtio-fs device gone", "tag", d.tag)
	case <-d.hung:
		gone, hung = true, true // logged by hang
	case <-d.closing:
	}
	d.deadOnce.Do(func() { close(d.dead) })
	queues := append([]*queue{d.hiprio}, d.reqs...)
	if !gone {
		d.drain(queues)
	}
	close(d.stop)
	d.wg.Wait()
	for _, q := range queues {
		q.stopPolling()
	}
	// Reset so that the device no longer uses the rings and buffers
	// (section 2.4). A device that is gone refuses; it uses nothing. Not
	// a device that hangs: resetting it can hang too (QEMU waits for a
	// vhost-user back end to answer GET_VRING_BASE), and this teardown
	// must not; the transport's Close resets it. The rings go back to a
	// memory nothing allocates from any more (every call fails from here
	// on), and the buffers of chains it holds stay reserved.
	if !hung {
		d.t.SetStatus(0)
	}
	for _, q := range queues {
		q.vq.Close()
		// A device that hangs may not honour the reset: the chains it
		// holds keep their buffers, as after a cancel.
		q.failAll(syscall.ENOTCONN, !hung)
	}
	// Every request is complete: run the last callbacks of Send.
	close(d.cbStop)
	<-d.cbDone
}

// drain waits until the device has given back every chain on every queue
// whose used ring is sound, for at most drainTimeout, or until the device
// is gone: as virtio_fs_drain_all_queues in Linux, so that the reset does
// not pull the rings from under a back end still processing requests
// (such as the FORGETs and DESTROY sent just before Close). The
// completion goroutines harvest meanwhile: callers have stopped spinning.
func (d *Device) drain(queues []*queue) {
	deadline := time.Now().Add(drainTimeout)
	var b virtio.Backoff
	for {
		busy := 0
		for _, q := range queues {
			if q.inflight.Load() > 0 && !q.corrupt.Load() {
				busy += int(q.inflight.Load())
				q.notifyLazy()
				q.wake()
			}
		}
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			d.log.Warn("virtio-fs: resetting with requests still in flight", "tag", d.tag, "in_flight", busy, "waited", drainTimeout)
			return
		}
		select {
		case <-d.t.Done():
			return
		default:
		}
		b.Wait()
	}
}

// Close stops the device: it fails in-flight and later calls with ENOTCONN,
// waits up to a second for the device to give back the chains in flight
// (requests without a waiter such as FORGETs, or whose waiter gave up),
// stops the completion goroutines, resets the device, returns the DMA
// memory and closes the transport. It waits for calls in progress to
// return.
func (d *Device) Close() error {
	d.closeOnce.Do(func() { close(d.closing) })
	<-d.stopped
	d.callMu.Lock() // every call has returned; none can start
	defer d.callMu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.pool.close()
	return d.t.Close()
}

// hang takes the device for dead because r, pending for at least age, had
// no reply within Options.RequestTimeout: supervise then tears it down as
// when the transport loses the device.
func (d *Device) hang(op uint32, unique uint64, age time.Duration) {
	d.hungOnce.Do(func() {
		d.log.Error("virtio-fs: no reply within the request timeout; taking the device for dead",
			"tag", d.tag, "opcode", op, "unique", unique, "age", age.Round(time.Millisecond), "timeout", d.timeout)
		close(d.hung)
	})
}

// enter starts a call; it fails with ENOTCONN once the device is dead.
func (d *Device) enter() error {
	d.callMu.RLock()
	select {
	case <-d.dead:
		d.callMu.RUnlock()
		return syscall.ENOTCONN
	default:
		return nil
	}
}

func (d *Device) exit() { d.callMu.RUnlock() }

// mapErr turns an error from the queue or pool into what callers see.
func mapErr(err error) error {
	if errors.Is(err, virtio.ErrDeviceGone) {
		return syscall.ENOTCONN
	}
	return err
}
