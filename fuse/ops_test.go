package fuse_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"reflect"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs/fuse"
	"github.com/govirtiofs/govirtiofs/fuse/fusetest"
)

var (
	fileAttr = fuse.Attr{Ino: 77, Size: 5, Blocks: 8, Atime: time.Unix(10, 1), Mtime: time.Unix(20, 2),
		Ctime: time.Unix(30, 3), Mode: fuse.ModeReg | 0o644, Nlink: 1, UID: 1000, GID: 100, Blksize: 4096}
	dirAttr  = withMode(fileAttr, fuse.ModeDir|0o755)
	linkAttr = withMode(fileAttr, fuse.ModeLnk|0o777)
)

func withMode(a fuse.Attr, mode uint32) fuse.Attr {
	a.Mode = mode
	return a
}

func entry(nodeid uint64, a fuse.Attr) fuse.Entry {
	return fuse.Entry{NodeID: nodeid, Generation: 1, EntryValid: time.Second, AttrValid: 2 * time.Second, Attr: a}
}

// check fails the test from inside a handler.
func check(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

// TestOps sends each opcode through a fusetest server that checks the
// request bytes and answers; the typed result must be what it sent.
func TestOps(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		op      fuse.Opcode
		handler func(t *testing.T, r *fusetest.Request) fusetest.Reply
		call    func(t *testing.T, c *fuse.Conn) error
	}{
		{fuse.OpLookup, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "nodeid", r.NodeID, uint64(1))
			check(t, "name", r.Strings(0), []string{"file"})
			return fusetest.OK(fusetest.EntryOut(entry(5, fileAttr)))
		}, func(t *testing.T, c *fuse.Conn) error {
			e, err := c.Lookup(ctx, 1, "file")
			check(t, "entry", e, entry(5, fileAttr))
			return err
		}},
		{fuse.OpGetattr, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "flags fh", []uint64{uint64(r.U32(0)), r.U64(8)}, []uint64{1, 9})
			return fusetest.OK(fusetest.AttrOut(fuse.AttrOut{AttrValid: time.Second, Attr: fileAttr}))
		}, func(t *testing.T, c *fuse.Conn) error {
			a, err := c.Getattr(ctx, 5, fuse.GetattrFh, 9)
			check(t, "attr", a, fuse.AttrOut{AttrValid: time.Second, Attr: fileAttr})
			return err
		}},
		{fuse.OpSetattr, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "valid size", []uint64{uint64(r.U32(0)), r.U64(16)}, []uint64{uint64(fuse.SetattrSize), 100})
			a := fileAttr
			a.Size = 100
			return fusetest.OK(fusetest.AttrOut(fuse.AttrOut{Attr: a}))
		}, func(t *testing.T, c *fuse.Conn) error {
			a, err := c.Setattr(ctx, 5, fuse.SetattrIn{Valid: fuse.SetattrSize, Size: 100})
			check(t, "size", a.Attr.Size, uint64(100))
			return err
		}},
		{fuse.OpReadlink, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "args", len(r.Args), 0)
			return fusetest.OK([]byte("../target"))
		}, func(t *testing.T, c *fuse.Conn) error {
			s, err := c.Readlink(ctx, 6)
			check(t, "target", s, "../target")
			return err
		}},
		{fuse.OpSymlink, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "names", r.Strings(0), []string{"l", "target"})
			return fusetest.OK(fusetest.EntryOut(entry(6, linkAttr)))
		}, func(t *testing.T, c *fuse.Conn) error {
			e, err := c.Symlink(ctx, 1, "l", "target")
			check(t, "nodeid", e.NodeID, uint64(6))
			return err
		}},
		{fuse.OpMknod, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "mode rdev umask", []uint32{r.U32(0), r.U32(4), r.U32(8)}, []uint32{fuse.ModeFIFO | 0o600, 0, 0o22})
			check(t, "name", r.Strings(16), []string{"p"})
			return fusetest.OK(fusetest.EntryOut(entry(7, withMode(fileAttr, fuse.ModeFIFO|0o600))))
		}, func(t *testing.T, c *fuse.Conn) error {
			_, err := c.Mknod(ctx, 1, "p", fuse.ModeFIFO|0o600, 0, 0o22)
			return err
		}},
		{fuse.OpMkdir, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "mode umask", []uint32{r.U32(0), r.U32(4)}, []uint32{0o755, 0o22})
			check(t, "name", r.Strings(8), []string{"d"})
			return fusetest.OK(fusetest.EntryOut(entry(8, dirAttr)))
		}, func(t *testing.T, c *fuse.Conn) error {
			_, err := c.Mkdir(ctx, 1, "d", 0o755, 0o22)
			return err
		}},
		{fuse.OpUnlink, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "name", r.Strings(0), []string{"f"})
			return fusetest.OK(nil)
		}, func(t *testing.T, c *fuse.Conn) error { return c.Unlink(ctx, 1, "f") }},
		{fuse.OpRmdir, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "name", r.Strings(0), []string{"d"})
			return fusetest.OK(nil)
		}, func(t *testing.T, c *fuse.Conn) error { return c.Rmdir(ctx, 1, "d") }},
		{fuse.OpRename, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "olddir newdir", []uint64{r.NodeID, r.U64(0)}, []uint64{1, 8})
			check(t, "names", r.Strings(8), []string{"a", "b"})
			return fusetest.OK(nil)
		}, func(t *testing.T, c *fuse.Conn) error { return c.Rename(ctx, 1, "a", 8, "b") }},
		{fuse.OpRename2, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "newdir flags", []uint64{r.U64(0), uint64(r.U32(8))}, []uint64{8, 1})
			check(t, "names", r.Strings(16), []string{"a", "b"})
			return fusetest.OK(nil)
		}, func(t *testing.T, c *fuse.Conn) error { return c.Rename2(ctx, 1, "a", 8, "b", 1) }},
		{fuse.OpLink, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "oldnodeid", r.U64(0), uint64(5))
			check(t, "name", r.Strings(8), []string{"h"})
			return fusetest.OK(fusetest.EntryOut(entry(5, fileAttr)))
		}, func(t *testing.T, c *fuse.Conn) error {
			_, err := c.Link(ctx, 5, 1, "h")
			return err
		}},
		{fuse.OpOpen, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "flags", r.U32(0), uint32(2))
			return fusetest.OK(fusetest.OpenOut(fuse.OpenOut{Fh: 11, OpenFlags: fuse.OpenKeepCache}))
		}, func(t *testing.T, c *fuse.Conn) error {
			o, err := c.Open(ctx, 5, 2)
			check(t, "open", o, fuse.OpenOut{Fh: 11, OpenFlags: fuse.OpenKeepCache})
			return err
		}},
		{fuse.OpRead, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "fh off size", []uint64{r.U64(0), r.U64(8), uint64(r.U32(16))}, []uint64{11, 100, 10})
			return fusetest.OK([]byte("hello"))
		}, func(t *testing.T, c *fuse.Conn) error {
			buf := make([]byte, 10)
			n, err := c.Read(ctx, 5, fuse.ReadIn{Fh: 11, Offset: 100}, buf)
			check(t, "data", string(buf[:n]), "hello")
			return err
		}},
		{fuse.OpWrite, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "fh off size", []uint64{r.U64(0), r.U64(8), uint64(r.U32(16))}, []uint64{11, 3, 5})
			check(t, "data", string(r.Args[40:]), "world")
			return fusetest.OK(fusetest.WriteOut(5))
		}, func(t *testing.T, c *fuse.Conn) error {
			n, err := c.Write(ctx, 5, fuse.WriteIn{Fh: 11, Offset: 3}, []byte("world"))
			check(t, "n", n, 5)
			return err
		}},
		{fuse.OpStatfs, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			return fusetest.OK(fusetest.StatfsOut(fuse.Statfs{Blocks: 10, Bsize: 4096, Namelen: 255}))
		}, func(t *testing.T, c *fuse.Conn) error {
			s, err := c.Statfs(ctx, 1)
			check(t, "statfs", s, fuse.Statfs{Blocks: 10, Bsize: 4096, Namelen: 255})
			return err
		}},
		{fuse.OpRelease, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "fh flags rflags owner", []uint64{r.U64(0), uint64(r.U32(8)), uint64(r.U32(12)), r.U64(16)}, []uint64{11, 2, 1, 99})
			return fusetest.OK(nil)
		}, func(t *testing.T, c *fuse.Conn) error {
			return c.Release(ctx, 5, fuse.ReleaseIn{Fh: 11, Flags: 2, ReleaseFlags: fuse.ReleaseFlush, LockOwner: 99})
		}},
		{fuse.OpFsync, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "fh flags", []uint64{r.U64(0), uint64(r.U32(8))}, []uint64{11, 1})
			return fusetest.OK(nil)
		}, func(t *testing.T, c *fuse.Conn) error { return c.Fsync(ctx, 5, 11, fuse.FsyncFdatasync) }},
		{fuse.OpSetxattr, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			// Without FUSE_SETXATTR_EXT: the 8-byte compatible form.
			check(t, "size flags", []uint32{r.U32(0), r.U32(4)}, []uint32{3, 1})
			check(t, "name value", string(r.Args[8:]), "user.k\x00v\x00w")
			return fusetest.OK(nil)
		}, func(t *testing.T, c *fuse.Conn) error { return c.Setxattr(ctx, 5, "user.k", []byte("v\x00w"), 1, 0) }},
		{fuse.OpGetxattr, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "name", r.Strings(8), []string{"user.k"})
			if r.U32(0) == 0 {
				return fusetest.OK(fusetest.GetxattrOut(3))
			}
			return fusetest.OK([]byte("abc"))
		}, func(t *testing.T, c *fuse.Conn) error {
			n, err := c.Getxattr(ctx, 5, "user.k", nil)
			check(t, "size", n, 3)
			if err != nil {
				return err
			}
			buf := make([]byte, 16)
			n, err = c.Getxattr(ctx, 5, "user.k", buf)
			check(t, "value", string(buf[:n]), "abc")
			return err
		}},
		{fuse.OpListxattr, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			if r.U32(0) == 0 {
				return fusetest.OK(fusetest.GetxattrOut(14))
			}
			return fusetest.OK([]byte("user.a\x00user.b\x00"))
		}, func(t *testing.T, c *fuse.Conn) error {
			n, err := c.Listxattr(ctx, 5, nil)
			check(t, "size", n, 14)
			buf := make([]byte, n)
			n, err2 := c.Listxattr(ctx, 5, buf)
			check(t, "list", string(buf[:n]), "user.a\x00user.b\x00")
			if err == nil {
				err = err2
			}
			return err
		}},
		{fuse.OpRemovexattr, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "name", r.Strings(0), []string{"user.k"})
			return fusetest.OK(nil)
		}, func(t *testing.T, c *fuse.Conn) error { return c.Removexattr(ctx, 5, "user.k") }},
		{fuse.OpFlush, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "fh owner", []uint64{r.U64(0), r.U64(16)}, []uint64{11, 99})
			return fusetest.OK(nil)
		}, func(t *testing.T, c *fuse.Conn) error { return c.Flush(ctx, 5, 11, 99) }},
		{fuse.OpOpendir, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			return fusetest.OK(fusetest.OpenOut(fuse.OpenOut{Fh: 12}))
		}, func(t *testing.T, c *fuse.Conn) error {
			o, err := c.Opendir(ctx, 1, 0)
			check(t, "fh", o.Fh, uint64(12))
			return err
		}},
		{fuse.OpReaddir, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "fh off size", []uint64{r.U64(0), r.U64(8), uint64(r.U32(16))}, []uint64{12, 0, 4096})
			return fusetest.OK(fusetest.Dirents(fuse.Dirent{Ino: 1, Off: 1, Type: 4, Name: "."},
				fuse.Dirent{Ino: 77, Off: 2, Type: 8, Name: "file.txt"}))
		}, func(t *testing.T, c *fuse.Conn) error {
			ds, err := c.Readdir(ctx, 1, fuse.ReadIn{Fh: 12}, 4096)
			check(t, "dirents", ds, []fuse.Dirent{{Ino: 1, Off: 1, Type: 4, Name: "."}, {Ino: 77, Off: 2, Type: 8, Name: "file.txt"}})
			return err
		}},
		{fuse.OpReaddirplus, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			return fusetest.OK(fusetest.DirentsPlus(
				fuse.DirentPlus{Dirent: fuse.Dirent{Ino: 1, Off: 1, Type: 4, Name: ".."}, Entry: fuse.Entry{Attr: withMode(fuse.Attr{}, fuse.ModeDir)}},
				fuse.DirentPlus{Dirent: fuse.Dirent{Ino: 77, Off: 2, Type: 8, Name: "f"}, Entry: entry(5, fileAttr)}))
		}, func(t *testing.T, c *fuse.Conn) error {
			ds, err := c.Readdirplus(ctx, 1, fuse.ReadIn{Fh: 12}, 4096)
			check(t, "direntplus", ds, []fuse.DirentPlus{
				{Dirent: fuse.Dirent{Ino: 1, Off: 1, Type: 4, Name: ".."}},
				{Dirent: fuse.Dirent{Ino: 77, Off: 2, Type: 8, Name: "f"}, Entry: entry(5, fileAttr)}})
			return err
		}},
		{fuse.OpReleasedir, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "fh", r.U64(0), uint64(12))
			return fusetest.OK(nil)
		}, func(t *testing.T, c *fuse.Conn) error { return c.Releasedir(ctx, 1, fuse.ReleaseIn{Fh: 12}) }},
		{fuse.OpFsyncdir, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "fh", r.U64(0), uint64(12))
			return fusetest.OK(nil)
		}, func(t *testing.T, c *fuse.Conn) error { return c.Fsyncdir(ctx, 1, 12, 0) }},
		{fuse.OpGetlk, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "fh owner start end type", []uint64{r.U64(0), r.U64(8), r.U64(16), r.U64(24), uint64(r.U32(32))},
				[]uint64{11, 99, 0, math.MaxInt64, fuse.LockWrite})
			return fusetest.OK(fusetest.LkOut(fuse.FileLock{Start: 0, End: 9, Type: fuse.LockRead, PID: 4}))
		}, func(t *testing.T, c *fuse.Conn) error {
			l, err := c.Getlk(ctx, 5, fuse.LkIn{Fh: 11, Owner: 99, Lk: fuse.FileLock{End: math.MaxInt64, Type: fuse.LockWrite}})
			check(t, "lock", l, fuse.FileLock{End: 9, Type: fuse.LockRead, PID: 4})
			return err
		}},
		{fuse.OpSetlk, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "lk_flags", r.U32(40), fuse.LkFlock)
			return fusetest.Err(syscall.EAGAIN)
		}, func(t *testing.T, c *fuse.Conn) error {
			err := c.Setlk(ctx, 5, fuse.LkIn{Fh: 11, LkFlags: fuse.LkFlock, Lk: fuse.FileLock{Type: fuse.LockWrite}})
			check(t, "err", err, error(syscall.EAGAIN))
			return nil
		}},
		{fuse.OpSetlkw, func(t *testing.T, r *fusetest.Request) fusetest.Reply { return fusetest.OK(nil) },
			func(t *testing.T, c *fuse.Conn) error { return c.Setlkw(ctx, 5, fuse.LkIn{Fh: 11}) }},
		{fuse.OpAccess, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "mask", r.U32(0), uint32(2))
			return fusetest.Err(syscall.EACCES)
		}, func(t *testing.T, c *fuse.Conn) error {
			check(t, "err", c.Access(ctx, 5, 2), error(syscall.EACCES))
			return nil
		}},
		{fuse.OpCreate, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "flags mode umask", []uint32{r.U32(0), r.U32(4), r.U32(8)}, []uint32{0o102, 0o644, 0o22})
			check(t, "name", r.Strings(16), []string{"new"})
			return fusetest.OK(append(fusetest.EntryOut(entry(9, fileAttr)), fusetest.OpenOut(fuse.OpenOut{Fh: 13})...))
		}, func(t *testing.T, c *fuse.Conn) error {
			e, o, err := c.Create(ctx, 1, "new", 0o102, 0o644, 0o22)
			check(t, "nodeid fh", []uint64{e.NodeID, o.Fh}, []uint64{9, 13})
			return err
		}},
		{fuse.OpFallocate, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "fh off len mode", []uint64{r.U64(0), r.U64(8), r.U64(16), uint64(r.U32(24))}, []uint64{11, 4096, 8192, 1})
			return fusetest.OK(nil)
		}, func(t *testing.T, c *fuse.Conn) error { return c.Fallocate(ctx, 5, 11, 4096, 8192, 1) }},
		{fuse.OpLseek, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "fh off whence", []uint64{r.U64(0), r.U64(8), uint64(r.U32(16))}, []uint64{11, 1, 4})
			return fusetest.OK(fusetest.LseekOut(8192))
		}, func(t *testing.T, c *fuse.Conn) error {
			off, err := c.Lseek(ctx, 5, 11, 1, 4)
			check(t, "offset", off, uint64(8192))
			return err
		}},
		{fuse.OpCopyFileRange, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "args", []uint64{r.U64(0), r.U64(8), r.U64(16), r.U64(24), r.U64(32), r.U64(40), r.U64(48)}, []uint64{1, 2, 3, 4, 5, 6, 0})
			return fusetest.OK(fusetest.WriteOut(6))
		}, func(t *testing.T, c *fuse.Conn) error {
			n, err := c.CopyFileRange(ctx, 5, fuse.CopyFileRangeIn{FhIn: 1, OffIn: 2, NodeIDOut: 3, FhOut: 4, OffOut: 5, Len: 6})
			check(t, "n", n, 6)
			return err
		}},
		{fuse.OpSyncfs, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "args", r.Args, make([]byte, 8))
			return fusetest.OK(nil)
		}, func(t *testing.T, c *fuse.Conn) error { return c.Syncfs(ctx, 1) }},
		{fuse.OpSetupmapping, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			check(t, "args", []uint64{r.U64(0), r.U64(8), r.U64(16), r.U64(24), r.U64(32)}, []uint64{11, 0, 1 << 21, 3, 1 << 21})
			return fusetest.OK(nil)
		}, func(t *testing.T, c *fuse.Conn) error {
			return c.Setupmapping(ctx, 5, fuse.SetupmappingIn{Fh: 11, Len: 1 << 21, Flags: 3, Moffset: 1 << 21})
		}},
		{fuse.OpRemovemapping, func(t *testing.T, r *fusetest.Request) fusetest.Reply {
			n := r.U32(0)
			if n == 0 || n > 256 || len(r.Args) != 4+16*int(n) {
				t.Errorf("REMOVEMAPPING count %d with %d bytes", n, len(r.Args))
			}
			return fusetest.OK(nil)
		}, func(t *testing.T, c *fuse.Conn) error {
			return c.Removemapping(ctx, 5, make([]fuse.RemovemappingOne, 300))
		}},
		{fuse.OpDestroy, func(t *testing.T, r *fusetest.Request) fusetest.Reply { return fusetest.OK(nil) },
			func(t *testing.T, c *fuse.Conn) error { return c.Destroy(ctx) }},
	}
	for _, tt := range tests {
		t.Run(tt.op.String(), func(t *testing.T) {
			srv := fusetest.New(fusetest.Options{})
			srv.Handle(tt.op, func(r *fusetest.Request) fusetest.Reply {
				if r.Opcode != tt.op {
					t.Errorf("opcode %v, want %v", r.Opcode, tt.op)
				}
				return tt.handler(t, r)
			})
			c, lb := newConn(t, srv, fuse.ConnOptions{})
			if err := tt.call(t, c); err != nil {
				t.Errorf("%v: %v", tt.op, err)
			}
			if srv.Count(tt.op) == 0 {
				t.Errorf("no %v reached the server", tt.op)
			}
			if lb.String() != "" {
				t.Errorf("log: %s", lb)
			}
		})
	}
}

