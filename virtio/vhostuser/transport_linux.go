package vhostuser

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/virtio"
)

// Options configure Dial. Zero fields take the defaults noted.
type Options struct {
	// MemorySize is the size of the shared memfd region all DMA buffers
	// come from; 0 means 64 MiB.
	MemorySize int
	// Tag is the virtio-fs tag ReadConfig reports when the back end does
	// not serve GET_CONFIG; "" means "govirtiofs".
	Tag string
	// NumQueues is used when the back end does not offer
	// VHOST_USER_PROTOCOL_F_MQ; 0 means 2 (hiprio and one request queue).
	NumQueues int
	// MaxQueueSize is what MaxQueueSize reports, vhost-user having no
	// such query; 0 means 1024, libvhost-user's VIRTQUEUE_MAX_SIZE.
	MaxQueueSize int
	// Timeout bounds each message exchange after Dial; 0 means 10 s.
	// Dial's exchanges are bounded by its context as well.
	Timeout time.Duration
}

// GuestBase is the "guest-physical" address of the first byte of the
// memory region in the memory table: what descriptors carry. It differs
// from the region's virtual address so that mixing the two up fails.
const GuestBase = 1 << 32

// Transport is a vhost-user front end; it implements virtio.Transport.
type Transport struct {
	opts      Options       // immutable after Dial
	conn      *net.UnixConn // immutable
	features  uint64        // immutable: the back end's virtio features
	protocol  uint64        // immutable: negotiated protocol features
	numQueues int           // immutable
	config    []byte        // immutable: device config space

	memfd  int           // immutable
	region []byte        // immutable: the mapped memfd
	arena  *virtio.Arena // immutable

	kicks []atomic.Int32 // by queue: the kick eventfd, -1 when none

	done     chan struct{} // immutable; closed when the back end is gone
	doneOnce sync.Once
	gone     atomic.Bool
	stopFD   int           // immutable: eventfd that stops the monitor
	monitor  chan struct{} // immutable; closed when the monitor returns

	// mu serializes message exchanges and guards the fields below.
	mu     sync.Mutex
	status uint8
	driver uint64      // driver features
	calls  map[int]int // by queue set up: the call eventfd
	closed bool
}

var _ virtio.Transport = (*Transport)(nil)

