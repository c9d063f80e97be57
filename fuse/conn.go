package fuse

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/govirtiofs/govirtiofs/vfs"
)

// Creds are the credentials a request carries in its fuse_in_header; the
// server checks permissions and sets ownership with them.
type Creds struct {
	UID uint32
	GID uint32
	PID uint32
}

// credsKey is the context key of a request's credentials: a Creds, or a
// *vfs.Credentials (with this process's ID), which the client filesystem
// puts there without allocating a copy per request.
type credsKey struct{}

// WithCreds returns a context whose requests carry c instead of
// ConnOptions.Creds.
func WithCreds(ctx context.Context, c Creds) context.Context {
	return context.WithValue(ctx, credsKey{}, c)
}

// ConnOptions configure a Conn.
type ConnOptions struct {
	// Creds are the default credentials of each request (see WithCreds).
	Creds Creds
	// Logger receives one line per invalid reply; nil means slog.Default().
	Logger *slog.Logger
	// MaxReadahead is offered in FUSE_INIT; 0 means 128 KiB (Linux's
	// default read-ahead).
	MaxReadahead uint32
	// WritebackCache asks for FUSE_WRITEBACK_CACHE.
	WritebackCache bool
	// DAX asks for FUSE_MAP_ALIGNMENT and FUSE_HAS_INODE_DAX (the caller
	// has a DAX window).
	DAX bool
	// SetxattrExt asks for FUSE_SETXATTR_EXT (the extended
	// fuse_setxattr_in). Without it, or if the server declines, SETXATTR
	// uses the 8-byte compatible form.
	SetxattrExt bool
	// SendInterrupts lets Interrupt send FUSE_INTERRUPT. Off by default:
	// Linux virtio_fs never sends it, and QEMU 7.2's virtiofsd drops the
	// connection on the request after one (measured here).
	SendInterrupts bool
}

// Params are the connection parameters negotiated by FUSE_INIT.
type Params struct {
	Major, Minor uint32 // the protocol in use: 7 and min(ours, server's)
	// Flags are the Init* flags both sides agreed on.
	Flags               uint64
	MaxReadahead        uint32
	MaxBackground       uint16
	CongestionThreshold uint16
	// MaxWrite bounds the data of one WRITE: the server's max_write,
	// at least 4096, at most MaxPages*4096.
	MaxWrite uint32
	// MaxPages bounds one READ or WRITE to MaxPages*4096 bytes: the
	// server's max_pages (32 without FUSE_MAX_PAGES) clamped to the
	// transport's Limits.MaxPages.
	MaxPages int
	// MapAlignment is log2 of the alignment of DAX mappings in the file
	// and the window; meaningful with InitMapAlignment.
	MapAlignment uint16
	TimeGran     uint32 // timestamp granularity in ns; 0 or 1 means 1 ns
}

// Has reports whether flag was negotiated.
func (p Params) Has(flag uint64) bool { return p.Flags&flag == flag }

// defaultMaxPages is FUSE_DEFAULT_MAX_PAGES_PER_REQ, used when the
// server does not negotiate FUSE_MAX_PAGES.
const defaultMaxPages = 32

// pageSize is the unit of MaxPages.
const pageSize = 4096

// daxShift is FUSE_DAX_SHIFT: the largest map_alignment accepted (2 MiB
// ranges, Linux fuse_dax_check_alignment).
const daxShift = 21

// Conn is a FUSE protocol connection over a Sender: it negotiates
// FUSE_INIT, assigns unique IDs, fills request headers, and validates
// every reply before the typed calls in ops.go decode it. It is safe for
// concurrent use; it holds no lock across a RoundTrip.
type Conn struct {
	s      Sender       // immutable
	opts   ConnOptions  // immutable
	log    *slog.Logger // immutable
	limits Limits       // immutable: s.Limits() at NewConn

	unique atomic.Uint64          // last unique ID handed out; step 2, low bit for INTERRUPT
	params atomic.Pointer[Params] // nil until Init succeeds; immutable once set
	dead   atomic.Bool            // set by Destroy: later requests fail with ENOTCONN

	initMu sync.Mutex // serializes Init
}

// NewConn returns a Conn sending through s. Call Init before any other
// request.
func NewConn(s Sender, opts ConnOptions) *Conn {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	lim := s.Limits()
	if lim.MaxPages < 1 {
		lim.MaxPages = 1
	}
	return &Conn{s: s, opts: opts, log: log, limits: lim}
}