func TestHiprio(t *testing.T) {
	srv := fusetest.New(fusetest.Options{})
	c, _ := newConn(t, srv, fuse.ConnOptions{SendInterrupts: true})
	ctx := context.Background()
	if err := c.Forget(ctx, 5, 3); err != nil {
		t.Fatal(err)
	}
	var many []fuse.ForgetOne
	for i := range 300 {
		many = append(many, fuse.ForgetOne{NodeID: uint64(i + 2), Nlookup: 1})
	}
	if err := c.BatchForget(ctx, many); err != nil {
		t.Fatal(err)
	}
	if err := c.Interrupt(ctx, 42); err != nil {
		t.Fatal(err)
	}
	h := srv.Hiprio()
	if len(h) != 4 {
		t.Fatalf("%d hiprio requests, want 4 (FORGET, 2 BATCH_FORGET, INTERRUPT)", len(h))
	}
	if h[0].Opcode != fuse.OpForget || h[0].NodeID != 5 || h[0].U64(0) != 3 {
		t.Errorf("FORGET: %+v", h[0])
	}
	var got []fuse.ForgetOne
	for _, r := range h[1:3] {
		if r.Opcode != fuse.OpBatchForget || r.NodeID != 0 {
			t.Errorf("BATCH_FORGET header: %+v", r)
		}
		n := int(r.U32(0))
		if len(r.Args) != 8+16*n {
			t.Errorf("BATCH_FORGET count %d with %d bytes", n, len(r.Args))
		}
		for i := range n {
			got = append(got, fuse.ForgetOne{NodeID: r.U64(8 + 16*i), Nlookup: r.U64(16 + 16*i)})
		}
	}
	if !slices.Equal(got, many) {
		t.Errorf("BATCH_FORGET carried %d entries, differing from the %d sent", len(got), len(many))
	}
	if h[3].Opcode != fuse.OpInterrupt || h[3].Unique != 43 || h[3].U64(0) != 42 {
		t.Errorf("INTERRUPT: unique %d arg %d; want 43, 42", h[3].Unique, h[3].U64(0))
	}
}

