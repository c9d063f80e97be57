package fuse_test

import (
	"bytes"
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/fuse"
	"github.com/govirtiofs/govirtiofs/fuse/fusetest"
	"github.com/govirtiofs/govirtiofs/vfs"
)

// TestFSReadPipeline reads 64 KiB in READs of 4 pages, several in flight:
// the data arrives in order; a READ that fails in the middle ends the
// read before it, with no error, and the next read returns the error; a
// short READ (end of file) ends it there.
func TestFSReadPipeline(t *testing.T) {
	data := make([]byte, 48<<10) // ends in the 4th READ of a 64 KiB read
	for i := range data {
		data[i] = byte(i * 13)
	}
	for _, mode := range []fuse.CacheMode{fuse.CacheNone, fuse.CacheAuto} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := context.Background()
			f := newFSFake(t, 4)
			node := &fakeNode{nodeid: 5, mode: fuse.ModeReg | 0o644, data: data}
			f.nodes["a"] = node
			var mu sync.Mutex
			failAt := int64(-1)
			f.srv.Handle(fuse.OpRead, func(r *fusetest.Request) fusetest.Reply {
				off, size := r.U64(8), uint64(r.U32(16))
				mu.Lock()
				fail := failAt >= 0 && off <= uint64(failAt) && uint64(failAt) < off+size
				mu.Unlock()
				if fail {
					return fusetest.Err(syscall.EIO)
				}
				if off >= uint64(len(data)) {
					return fusetest.OK(nil)
				}
				return fusetest.OK(data[off:min(off+size, uint64(len(data)))])
			})
			fs := f.mount(t, fuse.FSOptions{Cache: mode})
			v := vfs.New(fs, fs.Root(), vfs.Options{})
			defer v.Close(ctx)
			fd, err := v.Open(ctx, root, "a", unix.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { fd.Close(ctx) }()
			buf := make([]byte, 64<<10)
			before := f.srv.Count(fuse.OpRead)
			if n, err := fd.PRead(ctx, buf, 0); err != nil || n != len(data) || !bytes.Equal(buf[:n], data) {
				t.Fatalf("PRead of 64 KiB = %d, %v; want the file's %d bytes", n, err, len(data))
			}
			// 16 KiB each; with cache none a fourth READ finds the end,
			// cached the size the valid attributes give ends it.
			wantReads := 4
			if mode == fuse.CacheAuto {
				wantReads = 3
			}
			if got := f.srv.Count(fuse.OpRead) - before; got < wantReads {
				t.Errorf("%d READs, want at least %d (16 KiB each)", got, wantReads)
			}
			mu.Lock()
			failAt = 20 << 10 // in the second READ
			mu.Unlock()
			fd.Close(ctx)
			if fd, err = v.Open(ctx, root, "a", unix.O_RDONLY, 0); err != nil { // CacheAuto drops the pages
				t.Fatal(err)
			}
			clear(buf)
			before = f.srv.Count(fuse.OpRead)
			if n, err := fd.PRead(ctx, buf, 0); err != nil || n != 16<<10 || !bytes.Equal(buf[:n], data[:n]) {
				t.Errorf("PRead with the second READ failing = %d, %v; want the first 16 KiB", n, err)
			}
			if n, err := fd.PRead(ctx, buf, 16<<10); err != syscall.EIO {
				t.Errorf("PRead at the failing READ = %d, %v; want EIO (%d READs)", n, err, f.srv.Count(fuse.OpRead)-before)
			}
		})
	}
}