// Sender returns the Sender the Conn sends through.
func (c *Conn) Sender() Sender { return c.s }

// Params returns the parameters negotiated by Init, and false before Init
// has succeeded.
func (c *Conn) Params() (Params, bool) {
	p := c.params.Load()
	if p == nil {
		return Params{}, false
	}
	return *p, true
}

// requestedFlags are the FUSE_INIT flags this client asks for.
func (c *Conn) requestedFlags() uint64 {
	f := InitAsyncRead | InitPosixLocks | InitAtomicOTrunc | InitExportSupport | InitBigWrites |
		InitFlockLocks | InitAutoInvalData | InitDoReaddirplus | InitReaddirplusAuto |
		InitParallelDirops | InitMaxPages | InitSubmounts | InitExt
	if c.opts.WritebackCache {
		f |= InitWritebackCache
	}
	if c.opts.DAX {
		f |= InitMapAlignment | InitHasInodeDAX
	}
	if c.opts.SetxattrExt {
		f |= InitSetxattrExt
	}
	return f
}

// Init negotiates FUSE_INIT (Linux fuse_send_init and process_init_reply).
//
// Errors: an error wrapping ErrProtocolVersion and syscall.EPROTO if the
// server's major is not 7 or its minor is below MinServerMinor; EIO for
// an invalid reply; the server's errno; EINVAL if Init already succeeded;
// the Sender's errors.
func (c *Conn) Init(ctx context.Context) error {
	c.initMu.Lock()
	defer c.initMu.Unlock()
	if c.params.Load() != nil {
		return fmt.Errorf("fuse: Init called twice: %w", syscall.EINVAL)
	}
	want := c.requestedFlags()
	readahead := c.opts.MaxReadahead
	if readahead == 0 {
		readahead = 128 << 10
	}
	r := c.newRequest(OpInit, 0, initInSize, initOutSize)
	in := initIn{Major: KernelVersion, Minor: KernelMinorVersion, MaxReadahead: readahead,
		Flags: uint32(want), Flags2: uint32(want >> 32)}
	in.encode(r.args())
	rep, err := c.roundTrip(ctx, r)
	if err != nil {
		return err
	}
	out, err := decodeInitOut(rep.payload)
	if err != nil {
		return c.invalid(OpInit, rep.unique, err)
	}
	p, err := c.negotiate(want, &out)
	if err != nil {
		if _, ok := err.(*versionError); ok {
			return err
		}
		return c.invalid(OpInit, rep.unique, err)
	}
	c.params.Store(p)
	return nil
}

// negotiate turns an INIT reply into Params.
func (c *Conn) negotiate(want uint64, out *initOut) (*Params, error) {
	if out.Major != KernelVersion || out.Minor < MinServerMinor {
		return nil, &versionError{major: out.Major, minor: out.Minor}
	}
	got := uint64(out.Flags)
	if got&InitExt != 0 {
		got |= uint64(out.Flags2) << 32
	}
	p := &Params{
		Major:               KernelVersion,
		Minor:               min(out.Minor, KernelMinorVersion),
		Flags:               got & want,
		MaxReadahead:        out.MaxReadahead,
		MaxBackground:       out.MaxBackground,
		CongestionThreshold: out.CongestionThreshold,
		TimeGran:            out.TimeGran,
		MaxPages:            defaultMaxPages,
	}
	if p.Has(InitMaxPages) {
		p.MaxPages = max(int(out.MaxPages), 1)
	}
	p.MaxPages = min(p.MaxPages, c.limits.MaxPages)
	p.MaxWrite = min(max(out.MaxWrite, pageSize), uint32(min(p.MaxPages*pageSize, math.MaxUint32)))
	if p.Has(InitMapAlignment) {
		if out.MapAlignment > daxShift {
			return nil, badReply("INIT: map_alignment %d exceeds %d", out.MapAlignment, daxShift)
		}
		p.MapAlignment = out.MapAlignment
	}
	return p, nil
}

