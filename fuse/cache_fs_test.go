package fuse_test

// Read-ahead of the page cache against fusetest.Server: which READs a
// random reader, a sequential reader and a whole small file cost.

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/fuse"
	"github.com/govirtiofs/govirtiofs/fuse/fusetest"
	"github.com/govirtiofs/govirtiofs/vfs"
)

// readLog records the offset and size of every READ a fsFake answers.
type readLog struct {
	mu    sync.Mutex
	reads []string // "offset+size", in KiB
}

func (l *readLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.reads
	l.reads = nil
	return r
}

// newReadaheadFake serves data as file "a", with max_pages and
// max_readahead (in pages) as given in INIT, and logs the READs.
func newReadaheadFake(t *testing.T, data []byte, maxPages, readahead int) (*fsFake, *readLog) {
	f := newFSFake(t, maxPages)
	f.nodes["a"] = &fakeNode{nodeid: 5, mode: fuse.ModeReg | 0o644, data: data}
	f.srv.Handle(fuse.OpInit, func(*fusetest.Request) fusetest.Reply {
		o := fusetest.DefaultInit()
		o.MaxPages = uint16(maxPages)
		o.MaxReadahead = uint32(readahead * 4096)
		return fusetest.OK(o.Encode())
	})
	log := &readLog{}
	f.srv.Handle(fuse.OpRead, func(r *fusetest.Request) fusetest.Reply {
		off, size := r.U64(8), uint64(r.U32(16))
		log.mu.Lock()
		log.reads = append(log.reads, fmt.Sprintf("%d+%d", off>>10, size>>10))
		log.mu.Unlock()
		if off >= uint64(len(data)) {
			return fusetest.OK(nil)
		}
		return fusetest.OK(data[off:min(off+size, uint64(len(data)))])
	})
	return f, log
}

func openFake(t *testing.T, f *fsFake, mode fuse.CacheMode) (*vfs.VirtualFilesystem, *vfs.FileDescription) {
	t.Helper()
	ctx := context.Background()
	fs := f.mount(t, fuse.FSOptions{Cache: mode})
	v := vfs.New(fs, fs.Root(), vfs.Options{})
	t.Cleanup(func() { v.Close(ctx) })
	fd, err := v.Open(ctx, root, "a", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fd.Close(ctx) })
	return v, fd
}

// TestFSReadaheadRandom checks that a random read that misses the cache
// reads only the pages it wants (Linux ondemand_readahead reads a
// "standalone, small random read" as is): each 4 KiB pread at a random
// aligned offset is one READ of 4 KiB at that offset; an unaligned one
// reads the two pages it touches, a 64 KiB one its 16 pages. The pages
// read stay cached.
func TestFSReadaheadRandom(t *testing.T) {
	data := fsPattern(4<<20, 3) // 1024 pages
	// Pages in no order, none at the start of the file and none in or
	// after the page where the previous read ended.
	pages := []int64{517, 90, 1000, 33, 700, 250, 812, 3, 402, 961, 128, 640}
	for _, mode := range []fuse.CacheMode{fuse.CacheAuto, fuse.CacheAlways} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := context.Background()
			f, log := newReadaheadFake(t, data, 32, 32)
			_, fd := openFake(t, f, mode)
			buf := make([]byte, 4096)
			var want []string
			for _, p := range pages {
				off := p * 4096
				if n, err := fd.PRead(ctx, buf, off); err != nil || n != len(buf) || !bytes.Equal(buf, data[off:off+4096]) {
					t.Fatalf("PRead at page %d = %d, %v; not the file's page", p, n, err)
				}
				want = append(want, fmt.Sprintf("%d+4", off>>10))
			}
			if got := log.take(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("READs of %d random 4 KiB preads (offset+size KiB):\n got %v\nwant %v", len(pages), got, want)
			}
			// Again: all cached.
			for _, p := range pages {
				if _, err := fd.PRead(ctx, buf, p*4096); err != nil {
					t.Fatal(err)
				}
			}
			if got := log.take(); len(got) != 0 {
				t.Errorf("cached preads sent READs %v, want none", got)
			}
			// Unaligned and larger random reads.
			if n, err := fd.PRead(ctx, buf, 300*4096+100); err != nil || !bytes.Equal(buf[:n], data[300*4096+100:][:4096]) {
				t.Fatalf("unaligned PRead = %d, %v", n, err)
			}
			big := make([]byte, 64<<10)
			if n, err := fd.PRead(ctx, big, 150*4096); err != nil || !bytes.Equal(big[:n], data[150*4096:][:64<<10]) {
				t.Fatalf("64 KiB PRead = %d, %v", n, err)
			}
			if got, want := fmt.Sprint(log.take()), fmt.Sprint([]string{"1200+8", "600+64"}); got != want {
				t.Errorf("READs of an unaligned 4 KiB and a 64 KiB random pread: got %v, want %v", got, want)
			}
		})
	}
}

