package govirtiofs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs/internal/virtiofsdtest"
)

// dialTest starts a virtiofsd sharing a fresh directory and dials it. The
// FS is closed when the test ends. It returns the FS and the shared
// directory.
func dialTest(t testing.TB, opts Options, dopts virtiofsdtest.Options) (*FS, string) {
	t.Helper()
	dir := t.TempDir()
	d := virtiofsdtest.Start(t, dir, dopts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := Dial(ctx, d.Socket, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil && !errors.Is(err, fs.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return f, dir
}

// TestDAXVirtiofsd checks that asking for DAX on virtiofsd, which has no
// window, fails clearly.
func TestDAXVirtiofsd(t *testing.T) {
	for _, mode := range []DAXMode{DAXAlways, DAXInode} {
		dir := t.TempDir()
		d := virtiofsdtest.Start(t, dir, virtiofsdtest.Options{})
		f, err := Dial(context.Background(), d.Socket, Options{DAX: mode})
		if err == nil {
			f.Close()
			t.Fatalf("Dial with DAX %v succeeded", mode)
		}
		if !errors.Is(err, errNoDAXWindow) {
			t.Errorf("Dial with DAX %v = %v, want the no-DAX-window error", mode, err)
		}
	}
}

// TestDialErrors checks Dial's failures: no back end, bad options.
func TestDialErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := Dial(ctx, filepath.Join(t.TempDir(), "nothing.sock"), Options{}); err == nil {
		t.Errorf("Dial of a missing socket succeeded")
	}
	if _, err := Dial(ctx, "unused", Options{Cache: 42}); err == nil {
		t.Errorf("Dial with an invalid cache mode succeeded")
	}
}

// TestCloseVirtiofsd checks that Close writes back an open file's data and
// ends the session, after which virtiofsd exits.
func TestCloseVirtiofsd(t *testing.T) {
	dir := t.TempDir()
	d := virtiofsdtest.Start(t, dir, virtiofsdtest.Options{Cache: "always", ExtraArgs: []string{"-o", "writeback"}})
	f, err := Dial(context.Background(), d.Socket, Options{Cache: CacheAlways, Writeback: true})
	if err != nil {
		t.Fatal(err)
	}
	file, err := f.Create("unclosed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := file.WriteString("written back at Close"); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := f.Stat("unclosed"); err != nil || i < 0 {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "unclosed")); err != nil || string(b) != "written back at Close" {
		t.Errorf("host reads %q, %v after Close", b, err)
	}
	<-d.Done() // virtiofsd exits once its front end is gone
	if _, err := f.Stat("unclosed"); err == nil {
		t.Errorf("Stat after Close succeeded")
	}
}

// TestCredentialsVirtiofsd checks that Options.UID and GID reach the server:
// files are created with them. (Permission checks are another matter:
// virtiofsd opens existing files with its own capabilities, and Linux
// mounts virtio-fs with default_permissions, checking in the guest.)
func TestCredentialsVirtiofsd(t *testing.T) {
	umask := uint32(0o022)
	f, dir := dialTest(t, Options{UID: 1234, GID: 5678, Umask: &umask}, virtiofsdtest.Options{})
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := f.WriteFile("mine", []byte("x"), 0o666); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "mine"))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 1234 || st.Gid != 5678 || fi.Mode().Perm() != 0o644 {
		t.Errorf("host sees uid %d gid %d mode %v; want 1234 5678 -rw-r--r--", st.Uid, st.Gid, fi.Mode())
	}
}

// benchFS dials a virtiofsd for a benchmark.
func benchFS(b *testing.B, mode CacheMode) (*FS, string) {
	return dialTest(b, Options{Cache: mode}, virtiofsdtest.Options{Cache: mode.String()})
}

