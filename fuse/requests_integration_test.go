package fuse_test

// Requests per operation: the benchmark's metadata workloads (stat,
// open+read+close, create+write+close+unlink), run through vfs over the
// client filesystem against the real virtiofsd, must send exactly the
// requests listed here in each cache mode: what Linux's fuse client sends
// for the same system calls, or fewer.

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/fuse"
	"github.com/govirtiofs/govirtiofs/internal/virtiofsdtest"
	"github.com/govirtiofs/govirtiofs/vfs"
)

// requestLog is a fuse.Sender that records the opcode of every request.
type requestLog struct {
	fuse.Sender

	mu  sync.Mutex // guards ops
	ops []fuse.Opcode
}

func opcodeOf(in [][]byte) fuse.Opcode {
	if len(in) == 0 || len(in[0]) < 8 {
		return 0
	}
	return fuse.Opcode(binary.LittleEndian.Uint32(in[0][4:8]))
}

func (l *requestLog) record(in [][]byte) {
	l.mu.Lock()
	l.ops = append(l.ops, opcodeOf(in))
	l.mu.Unlock()
}

func (l *requestLog) RoundTrip(ctx context.Context, in, out [][]byte) (int, error) {
	l.record(in)
	return l.Sender.RoundTrip(ctx, in, out)
}

func (l *requestLog) SendHiprio(ctx context.Context, in [][]byte) error {
	l.record(in)
	return l.Sender.SendHiprio(ctx, in)
}

// take returns the opcodes recorded since the last take, hiprio ones
// (FORGET, BATCH_FORGET) left out, and forgets them.
func (l *requestLog) take() []fuse.Opcode {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ops []fuse.Opcode
	for _, op := range l.ops {
		if op != fuse.OpForget && op != fuse.OpBatchForget {
			ops = append(ops, op)
		}
	}
	l.ops = nil
	return ops
}

func opNames(ops []fuse.Opcode) string {
	s := make([]string, len(ops))
	for i, op := range ops {
		s[i] = op.String()
	}
	return strings.Join(s, " ")
}