// TestFSReadaheadSequential checks that a sequential reader still gets a
// growing read-ahead window: from max_readahead (4 pages here) doubling
// on each miss where the previous window ended, up to max_pages (64);
// that a random reader that turns sequential starts a window at its
// second read; and that every byte read is the file's.
func TestFSReadaheadSequential(t *testing.T) {
	data := fsPattern(1<<20+1000, 5)
	for _, mode := range []fuse.CacheMode{fuse.CacheAuto, fuse.CacheAlways} {
		t.Run(mode.String(), func(t *testing.T) {
			f, log := newReadaheadFake(t, data, 64, 4)
			_, fd := openFake(t, f, mode)
			readToEOF(t, fd, 4096, data)
			// Windows of 4, 8, 16, 32 and 64 pages, then 64 pages on to
			// the end of the file, where the last READ asks only for the
			// 5 pages left by the size.
			want := []string{"0+16", "16+32", "48+64", "112+128", "240+256", "496+256", "752+256", "1008+20"}
			if reads := log.take(); fmt.Sprint(reads) != fmt.Sprint(want) {
				t.Errorf("READs of a sequential read in 4 KiB reads (offset+size KiB):\n got %v\nwant %v", reads, want)
			}
		})
	}
	t.Run("random then sequential", func(t *testing.T) {
		ctx := context.Background()
		f, log := newReadaheadFake(t, data, 64, 4)
		_, fd := openFake(t, f, fuse.CacheAlways)
		buf := make([]byte, 4096)
		for off := int64(100 * 4096); off < 120*4096; off += 4096 {
			if n, err := fd.PRead(ctx, buf, off); err != nil || !bytes.Equal(buf[:n], data[off:off+4096]) {
				t.Fatalf("PRead at %d = %d, %v", off, n, err)
			}
		}
		// The first read looks random; the second continues it and
		// starts a window of 4 pages, which then doubles.
		want := []string{"400+4", "404+16", "420+32", "452+64"}
		if reads := log.take(); fmt.Sprint(reads) != fmt.Sprint(want) {
			t.Errorf("READs of 20 consecutive 4 KiB preads from page 100:\n got %v\nwant %v", reads, want)
		}
	})
}

// TestFSReadaheadSmallFile checks that reading a whole 4 KiB file, as
// io.ReadAll or os.ReadFile do (a buffer larger than the file, then a
// read at the end), is one READ in every cached mode.
func TestFSReadaheadSmallFile(t *testing.T) {
	data := fsPattern(4096, 9)
	for _, mode := range []fuse.CacheMode{fuse.CacheAuto, fuse.CacheAlways} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := context.Background()
			f, log := newReadaheadFake(t, data, 32, 32)
			_, fd := openFake(t, f, mode)
			buf := make([]byte, 4097)
			n, err := fd.Read(ctx, buf)
			if err != nil || n != 4096 || !bytes.Equal(buf[:n], data) {
				t.Fatalf("Read = %d, %v; want the file's 4096 bytes", n, err)
			}
			if n, err := fd.Read(ctx, buf[n:]); n != 0 || err != nil {
				t.Fatalf("Read at the end = %d, %v; want 0, nil", n, err)
			}
			if reads := log.take(); len(reads) != 1 {
				t.Errorf("READs %v for a whole 4 KiB file, want one", reads)
			}
		})
	}
}
