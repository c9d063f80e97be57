package fuse_test

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"syscall"
	"testing"

	"github.com/govirtiofs/govirtiofs/fuse"
	"github.com/govirtiofs/govirtiofs/fuse/fusetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// FuzzInitReply answers FUSE_INIT with arbitrary bytes (header included):
// Init must not panic, and accepted parameters must be sane.
func FuzzInitReply(f *testing.F) {
	good := append(make([]byte, 16), fusetest.DefaultInit().Encode()...)
	binary.LittleEndian.PutUint32(good, uint32(len(good)))
	f.Add(good, true)
	f.Add(good[:40], true)
	f.Add(good[:20], false)
	f.Fuzz(func(t *testing.T, raw []byte, fixUnique bool) {
		srv := fusetest.New(fusetest.Options{MaxPages: 64})
		srv.Handle(fuse.OpInit, func(r *fusetest.Request) fusetest.Reply {
			b := append([]byte(nil), raw...)
			if fixUnique && len(b) >= 16 {
				binary.LittleEndian.PutUint64(b[8:], r.Unique)
				binary.LittleEndian.PutUint32(b[0:], uint32(len(b)))
			}
			return fusetest.Reply{Raw: b}
		})
		c := fuse.NewConn(srv, fuse.ConnOptions{Logger: quiet, DAX: true})
		if err := c.Init(context.Background()); err != nil {
			return
		}
		p, ok := c.Params()
		if !ok || p.Major != 7 || p.Minor < 31 || p.Minor > 36 || p.MaxPages < 1 || p.MaxPages > 64 ||
			p.MaxWrite < 4096 || int(p.MaxWrite) > p.MaxPages*4096 || p.MapAlignment > 21 {
			t.Errorf("accepted params %+v", p)
		}
	})
}

// FuzzConnReply answers one call of each kind with arbitrary bytes: no
// panic, and any error is an errno.
func FuzzConnReply(f *testing.F) {
	f.Add(uint8(0), []byte{}, true)
	f.Add(uint8(3), make([]byte, 16+128), true)
	f.Add(uint8(9), append(make([]byte, 16), fusetest.Dirents(fuse.Dirent{Ino: 1, Off: 1, Name: "a"})...), true)
	ctx := context.Background()
	calls := []struct {
		op   fuse.Opcode
		call func(c *fuse.Conn) error
	}{
		{fuse.OpLookup, func(c *fuse.Conn) error { _, err := c.Lookup(ctx, 1, "x"); return err }},
		{fuse.OpGetattr, func(c *fuse.Conn) error { _, err := c.Getattr(ctx, 1, 0, 0); return err }},
		{fuse.OpReadlink, func(c *fuse.Conn) error { _, err := c.Readlink(ctx, 1); return err }},
		{fuse.OpMkdir, func(c *fuse.Conn) error { _, err := c.Mkdir(ctx, 1, "d", 0o755, 0); return err }},
		{fuse.OpCreate, func(c *fuse.Conn) error { _, _, err := c.Create(ctx, 1, "f", 0, 0o644, 0); return err }},
		{fuse.OpRead, func(c *fuse.Conn) error { _, err := c.Read(ctx, 1, fuse.ReadIn{}, make([]byte, 64)); return err }},
		{fuse.OpWrite, func(c *fuse.Conn) error { _, err := c.Write(ctx, 1, fuse.WriteIn{}, make([]byte, 64)); return err }},
		{fuse.OpStatfs, func(c *fuse.Conn) error { _, err := c.Statfs(ctx, 1); return err }},
		{fuse.OpGetxattr, func(c *fuse.Conn) error { _, err := c.Getxattr(ctx, 1, "user.a", make([]byte, 32)); return err }},
		{fuse.OpReaddir, func(c *fuse.Conn) error { _, err := c.Readdir(ctx, 1, fuse.ReadIn{}, 512); return err }},
		{fuse.OpReaddirplus, func(c *fuse.Conn) error { _, err := c.Readdirplus(ctx, 1, fuse.ReadIn{}, 1024); return err }},
		{fuse.OpListxattr, func(c *fuse.Conn) error { _, err := c.Listxattr(ctx, 1, make([]byte, 32)); return err }},
		{fuse.OpGetlk, func(c *fuse.Conn) error { _, err := c.Getlk(ctx, 1, fuse.LkIn{}); return err }},
		{fuse.OpLseek, func(c *fuse.Conn) error { _, err := c.Lseek(ctx, 1, 1, 0, 3); return err }},
		{fuse.OpCopyFileRange, func(c *fuse.Conn) error {
			_, err := c.CopyFileRange(ctx, 1, fuse.CopyFileRangeIn{Len: 10})
			return err
		}},
		{fuse.OpUnlink, func(c *fuse.Conn) error { return c.Unlink(ctx, 1, "x") }},
		{fuse.OpOpen, func(c *fuse.Conn) error { _, err := c.Open(ctx, 1, 0); return err }},
	}
	f.Fuzz(func(t *testing.T, sel uint8, raw []byte, fixHeader bool) {
		k := calls[int(sel)%len(calls)]
		srv := fusetest.New(fusetest.Options{})
		srv.Handle(k.op, func(r *fusetest.Request) fusetest.Reply {
			b := append([]byte(nil), raw...)
			if fixHeader && len(b) >= 16 {
				binary.LittleEndian.PutUint32(b[0:], uint32(len(b)))
				binary.LittleEndian.PutUint64(b[8:], r.Unique)
			}
			return fusetest.Reply{Raw: b}
		})
		c := fuse.NewConn(srv, fuse.ConnOptions{Logger: quiet})
		if err := c.Init(ctx); err != nil {
			t.Fatal(err)
		}
		if err := k.call(c); err != nil {
			if _, ok := err.(syscall.Errno); !ok {
				t.Errorf("%v: error %T %v is not an errno", k.op, err, err)
			}
		}
	})
}
