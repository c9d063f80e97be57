package fuse_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/govirtiofs/govirtiofs/fuse"
	"github.com/govirtiofs/govirtiofs/fuse/fusetest"
	"github.com/govirtiofs/govirtiofs/internal/syncbuf"
)

// newConn returns an initialized Conn over srv and its log.
func newConn(t testing.TB, srv *fusetest.Server, opts fuse.ConnOptions) (*fuse.Conn, *syncbuf.Buffer) {
	t.Helper()
	lb := &syncbuf.Buffer{}
	opts.Logger = slog.New(slog.NewTextHandler(lb, nil))
	c := fuse.NewConn(srv, opts)
	if err := c.Init(context.Background()); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return c, lb
}

func TestInitNegotiates(t *testing.T) {
	srv := fusetest.New(fusetest.Options{})
	var got *fusetest.Request
	srv.Handle(fuse.OpInit, func(r *fusetest.Request) fusetest.Reply {
		got = r
		return fusetest.OK(fusetest.DefaultInit().Encode())
	})
	c, _ := newConn(t, srv, fuse.ConnOptions{})
	if got.Len != 40+64 || got.NodeID != 0 || got.Unique == 0 {
		t.Errorf("INIT header: len %d nodeid %d unique %d; want 104, 0, nonzero", got.Len, got.NodeID, got.Unique)
	}
	if major, minor := got.U32(0), got.U32(4); major != 7 || minor != 36 {
		t.Errorf("INIT asks for %d.%d, want 7.36", major, minor)
	}
	flags := uint64(got.U32(12)) | uint64(got.U32(16))<<32
	for _, f := range []uint64{fuse.InitMaxPages, fuse.InitBigWrites, fuse.InitAsyncRead, fuse.InitDoReaddirplus,
		fuse.InitReaddirplusAuto, fuse.InitParallelDirops, fuse.InitSubmounts, fuse.InitPosixLocks, fuse.InitFlockLocks,
		fuse.InitAutoInvalData, fuse.InitAtomicOTrunc, fuse.InitExt} {
		if flags&f == 0 {
			t.Errorf("INIT flags %#x lack %#x", flags, f)
		}
	}
	for _, f := range []uint64{fuse.InitWritebackCache, fuse.InitMapAlignment, fuse.InitHasInodeDAX} {
		if flags&f != 0 {
			t.Errorf("INIT flags %#x ask for %#x without the option", flags, f)
		}
	}
	p, ok := c.Params()
	want := fuse.Params{Major: 7, Minor: 36, Flags: fusetest.DefaultInit().Flags, MaxReadahead: 128 << 10,
		MaxWrite: 128 << 10, MaxPages: 32, TimeGran: 1}
	if !ok || p != want {
		t.Errorf("Params = %+v, %v\nwant %+v", p, ok, want)
	}
}

func TestInitOptions(t *testing.T) {
	srv := fusetest.New(fusetest.Options{})
	var flags uint64
	srv.Handle(fuse.OpInit, func(r *fusetest.Request) fusetest.Reply {
		flags = uint64(r.U32(12)) | uint64(r.U32(16))<<32
		o := fusetest.DefaultInit()
		o.Flags |= fuse.InitWritebackCache | fuse.InitMapAlignment | fuse.InitHasInodeDAX
		o.MapAlignment = 12
		return fusetest.OK(o.Encode())
	})
	c, _ := newConn(t, srv, fuse.ConnOptions{WritebackCache: true, DAX: true})
	for _, f := range []uint64{fuse.InitWritebackCache, fuse.InitMapAlignment, fuse.InitHasInodeDAX} {
		if flags&f == 0 {
			t.Errorf("INIT flags %#x lack %#x", flags, f)
		}
	}
	p, _ := c.Params()
	if !p.Has(fuse.InitHasInodeDAX) || !p.Has(fuse.InitWritebackCache) || p.MapAlignment != 12 {
		t.Errorf("Params = %+v; want DAX, writeback, map_alignment 12", p)
	}
}