// Dial connects to the vhost-user back end listening on socketPath and
// negotiates with it (see the package documentation).
//
// Errors: the dial error (ECONNREFUSED is retried until ctx is done);
// ctx's error; EPROTO for a malformed reply;
// EIO for a back end that refuses a message (REPLY_ACK non-zero).
func Dial(ctx context.Context, socketPath string, opts Options) (_ *Transport, err error) {
	if opts.MemorySize == 0 {
		opts.MemorySize = 64 << 20
	}
	if opts.Tag == "" {
		opts.Tag = "govirtiofs"
	}
	if opts.NumQueues == 0 {
		opts.NumQueues = 2
	}
	if opts.MaxQueueSize == 0 {
		opts.MaxQueueSize = 1024
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	c, err := dialUnix(ctx, socketPath)
	if err != nil {
		return nil, err
	}
	t := &Transport{
		opts:    opts,
		conn:    c.(*net.UnixConn),
		memfd:   -1,
		stopFD:  -1,
		done:    make(chan struct{}),
		monitor: make(chan struct{}),
		calls:   make(map[int]int),
	}
	defer func() {
		if err != nil {
			t.release()
		}
	}()
	stop := context.AfterFunc(ctx, func() { t.conn.SetDeadline(time.Now()) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		t.conn.SetDeadline(dl)
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	p, err := t.callLocked(reqGetFeatures, nil, nil, true)
	if err != nil {
		return nil, err
	}
	if t.features, err = parseU64(p); err != nil {
		return nil, err
	}
	if t.features&featureProtocolFeatures != 0 {
		if p, err = t.callLocked(reqGetProtocolFeatures, nil, nil, true); err != nil {
			return nil, err
		}
		offered, err := parseU64(p)
		if err != nil {
			return nil, err
		}
		// REPLY_ACK applies from the next message on.
		if _, err := t.callLocked(reqSetProtocolFeatures, u64(offered&wantedProtocol), nil, false); err != nil {
			return nil, err
		}
		t.protocol = offered & wantedProtocol
	}
	t.numQueues = opts.NumQueues
	if t.protocol&protocolMQ != 0 {
		if p, err = t.callLocked(reqGetQueueNum, nil, nil, true); err != nil {
			return nil, err
		}
		n, err := parseU64(p)
		if err != nil {
			return nil, err
		}
		if n < 1 || n > 0x100 {
			return nil, fmt.Errorf("vhostuser: back end reports %d queues: %w", n, syscall.EPROTO)
		}
		t.numQueues = int(n)
	}
	if _, err := t.callLocked(reqSetOwner, nil, nil, false); err != nil {
		return nil, err
	}
	if t.protocol&protocolConfig != 0 {
		if p, err = t.callLocked(reqGetConfig, configSpace(0, fsConfigLen), nil, true); err != nil {
			return nil, err
		}
		if t.config, err = parseConfigReply(p, fsConfigLen); err != nil {
			return nil, err
		}
	} else {
		t.config = fsConfig(opts.Tag, t.numQueues-1)
	}
	t.kicks = make([]atomic.Int32, t.numQueues)
	for i := range t.kicks {
		t.kicks[i].Store(-1)
	}
	if err := t.mapMemory(); err != nil {
		return nil, err
	}
	if err := t.startMonitor(); err != nil {
		return nil, err
	}
	t.conn.SetDeadline(time.Time{})
	return t, nil
}

// dialUnix connects to socketPath. A back end that was just started may
// have bound its socket without listening yet (virtiofsd does both a moment
// apart), so ECONNREFUSED is retried every 2 ms until ctx is done.
func dialUnix(ctx context.Context, socketPath string) (net.Conn, error) {
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "unix", socketPath)
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("vhostuser: %w (%w)", err, ctx.Err())
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("vhostuser: %w", err)
		}
		retry := time.NewTimer(2 * time.Millisecond)
		select {
		case <-ctx.Done():
			retry.Stop()
			return nil, fmt.Errorf("vhostuser: %w (%w)", err, ctx.Err())
		case <-retry.C:
		}
	}
}

func parseU64(p []byte) (uint64, error) {
	if len(p) != 8 {
		return 0, fmt.Errorf("vhostuser: reply of %d bytes, want 8: %w", len(p), syscall.EPROTO)
	}
	return binary.LittleEndian.Uint64(p), nil
}

// mapMemory creates the memfd region and its Arena.
func (t *Transport) mapMemory() error {
	fd, err := unix.MemfdCreate("govirtiofs-vhost-user", unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("vhostuser: memfd_create: %w", err)
	}
	t.memfd = fd
	if err := unix.Ftruncate(fd, int64(t.opts.MemorySize)); err != nil {
		return fmt.Errorf("vhostuser: ftruncate memfd to %d: %w", t.opts.MemorySize, err)
	}
	b, err := unix.Mmap(fd, 0, t.opts.MemorySize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("vhostuser: mmap memfd: %w", err)
	}
	t.region = b
	t.arena = virtio.NewArena(b, GuestBase)
	return nil
}

// startMonitor starts the goroutine that notices the back end hanging up:
// it polls a duplicate of the socket for POLLRDHUP (not POLLIN: replies are
// read by callLocked) and an eventfd that Close signals.
func (t *Transport) startMonitor() error {
	var sock int
	var dupErr error
	rc, err := t.conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("vhostuser: %w", err)
	}
	if err := rc.Control(func(fd uintptr) { sock, dupErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return fmt.Errorf("vhostuser: %w", err)
	}
	if dupErr != nil {
		return fmt.Errorf("vhostuser: dup socket: %w", dupErr)
	}
	stopFD, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(sock)
		return fmt.Errorf("vhostuser: eventfd: %w", err)
	}
	t.stopFD = stopFD
	go func() {
		defer close(t.monitor)
		defer unix.Close(sock)
		fds := []unix.PollFd{
			{Fd: int32(sock), Events: unix.POLLRDHUP},
			{Fd: int32(stopFD), Events: unix.POLLIN},
		}
		for {
			_, err := unix.Poll(fds, -1)
			if err == unix.EINTR {
				continue
			}
			if err != nil || fds[0].Revents != 0 {
				t.markGone()
			}
			return
		}
	}()
	return nil
}