func TestInterruptOff(t *testing.T) {
	srv := fusetest.New(fusetest.Options{})
	c, _ := newConn(t, srv, fuse.ConnOptions{})
	if err := c.Interrupt(context.Background(), 42); err != syscall.ENOSYS {
		t.Errorf("Interrupt without SendInterrupts = %v, want ENOSYS", err)
	}
	if n := len(srv.Hiprio()); n != 0 {
		t.Errorf("%d hiprio requests sent, want none", n)
	}
}

func TestSetxattrExt(t *testing.T) {
	srv := fusetest.New(fusetest.Options{})
	srv.Handle(fuse.OpInit, func(*fusetest.Request) fusetest.Reply {
		o := fusetest.DefaultInit()
		o.Flags |= fuse.InitSetxattrExt
		return fusetest.OK(o.Encode())
	})
	var args []byte
	srv.Handle(fuse.OpSetxattr, func(r *fusetest.Request) fusetest.Reply {
		args = r.Args
		return fusetest.OK(nil)
	})
	c, _ := newConn(t, srv, fuse.ConnOptions{SetxattrExt: true})
	if err := c.Setxattr(context.Background(), 5, "user.k", []byte("v"), 2, fuse.SetxattrACLKillSGID); err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 'u', 's', 'e', 'r', '.', 'k', 0, 'v'}
	if !bytes.Equal(args, want) {
		t.Errorf("SETXATTR args %x, want %x", args, want)
	}
}