func TestInitParams(t *testing.T) {
	tests := []struct {
		name     string
		limit    int
		modify   func(o *fusetest.InitOut)
		maxPages int
		maxWrite uint32
		minor    uint32
	}{
		{"default", 256, func(o *fusetest.InitOut) {}, 32, 128 << 10, 36},
		{"transport limit", 8, func(o *fusetest.InitOut) {}, 8, 32 << 10, 36},
		{"no MAX_PAGES", 256, func(o *fusetest.InitOut) { o.Flags &^= fuse.InitMaxPages; o.MaxPages = 200 }, 32, 128 << 10, 36},
		{"max_pages 0", 256, func(o *fusetest.InitOut) { o.MaxPages = 0 }, 1, 4096, 36},
		{"max_write 0", 256, func(o *fusetest.InitOut) { o.MaxWrite = 0 }, 32, 4096, 36},
		{"max_write huge", 256, func(o *fusetest.InitOut) { o.MaxWrite = 1 << 30; o.MaxPages = 256 }, 256, 1 << 20, 36},
		{"newer server", 256, func(o *fusetest.InitOut) { o.Minor = 40 }, 32, 128 << 10, 36},
		{"7.31 server", 256, func(o *fusetest.InitOut) { o.Minor = 31 }, 32, 128 << 10, 31},
		{"unasked flags dropped", 256, func(o *fusetest.InitOut) { o.Flags |= fuse.InitWritebackCache }, 32, 128 << 10, 36},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fusetest.New(fusetest.Options{MaxPages: tt.limit})
			srv.Handle(fuse.OpInit, func(*fusetest.Request) fusetest.Reply {
				o := fusetest.DefaultInit()
				tt.modify(&o)
				return fusetest.OK(o.Encode())
			})
			c, _ := newConn(t, srv, fuse.ConnOptions{})
			p, _ := c.Params()
			if p.MaxPages != tt.maxPages || p.MaxWrite != tt.maxWrite || p.Minor != tt.minor {
				t.Errorf("MaxPages %d MaxWrite %d Minor %d; want %d %d %d", p.MaxPages, p.MaxWrite, p.Minor, tt.maxPages, tt.maxWrite, tt.minor)
			}
			if p.Has(fuse.InitWritebackCache) {
				t.Errorf("writeback negotiated without being asked")
			}
		})
	}
}

func TestInitShortReply(t *testing.T) {
	// A 24-byte (FUSE_COMPAT_22_INIT_OUT_SIZE) reply is accepted; the
	// missing fields read as zero.
	srv := fusetest.New(fusetest.Options{})
	srv.Handle(fuse.OpInit, func(*fusetest.Request) fusetest.Reply {
		return fusetest.OK(fusetest.DefaultInit().Encode()[:24])
	})
	c, _ := newConn(t, srv, fuse.ConnOptions{})
	if p, _ := c.Params(); p.MaxPages != 1 || p.MaxWrite != 4096 {
		t.Errorf("Params %+v; want MaxPages 1 (max_pages read as 0), MaxWrite 4096", p)
	}
}

