package fusetest

import (
	"context"
	"encoding/binary"
	"sync"
	"syscall"
	"time"

	"github.com/govirtiofs/govirtiofs/fuse"
)

var le = binary.LittleEndian

// InHeaderSize and OutHeaderSize are the sizes of fuse_in_header and
// fuse_out_header.
const (
	InHeaderSize  = 40
	OutHeaderSize = 16
)

// Request is one request as the server received it.
type Request struct {
	Len    uint32
	Opcode fuse.Opcode
	Unique uint64
	NodeID uint64
	UID    uint32
	GID    uint32
	PID    uint32
	// Args are the bytes after the fuse_in_header, all input buffers
	// concatenated (a copy: handlers may keep it).
	Args []byte
	// OutSize is the capacity of the reply buffers, header included.
	OutSize int
}

// U32 returns the little-endian uint32 at off in Args, or 0 if Args is
// too short.
func (r *Request) U32(off int) uint32 {
	if off < 0 || off+4 > len(r.Args) {
		return 0
	}
	return le.Uint32(r.Args[off:])
}

// U64 returns the little-endian uint64 at off in Args, or 0 if Args is
// too short.
func (r *Request) U64(off int) uint64 {
	if off < 0 || off+8 > len(r.Args) {
		return 0
	}
	return le.Uint64(r.Args[off:])
}

// Strings splits Args from off into NUL-terminated strings; bytes after
// the last NUL are dropped.
func (r *Request) Strings(off int) []string {
	var out []string
	if off < 0 || off > len(r.Args) {
		return nil
	}
	b := r.Args[off:]
	for {
		i := 0
		for i < len(b) && b[i] != 0 {
			i++
		}
		if i == len(b) {
			return out
		}
		out = append(out, string(b[:i]))
		b = b[i+1:]
	}
}

// Reply is a handler's answer.
type Reply struct {
	// Errno, if nonzero, is sent as the error (negated) with no payload.
	Errno syscall.Errno
	// Payload follows the fuse_out_header.
	Payload []byte
	// Raw, if non-nil, is written verbatim instead (header included), to
	// script protocol violations; RawLen then overrides the byte count
	// RoundTrip reports if nonzero.
	Raw    []byte
	RawLen int
}

// Err returns a Reply carrying errno e.
func Err(e syscall.Errno) Reply { return Reply{Errno: e} }

// OK returns a Reply with payload p.
func OK(p []byte) Reply { return Reply{Payload: p} }

// Handler answers one request. It runs without the Server's lock held and
// may be called concurrently.
type Handler func(req *Request) Reply

// Options configure a Server.
type Options struct {
	// MaxPages is returned in Limits; 0 means 256.
	MaxPages int
	// Window is returned by Window.
	Window []byte
}

// Server is a fake fuse.Sender. Opcodes without a handler answer ENOSYS;
// INIT has a default handler (DefaultInit) until replaced.
type Server struct {
	opts Options // immutable

	mu       sync.Mutex // guards the fields below
	handlers map[fuse.Opcode]Handler
	hiprio   []Request
	count    map[fuse.Opcode]int
	closed   bool
}

var _ fuse.Sender = (*Server)(nil)

// New returns a Server answering INIT with DefaultInit.
func New(opts Options) *Server {
	if opts.MaxPages == 0 {
		opts.MaxPages = 256
	}
	s := &Server{opts: opts, handlers: map[fuse.Opcode]Handler{}, count: map[fuse.Opcode]int{}}
	s.Handle(fuse.OpInit, func(*Request) Reply { return OK(DefaultInit().Encode()) })
	return s
}

// Handle sets the handler of op.
func (s *Server) Handle(op fuse.Opcode, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[op] = h
}

// Close makes every later request fail with ENOTCONN, as a device that
// went away.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
}

// Count returns how many requests with opcode op arrived (both queues).
func (s *Server) Count(op fuse.Opcode) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count[op]
}

// Hiprio returns the requests sent on the hiprio queue so far.
func (s *Server) Hiprio() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.hiprio...)
}

func parse(in [][]byte) (*Request, error) {
	var all []byte
	for _, b := range in {
		all = append(all, b...)
	}
	if len(all) < InHeaderSize {
		return nil, syscall.EINVAL
	}
	r := &Request{
		Len: le.Uint32(all[0:]), Opcode: fuse.Opcode(le.Uint32(all[4:])), Unique: le.Uint64(all[8:]),
		NodeID: le.Uint64(all[16:]), UID: le.Uint32(all[24:]), GID: le.Uint32(all[28:]),
		PID: le.Uint32(all[32:]), Args: all[InHeaderSize:],
	}
	if int(r.Len) != len(all) {
		return nil, syscall.EINVAL
	}
	return r, nil
}