// TestOpsInvalidReplies checks per-opcode validation: each reply is EIO
// with one log line naming the opcode.
func TestOpsInvalidReplies(t *testing.T) {
	ctx := context.Background()
	bad := func(mod func(e *fuse.Entry)) []byte {
		e := entry(5, fileAttr)
		mod(&e)
		return fusetest.EntryOut(e)
	}
	tests := []struct {
		name  string
		op    fuse.Opcode
		reply fusetest.Reply
		call  func(c *fuse.Conn) error
	}{
		{"lookup short", fuse.OpLookup, fusetest.OK(make([]byte, 120)), func(c *fuse.Conn) error { _, err := c.Lookup(ctx, 1, "x"); return err }},
		{"lookup mode 0", fuse.OpLookup, fusetest.OK(bad(func(e *fuse.Entry) { e.Attr.Mode = 0o644 })),
			func(c *fuse.Conn) error { _, err := c.Lookup(ctx, 1, "x"); return err }},
		{"lookup size > MaxInt64", fuse.OpLookup, fusetest.OK(bad(func(e *fuse.Entry) { e.Attr.Size = math.MaxUint64 })),
			func(c *fuse.Conn) error { _, err := c.Lookup(ctx, 1, "x"); return err }},
		{"lookup root as file", fuse.OpLookup, fusetest.OK(bad(func(e *fuse.Entry) { e.NodeID = fuse.RootID })),
			func(c *fuse.Conn) error { _, err := c.Lookup(ctx, 1, "x"); return err }},
		{"mkdir returns file", fuse.OpMkdir, fusetest.OK(bad(func(e *fuse.Entry) {})),
			func(c *fuse.Conn) error { _, err := c.Mkdir(ctx, 1, "d", 0o755, 0); return err }},
		{"mkdir nodeid 0", fuse.OpMkdir, fusetest.OK(bad(func(e *fuse.Entry) { e.NodeID = 0; e.Attr.Mode = fuse.ModeDir })),
			func(c *fuse.Conn) error { _, err := c.Mkdir(ctx, 1, "d", 0o755, 0); return err }},
		{"symlink root nodeid", fuse.OpSymlink, fusetest.OK(bad(func(e *fuse.Entry) { e.NodeID = fuse.RootID; e.Attr.Mode = fuse.ModeLnk })),
			func(c *fuse.Conn) error { _, err := c.Symlink(ctx, 1, "l", "t"); return err }},
		{"create returns dir", fuse.OpCreate, fusetest.OK(append(bad(func(e *fuse.Entry) { e.Attr.Mode = fuse.ModeDir }), make([]byte, 16)...)),
			func(c *fuse.Conn) error { _, _, err := c.Create(ctx, 1, "f", 0, 0o644, 0); return err }},
		{"create short", fuse.OpCreate, fusetest.OK(bad(func(e *fuse.Entry) {})),
			func(c *fuse.Conn) error { _, _, err := c.Create(ctx, 1, "f", 0, 0o644, 0); return err }},
		{"getattr long", fuse.OpGetattr, fusetest.OK(make([]byte, 112)),
			func(c *fuse.Conn) error { _, err := c.Getattr(ctx, 1, 0, 0); return err }},
		{"read more than asked", fuse.OpRead, fusetest.OK(make([]byte, 11)),
			func(c *fuse.Conn) error { _, err := c.Read(ctx, 5, fuse.ReadIn{}, make([]byte, 10)); return err }},
		{"write more than asked", fuse.OpWrite, fusetest.OK(fusetest.WriteOut(6)),
			func(c *fuse.Conn) error { _, err := c.Write(ctx, 5, fuse.WriteIn{}, []byte("12345")); return err }},
		{"copy more than asked", fuse.OpCopyFileRange, fusetest.OK(fusetest.WriteOut(7)),
			func(c *fuse.Conn) error { _, err := c.CopyFileRange(ctx, 5, fuse.CopyFileRangeIn{Len: 6}); return err }},
		{"readlink empty", fuse.OpReadlink, fusetest.OK(nil), func(c *fuse.Conn) error { _, err := c.Readlink(ctx, 5); return err }},
		{"readlink NUL", fuse.OpReadlink, fusetest.OK([]byte("a\x00b")), func(c *fuse.Conn) error { _, err := c.Readlink(ctx, 5); return err }},
		{"listxattr malformed", fuse.OpListxattr, fusetest.OK([]byte("user.a")),
			func(c *fuse.Conn) error { _, err := c.Listxattr(ctx, 5, make([]byte, 64)); return err }},
		{"getxattr size query long", fuse.OpGetxattr, fusetest.OK(make([]byte, 12)),
			func(c *fuse.Conn) error { _, err := c.Getxattr(ctx, 5, "user.a", nil); return err }},
		{"readdir slash", fuse.OpReaddir, fusetest.OK(fusetest.Dirents(fuse.Dirent{Ino: 1, Name: "a/b"})),
			func(c *fuse.Conn) error { _, err := c.Readdir(ctx, 1, fuse.ReadIn{}, 4096); return err }},
		{"readdir truncated record", fuse.OpReaddir, fusetest.OK(fusetest.Dirents(fuse.Dirent{Ino: 1, Name: "abc"})[:28]),
			func(c *fuse.Conn) error { _, err := c.Readdir(ctx, 1, fuse.ReadIn{}, 4096); return err }},
		{"readdirplus bad attr", fuse.OpReaddirplus, fusetest.OK(fusetest.DirentsPlus(fuse.DirentPlus{
			Dirent: fuse.Dirent{Ino: 1, Name: "f"}, Entry: fuse.Entry{NodeID: 9, Attr: fuse.Attr{Mode: 0o644}}})),
			func(c *fuse.Conn) error { _, err := c.Readdirplus(ctx, 1, fuse.ReadIn{}, 4096); return err }},
		{"getlk bad range", fuse.OpGetlk, fusetest.OK(fusetest.LkOut(fuse.FileLock{Start: 5, End: 4, Type: fuse.LockRead})),
			func(c *fuse.Conn) error { _, err := c.Getlk(ctx, 5, fuse.LkIn{}); return err }},
		{"lseek negative", fuse.OpLseek, fusetest.OK(fusetest.LseekOut(math.MaxUint64)),
			func(c *fuse.Conn) error { _, err := c.Lseek(ctx, 5, 1, 0, 3); return err }},
		{"statfs short", fuse.OpStatfs, fusetest.OK(make([]byte, 40)), func(c *fuse.Conn) error { _, err := c.Statfs(ctx, 1); return err }},
		{"open short", fuse.OpOpen, fusetest.OK(make([]byte, 8)), func(c *fuse.Conn) error { _, err := c.Open(ctx, 5, 0); return err }},
		{"unlink with payload", fuse.OpUnlink, fusetest.OK(make([]byte, 8)), func(c *fuse.Conn) error { return c.Unlink(ctx, 1, "x") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fusetest.New(fusetest.Options{})
			srv.Handle(tt.op, func(*fusetest.Request) fusetest.Reply { return tt.reply })
			c, lb := newConn(t, srv, fuse.ConnOptions{})
			if err := tt.call(c); err != syscall.EIO {
				t.Errorf("got %v, want EIO", err)
			}
			if want := fmt.Sprintf("opcode=%v", tt.op); !bytes.Contains([]byte(lb.String()), []byte(want)) {
				t.Errorf("log %q lacks %q", lb, want)
			}
		})
	}
}

