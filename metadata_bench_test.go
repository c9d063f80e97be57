package govirtiofs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/govirtiofs/govirtiofs/internal/virtiofsdtest"
)

// benchFiles is the number of 4 KiB files the metadata benchmarks cycle
// through, in set/small/ as the guest benchmark lays them out.
const benchFiles = 256

// metadataFS dials a virtiofsd (cache auto) sharing benchFiles small files
// in the given cache mode and returns the FS and the files' names.
func metadataFS(b *testing.B, mode CacheMode) (*FS, []string) {
	b.Helper()
	f, dir := dialTest(b, Options{Cache: mode}, virtiofsdtest.Options{Cache: "auto"})
	small := filepath.Join(dir, "set", "small")
	if err := os.MkdirAll(small, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "scratch"), 0o755); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 4096)
	names := make([]string, benchFiles)
	for i := range names {
		names[i] = fmt.Sprintf("set/small/f%04d", i)
		if err := os.WriteFile(filepath.Join(dir, names[i]), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return f, names
}

// BenchmarkMetadata runs the guest benchmark's metadata operations
// through the facade over the real virtiofsd, per cache mode: getattr
// (File.Stat of an open file: a GETATTR each in cache none),
// open-read-close (open, read to EOF of a 4 KiB file whose name is
// cached, close) and create (create, write 4 KiB, close, remove);
// BenchmarkStatCached has stat-warm. Each reports its allocations; the host's time per operation is
// a proxy for the client's CPU per operation in a TCG guest.
func BenchmarkMetadata(b *testing.B) {
	for _, mode := range []CacheMode{CacheNone, CacheAuto, CacheAlways} {
		b.Run(mode.String()+"/getattr", func(b *testing.B) {
			f, names := metadataFS(b, mode)
			file, err := f.Open(names[0])
			if err != nil {
				b.Fatal(err)
			}
			defer file.Close()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				fi, err := file.Stat()
				if err != nil {
					b.Fatal(err)
				}
				if fi.Size() != 4096 {
					b.Fatalf("size %d, want 4096", fi.Size())
				}
			}
		})
		b.Run(mode.String()+"/open-read-close", func(b *testing.B) {
			f, names := metadataFS(b, mode)
			buf := make([]byte, 4097)
			for _, n := range names {
				if _, err := f.Stat(n); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				file, err := f.Open(names[i%len(names)])
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.ReadFull(file, buf)
				if n != 4096 || err != io.ErrUnexpectedEOF {
					b.Fatalf("read %d bytes, %v; want 4096 and EOF", n, err)
				}
				if err := file.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(mode.String()+"/create", func(b *testing.B) {
			f, _ := metadataFS(b, mode)
			data := make([]byte, 4096)
			names := make([]string, 64)
			for i := range names {
				names[i] = fmt.Sprintf("scratch/c%05d", i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				name := names[i%len(names)]
				file, err := f.Create(name)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := file.Write(data); err != nil {
					b.Fatal(err)
				}
				if err := file.Close(); err != nil {
					b.Fatal(err)
				}
				if err := f.Remove(name); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