// RoundTrip implements fuse.Sender: it parses the request, runs the
// handler and scatters the reply into out. A reply larger than out is cut
// short (its header still claims the full length), as a server that
// overran the buffer.
func (s *Server) RoundTrip(ctx context.Context, in, out [][]byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	req, err := parse(in)
	if err != nil {
		return 0, err
	}
	for _, b := range out {
		req.OutSize += len(b)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, syscall.ENOTCONN
	}
	s.count[req.Opcode]++
	h := s.handlers[req.Opcode]
	s.mu.Unlock()

	rep := Err(syscall.ENOSYS)
	if h != nil {
		rep = h(req)
	}
	msg := rep.Raw
	if msg == nil {
		msg = make([]byte, OutHeaderSize+len(rep.Payload))
		if rep.Errno != 0 {
			msg = msg[:OutHeaderSize]
			le.PutUint32(msg[4:], uint32(-int32(rep.Errno)))
		} else {
			copy(msg[OutHeaderSize:], rep.Payload)
		}
		le.PutUint32(msg[0:], uint32(len(msg)))
		le.PutUint64(msg[8:], req.Unique)
	}
	n := 0
	for _, b := range out {
		n += copy(b, msg[n:])
	}
	if rep.Raw != nil && rep.RawLen != 0 {
		n = rep.RawLen
	}
	return n, nil
}

// SendHiprio implements fuse.Sender: it records the request.
func (s *Server) SendHiprio(ctx context.Context, in [][]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req, err := parse(in)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return syscall.ENOTCONN
	}
	s.count[req.Opcode]++
	s.hiprio = append(s.hiprio, *req)
	return nil
}

// Limits implements fuse.Sender.
func (s *Server) Limits() fuse.Limits { return fuse.Limits{MaxPages: s.opts.MaxPages} }

// Window implements fuse.Sender.
func (s *Server) Window() []byte { return s.opts.Window }

// InitOut is a fuse_init_out to encode.
type InitOut struct {
	Major, Minor, MaxReadahead uint32
	Flags                      uint64 // flags | flags2<<32
	MaxBackground              uint16
	CongestionThreshold        uint16
	MaxWrite, TimeGran         uint32
	MaxPages, MapAlignment     uint16
}

// DefaultInit is what virtiofsd answers a 7.36 client asking for
// everything: 7.36, max_write 128 KiB, 32 pages.
func DefaultInit() InitOut {
	return InitOut{Major: 7, Minor: 36, MaxReadahead: 128 << 10,
		Flags: fuse.InitAsyncRead | fuse.InitPosixLocks | fuse.InitAtomicOTrunc | fuse.InitBigWrites |
			fuse.InitFlockLocks | fuse.InitAutoInvalData | fuse.InitDoReaddirplus | fuse.InitReaddirplusAuto |
			fuse.InitParallelDirops | fuse.InitMaxPages | fuse.InitSubmounts,
		MaxWrite: 128 << 10, MaxPages: 32, TimeGran: 1}
}

// Encode returns the 64-byte fuse_init_out. Flags above bit 31 go to
// flags2 and set FUSE_INIT_EXT.
func (o InitOut) Encode() []byte {
	b := make([]byte, 64)
	flags := o.Flags
	if flags>>32 != 0 {
		flags |= fuse.InitExt
	}
	le.PutUint32(b[0:], o.Major)
	le.PutUint32(b[4:], o.Minor)
	le.PutUint32(b[8:], o.MaxReadahead)
	le.PutUint32(b[12:], uint32(flags))
	le.PutUint16(b[16:], o.MaxBackground)
	le.PutUint16(b[18:], o.CongestionThreshold)
	le.PutUint32(b[20:], o.MaxWrite)
	le.PutUint32(b[24:], o.TimeGran)
	le.PutUint16(b[28:], o.MaxPages)
	le.PutUint16(b[30:], o.MapAlignment)
	le.PutUint32(b[32:], uint32(flags>>32))
	return b
}

func putTime(b []byte, secOff, nsecOff int, t time.Time) {
	if t.IsZero() {
		return
	}
	le.PutUint64(b[secOff:], uint64(t.Unix()))
	le.PutUint32(b[nsecOff:], uint32(t.Nanosecond()))
}