func TestInitRejects(t *testing.T) {
	tests := []struct {
		name  string
		reply func() fusetest.Reply
		want  error
	}{
		{"minor 30", func() fusetest.Reply { o := fusetest.DefaultInit(); o.Minor = 30; return fusetest.OK(o.Encode()) }, fuse.ErrProtocolVersion},
		{"major 8", func() fusetest.Reply { o := fusetest.DefaultInit(); o.Major = 8; return fusetest.OK(o.Encode()) }, syscall.EPROTO},
		{"server EPROTO", func() fusetest.Reply { return fusetest.Err(syscall.EPROTO) }, syscall.EPROTO},
		{"payload 4 bytes", func() fusetest.Reply { return fusetest.OK(make([]byte, 4)) }, syscall.EIO},
		{"payload 65 bytes", func() fusetest.Reply { return fusetest.OK(make([]byte, 65)) }, syscall.EIO},
		{"map_alignment 22", func() fusetest.Reply {
			o := fusetest.DefaultInit()
			o.Flags |= fuse.InitMapAlignment
			o.MapAlignment = 22
			return fusetest.OK(o.Encode())
		}, syscall.EIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fusetest.New(fusetest.Options{})
			srv.Handle(fuse.OpInit, func(*fusetest.Request) fusetest.Reply { return tt.reply() })
			c := fuse.NewConn(srv, fuse.ConnOptions{DAX: true, Logger: slog.New(slog.NewTextHandler(&syncbuf.Buffer{}, nil))})
			err := c.Init(context.Background())
			if !errors.Is(err, tt.want) {
				t.Errorf("Init = %v, want %v", err, tt.want)
			}
			if _, ok := c.Params(); ok {
				t.Errorf("Params set after a failed Init")
			}
			if _, err := c.Getattr(context.Background(), 1, 0, 0); err != syscall.ENOTCONN {
				t.Errorf("Getattr after failed Init = %v, want ENOTCONN", err)
			}
		})
	}
	t.Run("version message", func(t *testing.T) {
		srv := fusetest.New(fusetest.Options{})
		srv.Handle(fuse.OpInit, func(*fusetest.Request) fusetest.Reply {
			o := fusetest.DefaultInit()
			o.Minor = 26
			return fusetest.OK(o.Encode())
		})
		err := fuse.NewConn(srv, fuse.ConnOptions{}).Init(context.Background())
		if err == nil || !strings.Contains(err.Error(), "7.26") || !strings.Contains(err.Error(), "7.31") {
			t.Errorf("Init = %v; want a message naming 7.26 and 7.31", err)
		}
	})
}

func TestInitTwiceAndBefore(t *testing.T) {
	srv := fusetest.New(fusetest.Options{})
	c := fuse.NewConn(srv, fuse.ConnOptions{})
	if _, err := c.Lookup(context.Background(), 1, "x"); err != syscall.ENOTCONN {
		t.Errorf("Lookup before Init = %v, want ENOTCONN", err)
	}
	if err := c.Forget(context.Background(), 2, 1); err != syscall.ENOTCONN {
		t.Errorf("Forget before Init = %v, want ENOTCONN", err)
	}
	if err := c.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Init(context.Background()); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("second Init = %v, want EINVAL", err)
	}
	if n := srv.Count(fuse.OpLookup); n != 0 {
		t.Errorf("%d LOOKUPs reached the server before Init", n)
	}
}

func TestUniqueAndCreds(t *testing.T) {
	srv := fusetest.New(fusetest.Options{})
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var creds []fuse.Creds
	srv.Handle(fuse.OpAccess, func(r *fusetest.Request) fusetest.Reply {
		mu.Lock()
		defer mu.Unlock()
		if r.Unique == 0 || r.Unique%2 != 0 || seen[r.Unique] {
			t.Errorf("unique %d: zero, odd or reused", r.Unique)
		}
		seen[r.Unique] = true
		creds = append(creds, fuse.Creds{UID: r.UID, GID: r.GID, PID: r.PID})
		return fusetest.OK(nil)
	})
	def := fuse.Creds{UID: 1000, GID: 100, PID: 42}
	c, _ := newConn(t, srv, fuse.ConnOptions{Creds: def})
	ctx := context.Background()
	if err := c.Access(ctx, 1, 4); err != nil {
		t.Fatal(err)
	}
	other := fuse.Creds{UID: 0, GID: 0, PID: 7}
	if err := c.Access(fuse.WithCreds(ctx, other), 1, 4); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if err := c.Access(ctx, 1, 4); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if creds[0] != def || creds[1] != other {
		t.Errorf("creds %+v %+v; want %+v %+v", creds[0], creds[1], def, other)
	}
	if len(seen) != 34 {
		t.Errorf("%d distinct uniques, want 34", len(seen))
	}
}