// TestFSWritePipeline writes 64 KiB in WRITEs of 4 pages: they are in
// flight together (the first two wait for each other), unless the
// file is O_APPEND, where they go one after the other in order. A WRITE
// that fails in the middle makes the write return the bytes before it;
// the cached pages then hold what the server has, also past the failure.
func TestFSWritePipeline(t *testing.T) {
	ctx := context.Background()
	f := newFSFake(t, 4)
	node := &fakeNode{nodeid: 5, mode: fuse.ModeReg | 0o644, data: make([]byte, 64<<10)}
	f.nodes["a"] = node
	var mu sync.Mutex
	var offs []uint64
	inflight, most := 0, 0
	failAt := int64(-1)
	// The first two WRITEs of the first write wait for each other: they
	// can only both get through if they are in flight together.
	arrived := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	barrier := true
	f.srv.Handle(fuse.OpWrite, func(r *fusetest.Request) fusetest.Reply {
		off, size := r.U64(8), r.U32(16)
		payload := r.Args[40:]
		mu.Lock()
		offs = append(offs, off)
		inflight++
		most = max(most, inflight)
		fail := failAt >= 0 && off <= uint64(failAt) && uint64(failAt) < off+uint64(size)
		mu.Unlock()
		defer func() {
			mu.Lock()
			inflight--
			mu.Unlock()
		}()
		mu.Lock()
		wait := barrier && off < 32<<10
		mu.Unlock()
		if wait {
			me := off / (16 << 10)
			close(arrived[me])
			select {
			case <-arrived[1-me]:
			case <-time.After(10 * time.Second):
				t.Errorf("the WRITE at %d waited 10 s for the other: not in flight together", off)
			}
		}
		if fail {
			return fusetest.Err(syscall.ENOSPC)
		}
		mu.Lock()
		if off < uint64(len(node.data)) { // appends are only counted
			copy(node.data[off:], payload)
		}
		mu.Unlock()
		return fusetest.OK(fusetest.WriteOut(size))
	})
	fs := f.mount(t, fuse.FSOptions{Cache: fuse.CacheAlways})
	v := vfs.New(fs, fs.Root(), vfs.Options{})
	defer v.Close(ctx)
	fd, err := v.Open(ctx, root, "a", unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close(ctx)
	buf := make([]byte, 64<<10)
	if _, err := fd.PRead(ctx, buf, 0); err != nil { // fill the cache
		t.Fatal(err)
	}
	src := bytes.Repeat([]byte("0123456789abcdef"), 4<<10)
	if n, err := fd.PWrite(ctx, src, 0); err != nil || n != len(src) {
		t.Fatalf("PWrite of 64 KiB = %d, %v", n, err)
	}
	mu.Lock()
	if len(offs) != 4 || most < 2 {
		t.Errorf("%d WRITEs, at most %d at once; want 4, several at once", len(offs), most)
	}
	mu.Unlock()
	if n, err := fd.PRead(ctx, buf, 0); err != nil || !bytes.Equal(buf[:n], src) {
		t.Errorf("cached read after the write = %d, %v; not the data written", n, err)
	}

	mu.Lock()
	failAt, offs, barrier = 20<<10, nil, false
	mu.Unlock()
	src2 := bytes.Repeat([]byte("ABCDEFGHIJKLMNOP"), 4<<10)
	if n, err := fd.PWrite(ctx, src2, 0); err != nil || n != 16<<10 {
		t.Errorf("PWrite with the second WRITE failing = %d, %v; want the first 16 KiB", n, err)
	}
	mu.Lock()
	want := bytes.Clone(node.data)
	mu.Unlock()
	if n, err := fd.PRead(ctx, buf, 0); err != nil || !bytes.Equal(buf[:n], want) {
		t.Errorf("read after the failed write = %d, %v; not the server's data", n, err)
	}
	if n, err := fd.PWrite(ctx, src2[16<<10:32<<10], 16<<10); err != syscall.ENOSPC {
		t.Errorf("PWrite at the failing WRITE = %d, %v; want ENOSPC", n, err)
	}
	fd.Close(ctx)

	mu.Lock()
	failAt, offs, most = -1, nil, 0
	mu.Unlock()
	fd, err = v.Open(ctx, root, "a", unix.O_WRONLY|unix.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := fd.Write(ctx, src); err != nil || n != len(src) {
		t.Fatalf("append of 64 KiB = %d, %v", n, err)
	}
	mu.Lock()
	if most != 1 || len(offs) != 4 {
		t.Errorf("append: %d WRITEs, at most %d at once; want 4 one at a time", len(offs), most)
	}
	for i := 1; i < len(offs); i++ {
		if offs[i] <= offs[i-1] {
			t.Errorf("append: WRITEs at %v, want them in order", offs)
			break
		}
	}
	mu.Unlock()
}