// AttrBytes encodes a fuse_attr (88 bytes).
func AttrBytes(a fuse.Attr) []byte {
	b := make([]byte, 88)
	le.PutUint64(b[0:], a.Ino)
	le.PutUint64(b[8:], a.Size)
	le.PutUint64(b[16:], a.Blocks)
	putTime(b, 24, 48, a.Atime)
	putTime(b, 32, 52, a.Mtime)
	putTime(b, 40, 56, a.Ctime)
	le.PutUint32(b[60:], a.Mode)
	le.PutUint32(b[64:], a.Nlink)
	le.PutUint32(b[68:], a.UID)
	le.PutUint32(b[72:], a.GID)
	le.PutUint32(b[76:], a.Rdev)
	le.PutUint32(b[80:], a.Blksize)
	le.PutUint32(b[84:], a.Flags)
	return b
}

func putValid(b []byte, secOff, nsecOff int, d time.Duration) {
	if d <= 0 {
		return
	}
	le.PutUint64(b[secOff:], uint64(d/time.Second))
	le.PutUint32(b[nsecOff:], uint32(d%time.Second))
}

// EntryOut encodes a fuse_entry_out (128 bytes).
func EntryOut(e fuse.Entry) []byte {
	b := make([]byte, 40, 128)
	le.PutUint64(b[0:], e.NodeID)
	le.PutUint64(b[8:], e.Generation)
	putValid(b, 16, 32, e.EntryValid)
	putValid(b, 24, 36, e.AttrValid)
	return append(b, AttrBytes(e.Attr)...)
}

// AttrOut encodes a fuse_attr_out (104 bytes).
func AttrOut(a fuse.AttrOut) []byte {
	b := make([]byte, 16, 104)
	putValid(b, 0, 8, a.AttrValid)
	return append(b, AttrBytes(a.Attr)...)
}

// OpenOut encodes a fuse_open_out (16 bytes).
func OpenOut(o fuse.OpenOut) []byte {
	b := make([]byte, 16)
	le.PutUint64(b[0:], o.Fh)
	le.PutUint32(b[8:], o.OpenFlags)
	return b
}

// WriteOut encodes a fuse_write_out (8 bytes).
func WriteOut(n uint32) []byte {
	b := make([]byte, 8)
	le.PutUint32(b, n)
	return b
}

// GetxattrOut encodes a fuse_getxattr_out (8 bytes).
func GetxattrOut(n uint32) []byte { return WriteOut(n) }

// LseekOut encodes a fuse_lseek_out (8 bytes).
func LseekOut(off uint64) []byte {
	b := make([]byte, 8)
	le.PutUint64(b, off)
	return b
}

// LkOut encodes a fuse_lk_out (24 bytes).
func LkOut(l fuse.FileLock) []byte {
	b := make([]byte, 24)
	le.PutUint64(b[0:], l.Start)
	le.PutUint64(b[8:], l.End)
	le.PutUint32(b[16:], l.Type)
	le.PutUint32(b[20:], l.PID)
	return b
}

// StatfsOut encodes a fuse_statfs_out (80 bytes).
func StatfsOut(s fuse.Statfs) []byte {
	b := make([]byte, 80)
	le.PutUint64(b[0:], s.Blocks)
	le.PutUint64(b[8:], s.Bfree)
	le.PutUint64(b[16:], s.Bavail)
	le.PutUint64(b[24:], s.Files)
	le.PutUint64(b[32:], s.Ffree)
	le.PutUint32(b[40:], s.Bsize)
	le.PutUint32(b[44:], s.Namelen)
	le.PutUint32(b[48:], s.Frsize)
	return b
}

// Dirent appends one fuse_dirent with its padding to b.
func Dirent(b []byte, d fuse.Dirent) []byte {
	h := make([]byte, 24)
	le.PutUint64(h[0:], d.Ino)
	le.PutUint64(h[8:], d.Off)
	le.PutUint32(h[16:], uint32(len(d.Name)))
	le.PutUint32(h[20:], d.Type)
	b = append(b, h...)
	b = append(b, d.Name...)
	for (24+len(d.Name))%8 != 0 {
		b = append(b, 0)
		d.Name += "x"
	}
	return b
}

// Dirents encodes a READDIR reply.
func Dirents(ds ...fuse.Dirent) []byte {
	var b []byte
	for _, d := range ds {
		b = Dirent(b, d)
	}
	return b
}

// DirentsPlus encodes a READDIRPLUS reply.
func DirentsPlus(ds ...fuse.DirentPlus) []byte {
	var b []byte
	for _, d := range ds {
		b = append(b, EntryOut(d.Entry)...)
		b = Dirent(b, d.Dirent)
	}
	return b
}