// BenchmarkStat stats one of 1000 files per op (compare: kernel virtio-fs
// in a TCG guest, 750 ops/s).
func BenchmarkStat(b *testing.B) {
	for _, mode := range []CacheMode{CacheAuto, CacheNone} {
		b.Run(mode.String(), func(b *testing.B) {
			f, dir := benchFS(b, mode)
			for i := range 1000 {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), nil, 0o644); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := f.Stat(fmt.Sprint(i % 1000)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpenReadClose reads a 4 KiB file per op.
func BenchmarkOpenReadClose(b *testing.B) {
	f, dir := benchFS(b, CacheAuto)
	if err := os.WriteFile(filepath.Join(dir, "4k"), make([]byte, 4096), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(4096)
	for b.Loop() {
		if _, err := f.ReadFile("4k"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSequentialRead reads a 64 MiB file per op in 1 MiB reads.
func BenchmarkSequentialRead(b *testing.B) {
	for _, mode := range []CacheMode{CacheAuto, CacheNone} {
		b.Run(mode.String(), func(b *testing.B) {
			f, dir := benchFS(b, mode)
			const size = 64 << 20
			if err := os.WriteFile(filepath.Join(dir, "big"), make([]byte, size), 0o644); err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 1<<20)
			b.SetBytes(size)
			for b.Loop() {
				file, err := f.Open("big")
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{file}, buf)
				file.Close()
				if err != nil || n != size {
					b.Fatalf("read %d bytes, %v", n, err)
				}
			}
		})
	}
}

// makeFiles creates n empty files named by name(i) below dir on the host.
func makeFiles(b *testing.B, dir string, n int, name func(int) string) {
	b.Helper()
	for i := range n {
		p := filepath.Join(dir, name(i))
		if i == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStatCached stats one of 1000 files per op whose names and
// attributes are cached: the bench's stat-warm workload, with its paths
// (sets/<set>/small/fNNNNN) after one unmeasured pass.
func BenchmarkStatCached(b *testing.B) {
	for _, mode := range []CacheMode{CacheAlways, CacheAuto} {
		b.Run(mode.String(), func(b *testing.B) {
			f, dir := benchFS(b, mode)
			names := make([]string, 1000)
			for i := range names {
				names[i] = fmt.Sprintf("sets/r0-stat-warm/small/f%05d", i)
			}
			makeFiles(b, dir, len(names), func(i int) string { return names[i] })
			for _, n := range names {
				if _, err := f.Stat(n); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := f.Stat(names[i%len(names)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadDir lists a directory of 5000 files per op, as the bench's
// readdir workload: ReadDir, sorted. It cycles through four directories so
// that the dentry cache (10000 names) holds none of a directory's names
// when it is listed again.
func BenchmarkReadDir(b *testing.B) {
	const entries, dirs = 5000, 4
	for _, mode := range []CacheMode{CacheAlways, CacheAuto} {
		b.Run(mode.String(), func(b *testing.B) {
			f, dir := benchFS(b, mode)
			for d := range dirs {
				makeFiles(b, dir, entries, func(i int) string { return fmt.Sprintf("d%d/e%06d", d, i) })
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				ents, err := f.ReadDir(fmt.Sprintf("d%d", i%dirs))
				if err != nil || len(ents) != entries {
					b.Fatalf("ReadDir: %d entries, %v", len(ents), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*entries), "ns/entry")
		})
	}
}

// TestStatReuseVirtiofsd checks that a stat of an unchanged file hands out
// its last FileInfo again (no allocation when the attributes are cached),
// and that a change, or another name for the same node, gives a new one
// while the old one keeps what it said.
func TestStatReuseVirtiofsd(t *testing.T) {
	for _, mode := range []CacheMode{CacheNone, CacheAuto, CacheAlways} {
		t.Run(mode.String(), func(t *testing.T) {
			f, dir := dialTest(t, Options{Cache: mode}, virtiofsdtest.Options{Cache: mode.String()})
			if err := os.WriteFile(filepath.Join(dir, "f"), []byte("abc"), 0o644); err != nil {
				t.Fatal(err)
			}
			stat := func(name string) fs.FileInfo {
				t.Helper()
				fi, err := f.Stat(name)
				if err != nil {
					t.Fatal(err)
				}
				return fi
			}
			fi1, fi2, fi3 := stat("f"), stat("f"), stat("/f")
			if fi1 != fi2 || fi1 != fi3 {
				t.Errorf("stats of an unchanged file gave different FileInfos %p %p %p", fi1, fi2, fi3)
			}
			if r1, r2 := stat("."), stat("/"); r1.Name() != "." || r2.Name() != "/" || !SameFile(r1, r2) {
				t.Errorf(`Stat(".") named %q, Stat("/") named %q, same file %v; want ".", "/", true`, r1.Name(), r2.Name(), SameFile(r1, r2))
			}
			if err := f.WriteFile("f", []byte("abcde"), 0o644); err != nil {
				t.Fatal(err)
			}
			if fi4 := stat("f"); fi4 == fi1 || fi4.Size() != 5 || fi1.Size() != 3 {
				t.Errorf("after a write: new FileInfo %v, size %d, old one's size %d; want new, 5, 3", fi4 != fi1, fi4.Size(), fi1.Size())
			}
			file, err := f.Open("f")
			if err != nil {
				t.Fatal(err)
			}
			defer file.Close()
			a, err := file.Stat()
			if err != nil {
				t.Fatal(err)
			}
			b, err := file.Stat()
			if err != nil {
				t.Fatal(err)
			}
			if a != b || a.Size() != 5 || a.Name() != "f" {
				t.Errorf("File.Stat twice: same %v, size %d, name %q; want true, 5, f", a == b, a.Size(), a.Name())
			}
			if mode == CacheAlways {
				if n := testing.AllocsPerRun(100, func() { f.Stat("f") }); n != 0 {
					t.Errorf("a cached Stat of an unchanged file makes %v allocations, want 0", n)
				}
			}
		})
	}
}