func (t *Transport) markGone() {
	t.gone.Store(true)
	t.doneOnce.Do(func() { close(t.done) })
}

func (t *Transport) goneErr() error {
	return fmt.Errorf("vhostuser: %w", virtio.ErrDeviceGone)
}

// callLocked sends one message with fds attached and, if wantReply, returns
// the reply's payload. Other messages ask for an acknowledgement when
// REPLY_ACK was negotiated, and a non-zero one is an error. An I/O failure
// leaves the stream out of step, so it marks the back end gone.
//
// Preconditions: t.mu is held.
func (t *Transport) callLocked(req uint32, payload []byte, fds []int, wantReply bool) ([]byte, error) {
	if t.gone.Load() || t.closed {
		return nil, t.goneErr()
	}
	var flags uint32
	ack := !wantReply && t.protocol&protocolReplyAck != 0
	if ack {
		flags = flagNeedReply
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := t.conn.WriteMsgUnix(message(req, flags, payload), oob, nil); err != nil {
		return nil, t.ioError(req, err)
	}
	if !wantReply && !ack {
		return nil, nil
	}
	var hb [headerSize]byte
	if _, err := io.ReadFull(t.conn, hb[:]); err != nil {
		return nil, t.ioError(req, err)
	}
	h := decodeHeader(hb[:])
	if err := checkReply(h, req); err != nil {
		t.markGone()
		return nil, err
	}
	p := make([]byte, h.Size)
	if _, err := io.ReadFull(t.conn, p); err != nil {
		return nil, t.ioError(req, err)
	}
	if ack {
		v, err := parseU64(p)
		if err != nil {
			t.markGone()
			return nil, err
		}
		if v != 0 {
			return nil, fmt.Errorf("vhostuser: back end refused request %d (status %d): %w", req, v, syscall.EIO)
		}
	}
	return p, nil
}

func (t *Transport) ioError(req uint32, err error) error {
	t.markGone()
	var ne net.Error
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("vhostuser: request %d: %w (%w)", req, virtio.ErrDeviceGone, err)
	}
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("vhostuser: request %d: back end did not answer: %w", req, err)
	}
	return fmt.Errorf("vhostuser: request %d: %w", req, err)
}

// exchange is callLocked for methods called after Dial, bounded by
// Options.Timeout.
//
// Preconditions: t.mu is held.
func (t *Transport) exchangeLocked(req uint32, payload []byte, fds []int, wantReply bool) ([]byte, error) {
	t.conn.SetDeadline(time.Now().Add(t.opts.Timeout))
	return t.callLocked(req, payload, fds, wantReply)
}

// ProtocolFeatures returns the negotiated vhost-user protocol features.
func (t *Transport) ProtocolFeatures() uint64 { return t.protocol }

// DeviceFeatures implements virtio.Transport.DeviceFeatures: the back
// end's features without the vhost-user bit VHOST_USER_F_PROTOCOL_FEATURES.
func (t *Transport) DeviceFeatures() (uint64, error) {
	if t.gone.Load() {
		return 0, t.goneErr()
	}
	return t.features &^ featureProtocolFeatures, nil
}

// SetDriverFeatures implements virtio.Transport.SetDriverFeatures; the
// features reach the back end with FEATURES_OK.
//
// Errors: EINVAL for a feature the back end does not offer.
func (t *Transport) SetDriverFeatures(features uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone.Load() || t.closed {
		return t.goneErr()
	}
	if features&^(t.features&^featureProtocolFeatures) != 0 {
		return fmt.Errorf("vhostuser: features %#x not offered (%#x): %w", features, t.features, syscall.EINVAL)
	}
	t.driver = features
	return nil
}

// Status implements virtio.Transport.Status: the status last set.
func (t *Transport) Status() (uint8, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone.Load() || t.closed {
		return 0, t.goneErr()
	}
	return t.status, nil
}