func TestOpsArgs(t *testing.T) {
	srv := fusetest.New(fusetest.Options{})
	c, _ := newConn(t, srv, fuse.ConnOptions{})
	ctx := context.Background()
	if _, err := c.Lookup(ctx, 1, "a\x00b"); err != syscall.EINVAL {
		t.Errorf("Lookup with NUL = %v, want EINVAL", err)
	}
	if _, err := c.Lookup(ctx, 1, ""); err != syscall.EINVAL {
		t.Errorf("Lookup of empty name = %v, want EINVAL", err)
	}
	if _, err := c.Read(ctx, 5, fuse.ReadIn{}, make([]byte, 32*4096+1)); err != syscall.EINVAL {
		t.Errorf("Read beyond MaxPages = %v, want EINVAL", err)
	}
	if _, err := c.Write(ctx, 5, fuse.WriteIn{}, make([]byte, 128<<10+1)); err != syscall.EINVAL {
		t.Errorf("Write beyond MaxWrite = %v, want EINVAL", err)
	}
	if _, err := c.Readdir(ctx, 1, fuse.ReadIn{}, 0); err != syscall.EINVAL {
		t.Errorf("Readdir size 0 = %v, want EINVAL", err)
	}
	// Negative LOOKUP: ENOENT plus the validity to cache it.
	srv.Handle(fuse.OpLookup, func(*fusetest.Request) fusetest.Reply {
		return fusetest.OK(fusetest.EntryOut(fuse.Entry{EntryValid: 3 * time.Second}))
	})
	e, err := c.Lookup(ctx, 1, "gone")
	if err != syscall.ENOENT || e.NodeID != 0 || e.EntryValid != 3*time.Second {
		t.Errorf("negative Lookup = %+v, %v; want NodeID 0, EntryValid 3s, ENOENT", e, err)
	}
	if n := srv.Count(fuse.OpRead) + srv.Count(fuse.OpWrite) + srv.Count(fuse.OpReaddir); n != 0 {
		t.Errorf("%d invalid requests reached the server", n)
	}
}