// TestReplyHeader checks the validation every reply goes through: each
// violation is EIO with one log line naming the opcode and unique ID.
func TestReplyHeader(t *testing.T) {
	le := func(b []byte, off int, v uint64, n int) {
		for i := range n {
			b[off+i] = byte(v >> (8 * i))
		}
	}
	hdr := func(length uint32, errno int32, unique uint64, payload int) []byte {
		b := make([]byte, 16+payload)
		le(b, 0, uint64(length), 4)
		le(b, 4, uint64(uint32(errno)), 4)
		le(b, 8, unique, 8)
		return b
	}
	tests := []struct {
		name string
		raw  func(unique uint64) fusetest.Reply
		want error
	}{
		{"ok", func(u uint64) fusetest.Reply { return fusetest.Reply{Raw: hdr(16, 0, u, 0)} }, nil},
		{"errno", func(u uint64) fusetest.Reply { return fusetest.Reply{Raw: hdr(16, -13, u, 0)} }, syscall.EACCES},
		{"errno 4095", func(u uint64) fusetest.Reply { return fusetest.Reply{Raw: hdr(16, -4095, u, 0)} }, syscall.Errno(4095)},
		{"short", func(u uint64) fusetest.Reply { return fusetest.Reply{Raw: hdr(16, 0, u, 0)[:12]} }, syscall.EIO},
		{"len mismatch", func(u uint64) fusetest.Reply { return fusetest.Reply{Raw: hdr(24, 0, u, 0)} }, syscall.EIO},
		{"unique mismatch", func(u uint64) fusetest.Reply { return fusetest.Reply{Raw: hdr(16, 0, u+2, 0)} }, syscall.EIO},
		{"positive error", func(u uint64) fusetest.Reply { return fusetest.Reply{Raw: hdr(16, 5, u, 0)} }, syscall.EIO},
		{"absurd error", func(u uint64) fusetest.Reply { return fusetest.Reply{Raw: hdr(16, -4096, u, 0)} }, syscall.EIO},
		{"error with payload", func(u uint64) fusetest.Reply { return fusetest.Reply{Raw: hdr(24, -2, u, 8)} }, syscall.EIO},
		{"payload on empty reply", func(u uint64) fusetest.Reply { return fusetest.Reply{Raw: hdr(24, 0, u, 8)} }, syscall.EIO},
		{"count beyond buffer", func(u uint64) fusetest.Reply { return fusetest.Reply{Raw: hdr(16, 0, u, 0), RawLen: 4096} }, syscall.EIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fusetest.New(fusetest.Options{})
			var unique uint64
			srv.Handle(fuse.OpFsync, func(r *fusetest.Request) fusetest.Reply {
				unique = r.Unique
				return tt.raw(r.Unique)
			})
			c, lb := newConn(t, srv, fuse.ConnOptions{})
			err := c.Fsync(context.Background(), 5, 6, 0)
			if err != tt.want {
				t.Fatalf("Fsync = %v, want %v", err, tt.want)
			}
			log := lb.String()
			if tt.want == syscall.EIO {
				if strings.Count(log, "\n") != 1 || !strings.Contains(log, "opcode=FSYNC") ||
					!strings.Contains(log, "unique="+itoa(unique)) {
					t.Errorf("log = %q; want one line with opcode=FSYNC unique=%d", log, unique)
				}
			} else if log != "" {
				t.Errorf("log = %q, want none", log)
			}
		})
	}
}

func itoa(u uint64) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + u%10)}, b...)
		u /= 10
		if u == 0 {
			return string(b)
		}
	}
}

func TestSenderErrors(t *testing.T) {
	srv := fusetest.New(fusetest.Options{})
	c, _ := newConn(t, srv, fuse.ConnOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Statfs(ctx, 1); err != context.Canceled {
		t.Errorf("Statfs with canceled ctx = %v, want context.Canceled", err)
	}
	srv.Close()
	if _, err := c.Statfs(context.Background(), 1); err != syscall.ENOTCONN {
		t.Errorf("Statfs on closed device = %v, want ENOTCONN", err)
	}
}

func TestDestroy(t *testing.T) {
	srv := fusetest.New(fusetest.Options{})
	srv.Handle(fuse.OpDestroy, func(*fusetest.Request) fusetest.Reply { return fusetest.OK(nil) })
	c, _ := newConn(t, srv, fuse.ConnOptions{})
	if err := c.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Statfs(context.Background(), 1); err != syscall.ENOTCONN {
		t.Errorf("Statfs after Destroy = %v, want ENOTCONN", err)
	}
}