// request is one FUSE request being built and sent. buf holds the
// fuse_in_header, the fixed arguments and names; data is an optional
// trailing payload (WRITE data, an xattr value) sent without copying. out
// receives the fuse_out_header and a fixed-size reply; outData is an
// optional caller buffer for a variable-size reply (READ data), also
// without copying.
type request struct {
	op      Opcode
	nodeid  uint64
	buf     []byte
	data    []byte
	out     []byte
	outData []byte
	// vec backs the in and out vectors handed to the Sender, so that
	// they cost no allocation of their own.
	vec [4][]byte
	// pooled is set when buf and out live in small, and the request
	// came from requestPool. Such a request goes back to the pool once a
	// RoundTrip has returned (answered is set) and its reply is decoded:
	// never after a RoundTrip error (the transport may still touch the
	// buffers of a request it gave up waiting for) nor after a hiprio
	// send (queued, not done).
	pooled   bool
	answered bool
	// creds, if set, are the credentials of the request, taking
	// precedence over the context's: the client filesystem's hot paths
	// pass them so, which costs no context.WithValue per request.
	creds *vfs.Credentials
	// bgConn, bgUnique and bgWaiter are the state of a request sent by
	// Conn.background while it is in flight; sendDone is its
	// r.backgroundReply, made once and kept while r is pooled.
	bgConn   *Conn
	bgUnique uint64
	bgWaiter backgroundWaiter
	sendDone func(n int, err error)
	// small holds buf and out of a request that fits: every metadata
	// request with one name of up to NameMax bytes, and RENAME's two.
	small [smallRequestSize]byte
}

// smallRequestSize bounds the bytes (header, arguments and names, reply
// header and fixed reply) of a request that is built in a pooled request
// instead of a fresh allocation: a CREATE of a 255-byte name needs 472,
// a RENAME2 of two 608.
const smallRequestSize = 640

// requestPool recycles requests of at most smallRequestSize bytes: a
// metadata operation costs no allocation for its request (two before, the
// request and its buffer, which under TCG with GC cost about 1 µs each).
var requestPool = sync.Pool{New: func() any { return new(request) }}

// newRequest returns a request with argSize bytes of arguments and room
// for a fixed reply of replySize bytes, zeroed: from requestPool when it
// fits in one, else in one allocation.
func (c *Conn) newRequest(op Opcode, nodeid uint64, argSize, replySize int) *request {
	inLen := inHeaderSize + argSize
	total := inLen + outHeaderSize + replySize
	if total <= smallRequestSize {
		r := requestPool.Get().(*request)
		r.op, r.nodeid, r.pooled = op, nodeid, true
		b := r.small[:total]
		clear(b)
		r.buf, r.out = b[:inLen:inLen], b[inLen:]
		return r
	}
	b := make([]byte, total)
	return &request{op: op, nodeid: nodeid, buf: b[:inLen:inLen], out: b[inLen:]}
}

// free returns r to requestPool if it came from there and its RoundTrip
// has returned. The caller must not use r, nor anything sliced from its
// buffers, afterwards.
func (r *request) free() {
	if !r.pooled || !r.answered {
		return
	}
	r.buf, r.data, r.out, r.outData = nil, nil, nil, nil
	r.vec = [4][]byte{}
	r.pooled, r.answered = false, false
	r.creds = nil
	requestPool.Put(r)
}

// in returns the request's buffers: buf, then data if any.
func (r *request) in() [][]byte {
	r.vec[0] = r.buf
	if len(r.data) == 0 {
		return r.vec[0:1:1]
	}
	r.vec[1] = r.data
	return r.vec[0:2:2]
}

// outVec returns the reply's buffers: out, then outData if any.
func (r *request) outVec() [][]byte {
	r.vec[2] = r.out
	if len(r.outData) == 0 {
		return r.vec[2:3:3]
	}
	r.vec[3] = r.outData
	return r.vec[2:4:4]
}

// args returns the argument bytes after the header.
func (r *request) args() []byte { return r.buf[inHeaderSize:] }

// reply is what roundTrip hands to a decoder.
type reply struct {
	unique  uint64
	payload []byte // the fixed reply bytes the server wrote (out after the header)
	dataN   int    // bytes the server wrote into outData
}

// nextUnique hands out request IDs as Linux fuse_get_unique: steps of 2,
// so that the low bit marks an INTERRUPT for the request, and never 0.
func (c *Conn) nextUnique() uint64 {
	for {
		if u := c.unique.Add(2); u != 0 {
			return u
		}
	}
}

// fillHeader assigns a unique ID and writes the fuse_in_header of r.
func (c *Conn) fillHeader(ctx context.Context, r *request, unique uint64) error {
	total := len(r.buf) + len(r.data)
	if total > math.MaxUint32 {
		return syscall.E2BIG
	}
	var cr Creds
	if v := r.creds; v != nil {
		cr = Creds{UID: v.UID, GID: v.GID, PID: pid}
	} else {
		cr = c.opts.Creds
		switch v := ctx.Value(credsKey{}).(type) {
		case Creds:
			cr = v
		case *vfs.Credentials:
			cr = Creds{UID: v.UID, GID: v.GID, PID: pid}
		}
	}
	h := inHeader{Len: uint32(total), Opcode: r.op, Unique: unique, NodeID: r.nodeid,
		UID: cr.UID, GID: cr.GID, PID: cr.PID}
	h.encode(r.buf)
	return nil
}

