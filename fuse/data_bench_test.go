package fuse_test

// Data-path benchmarks of the client filesystem against the real
// virtiofsd: the sequential read, write and random read workloads of
// bench/workload.go (a 64 MiB file, 1 MiB at a time), in each cache mode,
// on the host over vhost-user.

import (
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

const (
	benchFileSize = 64 << 20
	benchIOSize   = 1 << 20
)

// benchFS mounts dir through the whole stack for a benchmark.
func benchFS(b *testing.B, dir string, mode fuse.CacheMode, writeback bool) *vfs.VirtualFilesystem {
	b.Helper()
	cfg := fsConfig{
		daemon: virtiofsdtest.Options{Cache: mode.String()},
		conn:   fuse.ConnOptions{WritebackCache: writeback},
		fs:     fuse.FSOptions{Cache: mode, Writeback: writeback},
	}
	if writeback {
		cfg.daemon.ExtraArgs = []string{"-o", "writeback"}
	}
	return startFS(b, dir, cfg).v
}

var benchModes = []fuse.CacheMode{fuse.CacheNone, fuse.CacheAuto, fuse.CacheAlways}

// readWhole reads path 1 MiB at a time and checks its length.
func readWhole(b *testing.B, v *vfs.VirtualFilesystem, path string, buf []byte) {
	ctx := context.Background()
	fd, err := v.Open(ctx, root, path, unix.O_RDONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	total := 0
	for {
		n, err := fd.Read(ctx, buf)
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	if err := fd.Close(ctx); err != nil {
		b.Fatal(err)
	}
	if total != benchFileSize {
		b.Fatalf("read %d bytes, want %d", total, benchFileSize)
	}
}

// BenchmarkVirtiofsdSeqRead reads a 64 MiB file 1 MiB at a time: cold (a
// file this client never read) and warm (read once before).
func BenchmarkVirtiofsdSeqRead(b *testing.B) {
	data := fsPatternB(benchFileSize)
	for _, mode := range benchModes {
		for _, warm := range []bool{false, true} {
			name := mode.String() + "/cold"
			if warm {
				name = mode.String() + "/warm"
			}
			b.Run(name, func(b *testing.B) {
				dir := b.TempDir()
				v := benchFS(b, dir, mode, false)
				buf := make([]byte, benchIOSize)
				b.SetBytes(benchFileSize)
				if warm {
					if err := os.WriteFile(filepath.Join(dir, "big"), data, 0o644); err != nil {
						b.Fatal(err)
					}
					readWhole(b, v, "big", buf)
				}
				i := 0
				for b.Loop() {
					path := "big"
					if !warm {
						b.StopTimer()
						path = fmt.Sprintf("big%d", i)
						i++
						if err := os.WriteFile(filepath.Join(dir, path), data, 0o644); err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
					}
					readWhole(b, v, path, buf)
				}
			})
		}
	}
}

// BenchmarkVirtiofsdSeqWrite creates a file and writes 64 MiB into it 1
// MiB at a time, then closes it (no fsync).
func BenchmarkVirtiofsdSeqWrite(b *testing.B) {
	type cfg struct {
		mode      fuse.CacheMode
		writeback bool
	}
	cfgs := []cfg{{fuse.CacheNone, false}, {fuse.CacheAuto, false}, {fuse.CacheAlways, false}, {fuse.CacheAlways, true}}
	for _, c := range cfgs {
		name := c.mode.String()
		if c.writeback {
			name += "-writeback"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			v := benchFS(b, dir, c.mode, c.writeback)
			ctx := context.Background()
			buf := fsPatternB(benchIOSize)
			b.SetBytes(benchFileSize)
			for b.Loop() {
				fd, err := v.Open(ctx, root, "w", unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, 0o644)
				if err != nil {
					b.Fatal(err)
				}
				for range benchFileSize / benchIOSize {
					if n, err := fd.Write(ctx, buf); err != nil || n != len(buf) {
						b.Fatalf("write: %d, %v", n, err)
					}
				}
				if err := fd.Close(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVirtiofsdRandRead reads 4 KiB at random aligned offsets of a 64
// MiB file.
func BenchmarkVirtiofsdRandRead(b *testing.B) {
	data := fsPatternB(benchFileSize)
	for _, mode := range benchModes {
		b.Run(mode.String(), func(b *testing.B) {
			dir := b.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "big"), data, 0o644); err != nil {
				b.Fatal(err)
			}
			v := benchFS(b, dir, mode, false)
			ctx := context.Background()
			fd, err := v.Open(ctx, root, "big", unix.O_RDONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer fd.Close(ctx)
			r := rand.New(rand.NewPCG(42, 1))
			buf := make([]byte, 4096)
			for b.Loop() {
				off := r.Int64N(benchFileSize/4096) * 4096
				if n, err := fd.PRead(ctx, buf, off); err != nil || n != len(buf) {
					b.Fatalf("pread at %d: %d, %v", off, n, err)
				}
			}
		})
	}
}

func fsPatternB(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// BenchmarkVirtiofsdRandReadCold is the randread workload as the guest
// runs it: 4096 preads of 4 KiB at random aligned offsets of a 64 MiB file
// this client never read, on one handle. It reports the time per pread
// (BenchmarkVirtiofsdRandRead, which keeps one file, soon reads only
// cached pages in the cached modes).
func BenchmarkVirtiofsdRandReadCold(b *testing.B) {
	const preads = 4096
	data := fsPatternB(benchFileSize)
	for _, mode := range benchModes {
		b.Run(mode.String(), func(b *testing.B) {
			dir := b.TempDir()
			v := benchFS(b, dir, mode, false)
			ctx := context.Background()
			r := rand.New(rand.NewPCG(42, 1))
			buf := make([]byte, 4096)
			i := 0
			for b.Loop() {
				b.StopTimer()
				path := fmt.Sprintf("big%d", i)
				i++
				if err := os.WriteFile(filepath.Join(dir, path), data, 0o644); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				fd, err := v.Open(ctx, root, path, unix.O_RDONLY, 0)
				if err != nil {
					b.Fatal(err)
				}
				for range preads {
					off := r.Int64N(benchFileSize/4096) * 4096
					if n, err := fd.PRead(ctx, buf, off); err != nil || n != len(buf) {
						b.Fatalf("pread at %d: %d, %v", off, n, err)
					}
				}
				if err := fd.Close(ctx); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				os.Remove(filepath.Join(dir, path))
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*preads), "ns/pread")
		})
	}
}
