package fuse_test

// The page cache's budget (FSOptions.PageCacheSize) against the real
// virtiofsd: the clean pages stay within it while files far larger than
// it are read, what is read after eviction is still the host's data, and
// dirty pages of writeback are never dropped to make room.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/fuse"
	"github.com/govirtiofs/govirtiofs/internal/virtiofsdtest"
	"github.com/govirtiofs/govirtiofs/vfs"
)

// readChecked reads path through v in reads of size bytes, checks every
// read against want and, after each, that the cache holds at most budget
// bytes.
func readChecked(t *testing.T, s *fsStack, path string, want []byte, size int, budget int64) {
	t.Helper()
	ctx := context.Background()
	fd, err := s.v.Open(ctx, root, path, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer fd.Close(ctx)
	buf := make([]byte, size)
	off := 0
	for {
		n, err := fd.Read(ctx, buf)
		if err != nil {
			t.Fatalf("read %s at %d: %v", path, off, err)
		}
		if n == 0 {
			break
		}
		if off+n > len(want) || !bytes.Equal(buf[:n], want[off:off+n]) {
			t.Fatalf("read %s at %d: %d bytes differ from the host file", path, off, n)
		}
		off += n
		if c := s.fs.Stats().CachedBytes; c > budget {
			t.Fatalf("after reading %s up to %d the cache holds %d bytes, budget %d", path, off, c, budget)
		}
	}
	if off != len(want) {
		t.Fatalf("read %d bytes of %s, want %d", off, path, len(want))
	}
}

func TestFSPageCacheBudget(t *testing.T) {
	const budget = 2 << 20
	const fileSize = 6 << 20 // three files of three times the budget
	tests := []struct {
		mode   fuse.CacheMode
		daemon string
		size   int // bytes per read
	}{
		{fuse.CacheAlways, "always", 1 << 20},
		{fuse.CacheAlways, "always", 50_000},
		{fuse.CacheAuto, "auto", 4096}, // below streamMin: through the cache
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/%d", tt.mode, tt.size), func(t *testing.T) {
			dir := t.TempDir()
			files := make([][]byte, 3)
			for i := range files {
				files[i] = fsPattern(fileSize, byte(i*7+1))
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), files[i], 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s := startFS(t, dir, fsConfig{daemon: virtiofsdtest.Options{Cache: tt.daemon},
				fs: fuse.FSOptions{Cache: tt.mode, PageCacheSize: budget}})
			if got := s.fs.Options().PageCacheSize; got != budget {
				t.Fatalf("PageCacheSize = %d, want %d", got, budget)
			}
			for i, want := range files {
				readChecked(t, s, fmt.Sprint(i), want, tt.size, budget)
			}
			if c := s.fs.Stats().CachedBytes; c == 0 {
				t.Errorf("nothing cached after reading %d bytes", 3*fileSize)
			}
			// The first file was evicted: read again, whole and at random.
			readChecked(t, s, "0", files[0], tt.size, budget)
			ctx := context.Background()
			fds := make([]*vfs.FileDescription, len(files))
			for i := range files {
				fd, err := s.v.Open(ctx, root, fmt.Sprint(i), unix.O_RDONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer fd.Close(ctx)
				fds[i] = fd
			}
			r := rand.New(rand.NewPCG(1, 2))
			buf := make([]byte, 3*4096)
			for range 500 {
				i, off := r.IntN(len(files)), r.IntN(fileSize)
				n, err := fds[i].PRead(ctx, buf, int64(off))
				if err != nil {
					t.Fatalf("pread %d at %d: %v", i, off, err)
				}
				if want := files[i][off:min(off+len(buf), fileSize)]; !bytes.Equal(buf[:n], want) {
					t.Fatalf("pread %d at %d: %d bytes differ from the host file (want %d)", i, off, n, len(want))
				}
				if c := s.fs.Stats().CachedBytes; c > budget {
					t.Fatalf("random reads: the cache holds %d bytes, budget %d", c, budget)
				}
			}
		})
	}
}

// TestFSPageCacheDirtySurvives dirties a file in writeback mode, then
// reads files many times the page cache's budget: the dirty data is still
// read back and reaches the host when synced.
func TestFSPageCacheDirtySurvives(t *testing.T) {
	const budget = 1 << 20
	dir := t.TempDir()
	other := fsPattern(8<<20, 5)
	if err := os.WriteFile(filepath.Join(dir, "other"), other, 0o644); err != nil {
		t.Fatal(err)
	}
	s := startWritebackFS(t, dir, fuse.FSOptions{Cache: fuse.CacheAlways, WritebackLimit: 64 << 20, PageCacheSize: budget})
	ctx := context.Background()
	fd, err := s.v.Open(ctx, root, "f", unix.O_RDWR|unix.O_CREAT, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close(ctx)
	data := fsPattern(3<<20, 9) // dirty data beyond the clean budget
	if _, err := fd.Write(ctx, data); err != nil {
		t.Fatal(err)
	}
	if d := s.fs.Stats().DirtyBytes; d != int64(len(data)) {
		t.Fatalf("DirtyBytes = %d, want %d", d, len(data))
	}
	for range 2 {
		readChecked(t, s, "other", other, 1<<20, budget)
	}
	if d := s.fs.Stats().DirtyBytes; d != int64(len(data)) {
		t.Errorf("DirtyBytes after eviction pressure = %d, want %d", d, len(data))
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "f")); len(got) != 0 {
		t.Errorf("host has %d bytes before Sync, want none", len(got))
	}
	if got := fsPRead(t, fd, len(data)+10); got != string(data) {
		t.Errorf("reading the dirty data back gave %d bytes, not what was written", len(got))
	}
	if err := fd.Sync(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "f")); !bytes.Equal(got, data) {
		t.Errorf("host has %d bytes after Sync, want the %d written", len(got), len(data))
	}
	// Written back, the data is clean and may be evicted, but reads stay
	// right.
	readChecked(t, s, "other", other, 1<<20, budget)
	if got := fsPRead(t, fd, len(data)+10); got != string(data) {
		t.Errorf("reading back after Sync and eviction gave %d bytes, not what was written", len(got))
	}
}

// BenchmarkVirtiofsdSeqReadBudget reads a 64 MiB file this client never
// read, 1 MiB at a time, in CacheAlways with a page cache of 64 MiB (the
// default in a 512 MiB guest): past the first file every READ evicts
// pages and reuses their buffer.
func BenchmarkVirtiofsdSeqReadBudget(b *testing.B) {
	data := fsPatternB(benchFileSize)
	dir := b.TempDir()
	s := startFS(b, dir, fsConfig{daemon: virtiofsdtest.Options{Cache: "always"},
		fs: fuse.FSOptions{Cache: fuse.CacheAlways, PageCacheSize: 64 << 20}})
	buf := make([]byte, benchIOSize)
	b.SetBytes(benchFileSize)
	i := 0
	for b.Loop() {
		b.StopTimer()
		path := fmt.Sprintf("big%d", i)
		i++
		if err := os.WriteFile(filepath.Join(dir, path), data, 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		readWhole(b, s.v, path, buf)
		b.StopTimer()
		os.Remove(filepath.Join(dir, path))
		b.StartTimer()
	}
	b.ReportMetric(float64(s.fs.Stats().CachedBytes>>20), "cachedMiB")
}