// ready fails requests made before Init or after Destroy.
func (c *Conn) ready(op Opcode) error {
	if op != OpInit && c.params.Load() == nil {
		return syscall.ENOTCONN
	}
	if c.dead.Load() {
		return syscall.ENOTCONN
	}
	return nil
}

// roundTrip sends r, waits for the reply and validates its header (Linux
// fuse_dev_do_write and fuse_copy_out_args): at least a header, no more
// than the buffers, out.len equal to the bytes written, the unique ID of
// the request, and for an error no payload and an errno in 1..4095. The
// server's errno is returned as a syscall.Errno; a violation is EIO with
// a log line.
func (c *Conn) roundTrip(ctx context.Context, r *request) (reply, error) {
	if err := c.ready(r.op); err != nil {
		return reply{}, err
	}
	unique := c.nextUnique()
	if err := c.fillHeader(ctx, r, unique); err != nil {
		return reply{}, err
	}
	n, err := c.s.RoundTrip(ctx, r.in(), r.outVec())
	if err != nil {
		return reply{}, err
	}
	r.answered = true
	if n < outHeaderSize {
		return reply{}, c.invalid(r.op, unique, badReply("%d bytes, shorter than fuse_out_header", n))
	}
	if n > len(r.out)+len(r.outData) {
		return reply{}, c.invalid(r.op, unique, badReply("%d bytes, more than the %d-byte buffer", n, len(r.out)+len(r.outData)))
	}
	h, _ := decodeOutHeader(r.out)
	if int(h.Len) != n {
		return reply{}, c.invalid(r.op, unique, badReply("out.len %d but %d bytes written", h.Len, n))
	}
	if h.Unique != unique {
		return reply{}, c.invalid(r.op, unique, badReply("reply unique %d", h.Unique))
	}
	errno, ok := replyErrno(h.Error)
	if !ok {
		return reply{}, c.invalid(r.op, unique, badReply("invalid error %d", h.Error))
	}
	if errno != nil {
		if n != outHeaderSize {
			return reply{}, c.invalid(r.op, unique, badReply("error %d with %d bytes of payload", h.Error, n-outHeaderSize))
		}
		return reply{}, errno
	}
	rep := reply{unique: unique}
	if n <= len(r.out) {
		rep.payload = r.out[outHeaderSize:n]
	} else {
		rep.payload = r.out[outHeaderSize:]
		rep.dataN = n - len(r.out)
	}
	return rep, nil
}

// call sends r and decodes a successful reply with decode; a decode error
// is an invalid reply (EIO with a log line). This and callEmpty are the
// helpers every typed call uses, as gVisor's inode_connection.go.
func call[T any](ctx context.Context, c *Conn, r *request, decode func(rep reply) (T, error)) (T, error) {
	var zero T
	rep, err := c.roundTrip(ctx, r)
	if err != nil {
		r.free()
		return zero, err
	}
	v, err := decode(rep)
	op := r.op
	r.free()
	if err != nil {
		return zero, c.invalid(op, rep.unique, err)
	}
	return v, nil
}

// callEmpty sends r, whose reply carries no payload.
func (c *Conn) callEmpty(ctx context.Context, r *request) error {
	rep, err := c.roundTrip(ctx, r)
	if err != nil {
		r.free()
		return err
	}
	op := r.op
	if rep.dataN != 0 {
		err = badReply("empty reply: %d bytes of payload", len(rep.payload)+rep.dataN)
	} else {
		err = decodeEmpty(rep.payload)
	}
	r.free()
	if err != nil {
		return c.invalid(op, rep.unique, err)
	}
	return nil
}

// sendHiprio sends a request without reply (FORGET, BATCH_FORGET,
// INTERRUPT) on the high-priority queue. unique 0 means a fresh one.
func (c *Conn) sendHiprio(ctx context.Context, r *request, unique uint64) error {
	if err := c.ready(r.op); err != nil {
		return err
	}
	if unique == 0 {
		unique = c.nextUnique()
	}
	if err := c.fillHeader(ctx, r, unique); err != nil {
		return err
	}
	return c.s.SendHiprio(ctx, r.in())
}