// SetStatus implements virtio.Transport.SetStatus. FEATURES_OK sends
// SET_FEATURES and SET_MEM_TABLE; DRIVER_OK enables the rings set up with
// EnableQueue; 0 stops the rings with GET_VRING_BASE and forgets them.
func (t *Transport) SetStatus(status uint8) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone.Load() || t.closed {
		return t.goneErr()
	}
	if status == 0 {
		return t.resetLocked()
	}
	added := status &^ t.status
	if added&virtio.StatusFeaturesOK != 0 {
		f := t.driver
		if t.features&featureProtocolFeatures != 0 {
			f |= featureProtocolFeatures
		}
		if _, err := t.exchangeLocked(reqSetFeatures, u64(f), nil, false); err != nil {
			return err
		}
		table := memTable([]memRegion{{
			GuestAddr: GuestBase,
			Size:      uint64(len(t.region)),
			UserAddr:  uint64(uintptr(unsafe.Pointer(&t.region[0]))),
		}})
		if _, err := t.exchangeLocked(reqSetMemTable, table, []int{t.memfd}, false); err != nil {
			return err
		}
	}
	if added&virtio.StatusDriverOK != 0 {
		for i := range t.calls {
			if err := t.enableRingLocked(i); err != nil {
				return err
			}
		}
	}
	t.status = status
	return nil
}

// enableRingLocked starts ring i: rings start disabled once
// VHOST_USER_F_PROTOCOL_FEATURES is acked, else at SET_VRING_KICK.
//
// Preconditions: t.mu is held.
func (t *Transport) enableRingLocked(i int) error {
	if t.features&featureProtocolFeatures == 0 {
		return nil
	}
	_, err := t.exchangeLocked(reqSetVringEnable, vringState(uint32(i), 1), nil, false)
	return err
}

// resetLocked stops every ring (GET_VRING_BASE) and closes its eventfds.
//
// Preconditions: t.mu is held.
func (t *Transport) resetLocked() error {
	var first error
	for i, call := range t.calls {
		if _, err := t.exchangeLocked(reqGetVringBase, vringState(uint32(i), 0), nil, true); err != nil && first == nil {
			first = err
		}
		if k := t.kicks[i].Swap(-1); k >= 0 {
			unix.Close(int(k))
		}
		unix.Close(call)
		delete(t.calls, i)
	}
	t.status, t.driver = 0, 0
	return first
}

// ReadConfig implements virtio.Transport.ReadConfig, from the config read
// at Dial (GET_CONFIG) or synthesized from Options.
//
// Errors: EINVAL for a range beyond the config space.
func (t *Transport) ReadConfig(off int, p []byte) error {
	if t.gone.Load() {
		return t.goneErr()
	}
	if off < 0 || off > len(t.config) || len(p) > len(t.config)-off {
		return fmt.Errorf("vhostuser: config read [%d, +%d) beyond %d bytes: %w", off, len(p), len(t.config), syscall.EINVAL)
	}
	copy(p, t.config[off:])
	return nil
}

// NumQueues implements virtio.Transport.NumQueues.
func (t *Transport) NumQueues() int { return t.numQueues }

// MaxQueueSize implements virtio.Transport.MaxQueueSize.
func (t *Transport) MaxQueueSize(i int) (int, error) {
	if i < 0 || i >= t.numQueues {
		return 0, nil
	}
	return t.opts.MaxQueueSize, nil
}