// requestFiles makes n files of size bytes in dir/set/small, as the
// benchmark's file set.
func requestFiles(t testing.TB, dir string, n, size int) {
	t.Helper()
	small := filepath.Join(dir, "set", "small")
	if err := os.MkdirAll(small, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "scratch"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(small, fmt.Sprintf("f%04d", i)), fsPattern(size, byte(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRequestsPerOperation checks the requests each benchmark operation
// sends, in each cache mode, on files the client has not seen in a
// directory it has (the first operation warms the directories). RELEASE
// goes out in the background, so requests are compared as a multiset.
// Linux sends for the same: stat, a LOOKUP per uncached component;
// open+read+close, LOOKUP OPEN READ FLUSH RELEASE; create, LOOKUP CREATE
// WRITE FLUSH RELEASE and UNLINK.
func TestRequestsPerOperation(t *testing.T) {
	const size = 4096
	ctx := context.Background()
	small := func(i int) string { return fmt.Sprintf("set/small/f%04d", i) }
	stat := func(t *testing.T, s *fsStack, i int) {
		st, err := s.v.Stat(ctx, root, small(i))
		if err != nil || st.Size != size {
			t.Fatalf("stat: size %d, %v", st.Size, err)
		}
	}
	// openReadClose reads as io.ReadFull with a buffer one byte larger
	// than the file does: the second read sees the end of the file.
	openReadClose := func(t *testing.T, s *fsStack, i int) {
		fd, err := s.v.Open(ctx, root, small(i), unix.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, size+1)
		n, err := fd.Read(ctx, buf)
		if err != nil || n != size {
			t.Fatalf("read: %d, %v", n, err)
		}
		if n, err := fd.Read(ctx, buf[n:]); n != 0 {
			t.Fatalf("read at EOF: %d, %v", n, err)
		}
		if err := fd.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// create is os.Create, a 4 KiB write, Close and os.Remove.
	create := func(t *testing.T, s *fsStack, i int) {
		name := fmt.Sprintf("scratch/c%04d", i)
		fd, err := s.v.Open(ctx, root, name, unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := fd.Write(ctx, fsPattern(size, 1)); n != size || err != nil {
			t.Fatalf("write: %d, %v", n, err)
		}
		if err := fd.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.v.Unlink(ctx, root, name); err != nil {
			t.Fatal(err)
		}
	}
	// truncate is os.Create of an existing file the client has not seen,
	// and Close: the exclusive CREATE fails, then LOOKUP and OPEN with
	// O_TRUNC.
	truncate := func(t *testing.T, s *fsStack, i int) {
		fd, err := s.v.Open(ctx, root, small(i), unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if err := fd.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(filepath.Join(s.dir, small(i))); err != nil || st.Size() != 0 {
			t.Fatalf("host sees %v, %v; want an empty file", st, err)
		}
	}
	// statTwice is the warm stat: the second of two stats.
	statTwice := func(t *testing.T, s *fsStack, i int) { stat(t, s, i) }
	const (
		none   = fuse.CacheNone
		auto   = fuse.CacheAuto
		always = fuse.CacheAlways
	)
	tests := []struct {
		name string
		run  func(t *testing.T, s *fsStack, i int)
		// before runs unrecorded before run (nil: nothing).
		before func(t *testing.T, s *fsStack, i int)
		want   map[fuse.CacheMode]string
	}{
		{name: "stat", run: stat, want: map[fuse.CacheMode]string{
			none: "LOOKUP LOOKUP LOOKUP", auto: "LOOKUP", always: "LOOKUP"}},
		{name: "stat-warm", run: statTwice, before: stat, want: map[fuse.CacheMode]string{
			none: "LOOKUP LOOKUP LOOKUP", auto: "", always: ""}},
		{name: "open-read-close", run: openReadClose, want: map[fuse.CacheMode]string{
			none:   "LOOKUP LOOKUP LOOKUP OPEN READ READ RELEASE",
			auto:   "LOOKUP OPEN READ RELEASE",
			always: "LOOKUP OPEN READ RELEASE"}},
		{name: "create", run: create, want: map[fuse.CacheMode]string{
			none:   "LOOKUP CREATE WRITE FLUSH RELEASE LOOKUP LOOKUP UNLINK",
			auto:   "CREATE WRITE FLUSH RELEASE UNLINK",
			always: "CREATE WRITE FLUSH RELEASE UNLINK"}},
		{name: "create-existing", run: truncate, want: map[fuse.CacheMode]string{
			none:   "LOOKUP LOOKUP CREATE LOOKUP OPEN RELEASE",
			auto:   "CREATE LOOKUP OPEN RELEASE",
			always: "CREATE LOOKUP OPEN RELEASE"}},
	}
	for _, mode := range []fuse.CacheMode{none, auto, always} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			requestFiles(t, dir, 100, size)
			log := &requestLog{}
			s := startFS(t, dir, fsConfig{
				daemon: virtiofsdtest.Options{Cache: "auto"},
				fs:     fuse.FSOptions{Cache: mode},
				sender: func(d fuse.Sender) fuse.Sender { log.Sender = d; return log },
			})
			stat(t, s, 0) // warms the directories
			create(t, s, 0)
			file := 1
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					want := strings.Fields(tc.want[mode])
					slices.Sort(want)
					for range 3 {
						if tc.before != nil {
							tc.before(t, s, file)
						}
						s.fs.FlushForgets(ctx) // and waits for RELEASE
						log.take()
						tc.run(t, s, file)
						s.fs.FlushForgets(ctx)
						ops := log.take()
						got := strings.Fields(opNames(ops))
						slices.Sort(got)
						if !slices.Equal(got, want) {
							t.Errorf("file %d: requests %s; want %s (in any order)", file, opNames(ops), tc.want[mode])
						}
						file++
					}
				})
			}
		})
	}
}

// BenchmarkOperations runs each benchmark operation through vfs over the
// real virtiofsd on files the client has not seen (stat, open-read-close)
// or that do not exist (create), in each cache mode.
func BenchmarkOperations(b *testing.B) {
	ctx := context.Background()
	const size = 4096
	for _, mode := range []fuse.CacheMode{fuse.CacheNone, fuse.CacheAuto, fuse.CacheAlways} {
		for _, name := range []string{"stat", "open-read-close", "create"} {
			b.Run(mode.String()+"/"+name, func(b *testing.B) {
				dir := b.TempDir()
				files := 1
				if name != "create" {
					files = b.N + 1
				}
				requestFiles(b, dir, files, size)
				s := startFS(b, dir, fsConfig{daemon: virtiofsdtest.Options{Cache: "auto"}, fs: fuse.FSOptions{Cache: mode}})
				buf := make([]byte, size+1)
				data := fsPattern(size, 1)
				if _, err := s.v.Stat(ctx, root, "set/small/f0000"); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					var err error
					switch name {
					case "stat":
						_, err = s.v.Stat(ctx, root, fmt.Sprintf("set/small/f%04d", i+1))
					case "open-read-close":
						var fd *vfs.FileDescription
						fd, err = s.v.Open(ctx, root, fmt.Sprintf("set/small/f%04d", i+1), unix.O_RDONLY, 0)
						if err == nil {
							n, _ := fd.Read(ctx, buf)
							fd.Read(ctx, buf[n:])
							err = fd.Close(ctx)
						}
					case "create":
						p := fmt.Sprintf("scratch/c%06d", i)
						var fd *vfs.FileDescription
						fd, err = s.v.Open(ctx, root, p, unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC, 0o644)
						if err == nil {
							fd.Write(ctx, data)
							err = fd.Close(ctx)
						}
						if err == nil {
							err = s.v.Unlink(ctx, root, p)
						}
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestCreateUnknownName checks open with O_CREAT of names the client has
// no entry for, which vfs first tries as an exclusive CREATE, against
// virtiofsd: every kind of existing name must behave as open(2) does.
func TestCreateUnknownName(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []fuse.CacheMode{fuse.CacheNone, fuse.CacheAuto, fuse.CacheAlways} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(os.WriteFile(filepath.Join(dir, "file"), []byte("keep"), 0o644))
			must(os.Mkdir(filepath.Join(dir, "dir"), 0o755))
			must(os.Symlink("target", filepath.Join(dir, "dangling")))
			must(os.Symlink("file", filepath.Join(dir, "link")))
			s := startFS(t, dir, fsConfig{daemon: virtiofsdtest.Options{Cache: "auto"}, fs: fuse.FSOptions{Cache: mode}})
			tests := []struct {
				name    string
				flags   int
				err     error
				content string // of name afterwards on the host, read through symlinks
			}{
				{"file", unix.O_RDWR | unix.O_CREAT, nil, "keep"},
				{"link", unix.O_RDWR | unix.O_CREAT, nil, "keep"},
				{"link", unix.O_RDWR | unix.O_CREAT | unix.O_EXCL, unix.EEXIST, "keep"},
				{"file", unix.O_RDWR | unix.O_CREAT | unix.O_EXCL, unix.EEXIST, "keep"},
				{"dir", unix.O_RDONLY | unix.O_CREAT, unix.EISDIR, ""},
				{"dangling", unix.O_RDWR | unix.O_CREAT, nil, ""},
				{"new", unix.O_RDWR | unix.O_CREAT | unix.O_EXCL, nil, ""},
				{"file", unix.O_RDWR | unix.O_CREAT | unix.O_TRUNC, nil, ""},
			}
			for i, tc := range tests {
				// A fresh client view each time: forget cached names.
				s.v.Close(ctx)
				s.v = vfs.New(s.fs, s.fs.Root(), vfs.Options{})
				fd, err := s.v.Open(ctx, root, tc.name, tc.flags, 0o644)
				if err == nil {
					fd.Close(ctx)
				}
				if err != tc.err {
					t.Errorf("%d: open %s flags %#x: %v; want %v", i, tc.name, tc.flags, err, tc.err)
					continue
				}
				if tc.err != nil || tc.name == "dir" {
					continue
				}
				got, err := os.ReadFile(filepath.Join(dir, tc.name))
				if err != nil || string(got) != tc.content {
					t.Errorf("%d: after open %s flags %#x the host has %q, %v; want %q", i, tc.name, tc.flags, got, err, tc.content)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "target")); err != nil {
				t.Errorf("creating through the dangling symlink: %v", err)
			}
		})
	}
}
