package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/govirtiofs/govirtiofs"
	"github.com/govirtiofs/govirtiofs/boot"
)

// dialed returns an FS over vhost-user to a fresh virtiofsd (cache=always) on a directory holding
// "file" of size bytes, closed with the benchmark.
func dialed(b *testing.B, size int, opts govirtiofs.Options) *govirtiofs.FS {
	b.Helper()
	dir := b.TempDir()
	data := make([]byte, size)
	fill(data, 1)
	if err := os.WriteFile(filepath.Join(dir, "file"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	d, err := boot.StartVirtiofsd(ctx, boot.VirtiofsdConfig{Socket: filepath.Join(b.TempDir(), "v.sock"), Dir: dir, Cache: "always"})
	if err != nil {
		b.Fatal(err)
	}
	fsys, err := govirtiofs.Dial(ctx, d.Socket(), opts)
	if err != nil {
		d.Kill()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		fsys.Close()
		d.Stop()
	})
	return fsys
}

// BenchmarkCachedRead reads 4 KiB of a file whose data the client has cached (CacheAlways, read
// once before the timer starts): the data-cache hit path of File.ReadAt over vhost-user.
func BenchmarkCachedRead(b *testing.B) {
	const size = 1 << 20
	fsys := dialed(b, size, govirtiofs.Options{Cache: govirtiofs.CacheAlways})
	f, err := fsys.Open("file")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, size)
	if n, err := f.ReadAt(buf, 0); n != size {
		b.Fatalf("warm-up read: %d bytes, %v", n, err)
	}
	page := buf[:4096]
	b.SetBytes(int64(len(page)))
	b.ResetTimer()
	for i := range b.N {
		off := int64(i%(size/4096)) * 4096
		if n, err := f.ReadAt(page, off); n != len(page) {
			b.Fatalf("ReadAt(%d): %d bytes, %v", off, n, err)
		}
	}
}

// BenchmarkCachedReadFile opens, reads whole and closes a cached 4 KiB file (CacheAlways).
func BenchmarkCachedReadFile(b *testing.B) {
	fsys := dialed(b, 4096, govirtiofs.Options{Cache: govirtiofs.CacheAlways})
	if _, err := fsys.ReadFile("file"); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(4096)
	b.ResetTimer()
	for range b.N {
		data, err := fsys.ReadFile("file")
		if err != nil || len(data) != 4096 {
			b.Fatalf("ReadFile: %d bytes, %v", len(data), err)
		}
	}
}

// BenchmarkCachedStat stats a file whose name and attributes are cached (CacheAlways).
func BenchmarkCachedStat(b *testing.B) {
	fsys := dialed(b, 1, govirtiofs.Options{Cache: govirtiofs.CacheAlways})
	if _, err := fsys.Stat("file"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := fsys.Stat("file"); err != nil {
			b.Fatal(err)
		}
	}
}