// EnableQueue implements virtio.Transport.EnableQueue: SET_VRING_NUM,
// SET_VRING_BASE (0), SET_VRING_ADDR (this process's virtual addresses of
// the rings), SET_VRING_KICK and SET_VRING_CALL with fresh eventfds, and
// SET_VRING_ENABLE if DRIVER_OK is already set.
//
// Errors: EINVAL for a bad index or size, rings not from Memory, or a call
// before FEATURES_OK; EBUSY for a queue already set up.
func (t *Transport) EnableQueue(i int, q virtio.QueueAddrs) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone.Load() || t.closed {
		return t.goneErr()
	}
	if i < 0 || i >= t.numQueues || q.Size < 1 || q.Size > t.opts.MaxQueueSize || t.status&virtio.StatusFeaturesOK == 0 {
		return fmt.Errorf("vhostuser: enable queue %d of size %d (status %#x): %w", i, q.Size, t.status, syscall.EINVAL)
	}
	if _, ok := t.calls[i]; ok {
		return fmt.Errorf("vhostuser: queue %d already set up: %w", i, syscall.EBUSY)
	}
	var uva [3]uint64
	for j, b := range []virtio.Buffer{q.Desc, q.Avail, q.Used} {
		m, ok := t.arena.Contains(b.Addr, len(b.Bytes))
		if !ok || len(b.Bytes) == 0 || &m[0] != &b.Bytes[0] {
			return fmt.Errorf("vhostuser: queue %d rings are not from this transport's Memory: %w", i, syscall.EINVAL)
		}
		uva[j] = uint64(uintptr(unsafe.Pointer(&b.Bytes[0])))
	}
	kick, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("vhostuser: eventfd: %w", err)
	}
	call, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(kick)
		return fmt.Errorf("vhostuser: eventfd: %w", err)
	}
	idx := uint32(i)
	steps := []struct {
		req     uint32
		payload []byte
		fd      int
	}{
		{reqSetVringNum, vringState(idx, uint32(q.Size)), -1},
		{reqSetVringBase, vringState(idx, 0), -1},
		{reqSetVringAddr, vringAddr(idx, uva[0], uva[2], uva[1]), -1},
		{reqSetVringKick, vringFD(idx, true), kick},
		{reqSetVringCall, vringFD(idx, true), call},
	}
	for _, s := range steps {
		var fds []int
		if s.fd >= 0 {
			fds = []int{s.fd}
		}
		if _, err := t.exchangeLocked(s.req, s.payload, fds, false); err != nil {
			unix.Close(kick)
			unix.Close(call)
			return err
		}
	}
	t.calls[i] = call
	t.kicks[i].Store(int32(kick))
	if t.status&virtio.StatusDriverOK != 0 {
		return t.enableRingLocked(i)
	}
	return nil
}

// one is the eventfd increment Notify writes.
var one = binary.LittleEndian.AppendUint64(nil, 1)

// Notify implements virtio.Transport.Notify: it writes queue i's kick
// eventfd. It takes no lock.
//
// Errors: virtio.ErrDeviceGone; EINVAL for a queue not set up.
func (t *Transport) Notify(i int) error {
	if t.gone.Load() {
		return t.goneErr()
	}
	if i < 0 || i >= len(t.kicks) {
		return fmt.Errorf("vhostuser: notify queue %d: %w", i, syscall.EINVAL)
	}
	fd := t.kicks[i].Load()
	if fd < 0 {
		return fmt.Errorf("vhostuser: notify queue %d, not set up: %w", i, syscall.EINVAL)
	}
	for {
		_, err := unix.Write(int(fd), one)
		switch err {
		case nil, unix.EAGAIN: // EAGAIN: the counter is saturated, a kick is pending
			return nil
		case unix.EINTR:
			continue
		default:
			return fmt.Errorf("vhostuser: kick queue %d: %w", i, err)
		}
	}
}

// Memory implements virtio.Transport.Memory: the memfd region, allocated
// by an Arena, at device addresses from GuestBase.
func (t *Transport) Memory() virtio.Memory { return t.arena }

// SharedMemory implements virtio.Transport.SharedMemory; vhost-user back
// ends here have no shared memory regions (no DAX window).
func (t *Transport) SharedMemory(id uint8) ([]byte, uint64, bool) { return nil, 0, false }

// Done implements virtio.Transport.Done.
func (t *Transport) Done() <-chan struct{} { return t.done }

// Close implements virtio.Transport.Close: it closes the socket (a
// virtiofsd then exits), the eventfds and the memfd, and unmaps the memory.
//
// Preconditions: no buffer from Memory and no Queue on it is used any
// more: the memory is unmapped.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	t.release()
	return nil
}

// release frees everything Dial acquired.
func (t *Transport) release() {
	if t.stopFD >= 0 {
		unix.Write(t.stopFD, one)
		<-t.monitor
		unix.Close(t.stopFD)
	}
	t.conn.Close()
	t.markGone()
	for i := range t.kicks {
		if k := t.kicks[i].Swap(-1); k >= 0 {
			unix.Close(int(k))
		}
	}
	for _, c := range t.calls {
		unix.Close(c)
	}
	if t.region != nil {
		unix.Munmap(t.region)
	}
	if t.memfd >= 0 {
		unix.Close(t.memfd)
	}
}
