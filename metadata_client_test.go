package govirtiofs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs/fuse"
	"github.com/govirtiofs/govirtiofs/fuse/fusetest"
	"github.com/govirtiofs/govirtiofs/vfs"
)

// clientFS is an FS over an in-process FUSE server holding a directory
// "d" of n 4 KiB files f00000, f00001, ..., each answered from memory:
// benchmarks on it time the client's whole work per operation (encode,
// driver-facing calls, decode, inodes, dentries, the facade) without a
// server's or a transport's, which is what a TCG guest pays per operation
// on top of its round trips.
func clientFS(b *testing.B, n int, mode fuse.CacheMode) *FS {
	b.Helper()
	dirAttr := fuse.Attr{Ino: 2, Mode: fuse.ModeDir | 0o755, Nlink: 2, Size: 4096}
	fileAttr := func(id uint64) fuse.Attr {
		return fuse.Attr{Ino: id, Mode: fuse.ModeReg | 0o644, Nlink: 1, Size: 4096, Blocks: 8}
	}
	data := make([]byte, 4096)
	srv := fusetest.New(fusetest.Options{})
	srv.Handle(fuse.OpLookup, func(r *fusetest.Request) fusetest.Reply {
		names := r.Strings(0)
		if len(names) != 1 {
			return fusetest.Err(syscall.EINVAL)
		}
		if r.NodeID == fuse.RootID && names[0] == "d" {
			return fusetest.OK(fusetest.EntryOut(fuse.Entry{NodeID: 2, Generation: 1, EntryValid: time.Hour, AttrValid: time.Hour, Attr: dirAttr}))
		}
		i, err := strconv.Atoi(strings.TrimPrefix(names[0], "f"))
		if r.NodeID != 2 || err != nil || i < 0 || i >= n {
			return fusetest.Err(syscall.ENOENT)
		}
		id := uint64(100 + i)
		return fusetest.OK(fusetest.EntryOut(fuse.Entry{NodeID: id, Generation: 1, EntryValid: time.Hour, AttrValid: time.Hour, Attr: fileAttr(id)}))
	})
	srv.Handle(fuse.OpGetattr, func(r *fusetest.Request) fusetest.Reply {
		a := fileAttr(r.NodeID)
		if r.NodeID == 2 {
			a = dirAttr
		}
		return fusetest.OK(fusetest.AttrOut(fuse.AttrOut{AttrValid: time.Hour, Attr: a}))
	})
	srv.Handle(fuse.OpOpen, func(r *fusetest.Request) fusetest.Reply {
		return fusetest.OK(fusetest.OpenOut(fuse.OpenOut{Fh: r.NodeID}))
	})
	srv.Handle(fuse.OpRead, func(r *fusetest.Request) fusetest.Reply {
		off, size := int(r.U64(8)), int(r.U32(16))
		if off >= len(data) {
			return fusetest.OK(nil)
		}
		return fusetest.OK(data[off:min(len(data), off+size)])
	})
	srv.Handle(fuse.OpFlush, func(r *fusetest.Request) fusetest.Reply { return fusetest.OK(nil) })
	srv.Handle(fuse.OpRelease, func(r *fusetest.Request) fusetest.Reply { return fusetest.OK(nil) })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := fuse.NewConn(srv, fuse.ConnOptions{Logger: quiet})
	if err := c.Init(context.Background()); err != nil {
		b.Fatal(err)
	}
	ffs, err := fuse.NewFilesystem(c, fuse.FSOptions{Cache: mode, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	umask := uint32(0o022)
	f := newFS(vfs.New(ffs, ffs.Root(), vfs.Options{MaxCachedDentries: 4 * n}), "client", &Options{Umask: &umask}, nil)
	b.Cleanup(func() { f.Close() })
	return f
}

// BenchmarkMetadataClient is the client's own work in the bench's cold
// metadata workloads, per operation on a name never seen before: stat-cold
// (Stat: a LOOKUP) and open-read-close (Open: LOOKUP and OPEN; a 4 KiB
// read to EOF: READ; Close).
func BenchmarkMetadataClient(b *testing.B) {
	const n = 1 << 16
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("d/f%05d", i)
	}
	// each runs op on a name never seen before by the FS at hand, with a
	// fresh FS (untimed) every n names.
	each := func(b *testing.B, mode fuse.CacheMode, op func(f *FS, name string) error) {
		f := clientFS(b, n, mode)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if i == n {
				b.StopTimer()
				f, i = clientFS(b, n, mode), 0
				b.StartTimer()
			}
			if err := op(f, names[i]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	}
	buf := make([]byte, 4097)
	for _, mode := range []fuse.CacheMode{fuse.CacheAuto, fuse.CacheAlways} {
		b.Run(mode.String()+"/stat-cold", func(b *testing.B) {
			each(b, mode, func(f *FS, name string) error {
				_, err := f.Stat(name)
				return err
			})
		})
		b.Run(mode.String()+"/open-read-close", func(b *testing.B) {
			each(b, mode, func(f *FS, name string) error {
				file, err := f.Open(name)
				if err != nil {
					return err
				}
				if n, err := io.ReadFull(file, buf); n != 4096 || err != io.ErrUnexpectedEOF {
					file.Close()
					return fmt.Errorf("read %d, %v", n, err)
				}
				return file.Close()
			})
		})
	}
}
