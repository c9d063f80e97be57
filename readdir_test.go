package govirtiofs

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs/fuse"
	"github.com/govirtiofs/govirtiofs/fuse/fusetest"
	"github.com/govirtiofs/govirtiofs/internal/virtiofsdtest"
	"github.com/govirtiofs/govirtiofs/vfs"
)

// TestNameSort checks the radix sort of listed names against
// slices.Sort, for name sets whose first eight bytes differ, tie, are
// prefixes of one another or hold bytes above 0x7f.
func TestNameSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n, maxLen int, alphabet string) []string {
		out := make([]string, n)
		for i := range out {
			b := make([]byte, 1+rng.IntN(maxLen))
			for j := range b {
				b[j] = alphabet[rng.IntN(len(alphabet))]
			}
			out[i] = string(b)
		}
		return out
	}
	seq := func(format string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf(format, (i*7919)%n)
		}
		return out
	}
	tests := []struct {
		name  string
		names []string
	}{
		{"empty", nil},
		{"one", []string{"x"}},
		{"prefixes", []string{"abcdefghij", "abcdefgh", "abcdefghi", "a", "ab", "abcdefg", "b", "abcdefgha"}},
		{"bench", seq("e%06d", 5000)},
		{"long shared prefix", seq("file_name_%05d", 3000)},
		{"lengths 1 to 9", []string{"abcdefghi", "abcdefgh", "abcdefg", "abcdef", "abcde", "abcd", "abc", "ab", "a", "abcdefgi", "abcdeg", "abd", "b", "abcdf", "ac"}},
		{"high bytes", []string{"\xff", "\x80a", "z", "\x7f", "é", "e", "\x01", "\xff\xff\xff\xff\xff\xff\xff\xff\x01", "\xff\xff\xff\xff\xff\xff\xff\xff"}},
		{"random short", random(2000, 4, "ab.\xfe")},
		{"random long", random(2000, 20, "abc")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := listNames(tt.names)
			s := getNameSort()
			defer putNameSort(s)
			order := s.sort(l, nil)
			want := slices.Clone(tt.names)
			slices.Sort(want)
			if len(order) != len(want) {
				t.Fatalf("%d indexes, want %d", len(order), len(want))
			}
			seen := make(map[uint32]bool)
			for i, rec := range order {
				if seen[rec.i] {
					t.Fatalf("index %#x twice", rec.i)
				}
				seen[rec.i] = true
				if got := l.entry(rec.i).name; got != want[i] {
					t.Fatalf("position %d: %q, want %q", i, got, want[i])
				}
			}
			ents, err := l.dirEntries(order)
			// sortedEntries, whose last pass may write the
			// DirEntries itself.
			s2 := getNameSort()
			defer putNameSort(s2)
			sorted, serr := s2.sortedEntries(l)
			for how, ents := range map[string][]fs.DirEntry{"dirEntries": ents, "sortedEntries": sorted} {
				if err != nil || serr != nil || len(ents) != len(want) {
					t.Fatalf("%s: %d entries, %v, %v", how, len(ents), err, serr)
				}
				for i, e := range ents {
					if e.Name() != want[i] || e.Type() != fs.ModeDir {
						t.Fatalf("%s: entry %d: %s, want %q, a directory", how, i, e, want[i])
					}
				}
			}
		})
	}
}

// TestNameSortKeys checks each name's key against packing its first
// eight bytes one at a time, for every length up to ten.
func TestNameSortKeys(t *testing.T) {
	s := getNameSort()
	defer putNameSort(s)
	for n := range 11 {
		name := "\x01\x82\x03\xf4\x05\x06\x07\x88\x09\x0a"[:n]
		var want uint64
		for i := range min(n, 8) {
			want |= uint64(name[i]) << (56 - 8*i)
		}
		if got := s.sort(listNames([]string{name}), nil)[0].key; got != want {
			t.Errorf("key of %q = %#x, want %#x", name, got, want)
		}
	}
}

// TestListingsVirtiofsd lists a directory larger than a listing's first
// arrays of entries (files, directories and a symlink) on virtiofsd with
// each of the File and FS listing calls, in whole and in pieces of
// several sizes, and compares each with package os on the host directory.
func TestListingsVirtiofsd(t *testing.T) {
	f, dir := dialTest(t, Options{}, virtiofsdtest.Options{})
	const files = 2500
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range files {
		name := fmt.Sprintf("f%d", (i*7919)%files)
		if i%97 == 0 {
			name += "-a-name-longer-than-eight-bytes"
		}
		if err := os.WriteFile(filepath.Join(dir, "d", name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"sub", "sub2"} {
		if err := os.Mkdir(filepath.Join(dir, "d", name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("f1", filepath.Join(dir, "d", "link")); err != nil {
		t.Fatal(err)
	}
	describe := func(ents []fs.DirEntry) []string {
		out := make([]string, len(ents))
		for i, e := range ents {
			out[i] = fmt.Sprintf("%s %v %v", e.Name(), e.Type(), e.IsDir())
		}
		return out
	}
	want, err := os.ReadDir(filepath.Join(dir, "d"))
	if err != nil {
		t.Fatal(err)
	}
	wantNames := make([]string, len(want))
	for i, e := range want {
		wantNames[i] = e.Name()
	}

	got, err := f.ReadDir("d")
	if err != nil {
		t.Fatalf("FS.ReadDir: %v", err)
	}
	if g, w := describe(got), describe(want); !slices.Equal(g, w) {
		t.Errorf("FS.ReadDir: %d entries, want %d (first difference at %d)", len(g), len(w), firstDiff(g, w))
	}
	fi, err := got[slices.IndexFunc(got, func(e fs.DirEntry) bool { return e.Name() == "link" })].Info()
	if err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Errorf("Info of link: %v, %v", fi, err)
	}

	for _, n := range []int{-1, 1, 7, 16, 1000, 5000} {
		// Each call's listing, sorted afterwards, must be the directory's.
		list := func(name string, read func(d *File) ([]string, error)) {
			d, err := f.Open("d")
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			var all []string
			for {
				names, err := read(d)
				if n > 0 && len(names) > n {
					t.Fatalf("%s(%d) returned %d", name, n, len(names))
				}
				all = append(all, names...)
				if err == io.EOF && n > 0 && len(names) == 0 {
					break
				}
				if err != nil {
					t.Fatalf("%s(%d): %v", name, n, err)
				}
				if n <= 0 {
					if names, err := read(d); len(names) != 0 || err != nil {
						t.Fatalf("%s(%d) at the end: %d, %v", name, n, len(names), err)
					}
					break
				}
			}
			slices.Sort(all)
			if !slices.Equal(all, wantNames) {
				t.Errorf("%s(%d): %d names, want %d (first difference at %d)", name, n, len(all), len(wantNames), firstDiff(all, wantNames))
			}
		}
		list("ReadDir", func(d *File) ([]string, error) {
			ents, err := d.ReadDir(n)
			var names []string
			for _, e := range ents {
				i := slices.IndexFunc(want, func(w fs.DirEntry) bool { return w.Name() == e.Name() })
				if i < 0 || e.Type() != want[i].Type() {
					t.Fatalf("ReadDir(%d): entry %s", n, e)
				}
				names = append(names, e.Name())
			}
			return names, err
		})
		list("Readdirnames", func(d *File) ([]string, error) { return d.Readdirnames(n) })
		if n == -1 || n == 1000 {
			list("Readdir", func(d *File) ([]string, error) {
				infos, err := d.Readdir(n)
				var names []string
				for _, fi := range infos {
					names = append(names, fi.Name())
				}
				return names, err
			})
		}
	}
}

// TestLargeListingRequestsVirtiofsd checks the READDIRs of FS.ReadDir of a
// 5000-entry directory (the bench's, 160,000 bytes of FUSE dirents): one
// of 8 KiB, then 64 KiB ones, each sent before the reply before it is
// read, and the one that finds the end: 8 + 64 + 64 + 64 KiB (the last
// short) and the end.
func TestLargeListingRequestsVirtiofsd(t *testing.T) {
	const opReaddir = 28
	for _, mode := range []CacheMode{CacheNone, CacheAuto, CacheAlways} {
		t.Run(mode.String(), func(t *testing.T) {
			var mu sync.Mutex
			readdirs := 0
			opts := Options{Cache: mode, OnRoundTrip: func(op uint32, d time.Duration) {
				if op == opReaddir {
					mu.Lock()
					readdirs++
					mu.Unlock()
				}
			}}
			f, dir := dialTest(t, opts, virtiofsdtest.Options{Cache: mode.String()})
			const files = 5000
			if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range files {
				if err := os.WriteFile(filepath.Join(dir, "d", fmt.Sprintf("e%06d", i)), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ents, err := f.ReadDir("d")
			if err != nil || len(ents) != files {
				t.Fatalf("ReadDir: %d entries, %v", len(ents), err)
			}
			mu.Lock()
			defer mu.Unlock()
			if readdirs != 5 {
				t.Errorf("ReadDir of %d entries sent %d READDIRs, want 5", files, readdirs)
			}
		})
	}
}

// firstDiff returns the first index where a and b differ.
func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestListingUnknownType checks entries listed with DT_UNKNOWN: Lstat
// gives their type and Info, and one removed since is left out, as os
// does on Linux.
func TestListingUnknownType(t *testing.T) {
	f := newMemFS(t)
	for _, name := range []string{"dir/a", "dir/c"} {
		if err := f.MkdirAll(name, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.WriteFile("dir/b", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, sorted := range []bool{false, true} {
		l := listNames([]string{"c", "gone", "b", "a"})
		l.dir.fs = f
		for i := range 3 {
			l.chunks[0][i].typ = typeUnknown
		}
		l.unknown = true
		var order []sortRec
		want := "c d---------,b ----------,a d---------"
		if sorted {
			s := getNameSort()
			defer putNameSort(s)
			order = s.sort(l, nil)
			want = "a d---------,b ----------,c d---------"
		}
		ents, err := l.dirEntries(order)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range ents {
			got = append(got, fmt.Sprintf("%s %v", e.Name(), e.Type()))
			if fi, err := e.Info(); err != nil || fi.Mode().Type() != e.Type() {
				t.Errorf("Info of %s: %v, %v", e.Name(), fi, err)
			}
		}
		if g := strings.Join(got, ","); g != want {
			t.Errorf("sorted %v: got %s, want %s", sorted, g, want)
		}
	}
}

// listNames lists names as File.list does, as directories (DT_DIR).
func listNames(names []string) *listing {
	l := &listing{dir: &listedDir{path: "dir"}}
	var cur []dirEntry
	pos := 0
	for _, name := range names {
		if pos == len(cur) {
			cur, pos = l.grow(0), 0
		}
		cur[pos] = dirEntry{dir: l.dir, name: name, typ: typeMode(vfs.DT_DIR)}
		pos++
		l.n++
	}
	if k := len(l.chunks); k > 0 {
		l.chunks[k-1] = cur[:pos]
	}
	return l
}

// benchNames returns the names of the bench's readdir directory (e000000
// to e004999, in a scrambled order as a server returns them).
func benchNames() []string {
	const n = 5000
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("e%06d", (i*7919)%n)
	}
	return names
}

// BenchmarkNameSort is FS.ReadDir's work on a listing of the bench's
// readdir directory but the reading itself: the entries, their keys, the
// sort and the result.
func BenchmarkNameSort(b *testing.B) {
	names := benchNames()
	b.ReportAllocs()
	for b.Loop() {
		l := listNames(names)
		s := getNameSort()
		ents, err := s.sortedEntries(l)
		putNameSort(s)
		if err != nil || len(ents) != len(names) || ents[0].Name() != "e000000" {
			b.Fatalf("%d entries, %v", len(ents), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(names)), "ns/entry")
}

// BenchmarkReadDirClient is FS.ReadDir of the bench's 5000-entry directory
// (names e000000 to e004999 in a scrambled order, 131072 bytes of
// directory as on ext4) against an in-process FUSE server that answers
// each READDIR with a slice of a prebuilt listing: the client's whole
// work, from the READDIR replies to the sorted DirEntries, without a
// server's (for counting instructions, as a guest's cost, with callgrind).
func BenchmarkReadDirClient(b *testing.B) {
	const n = 5000
	var all []byte
	recOff := []int{0}
	for i := range n {
		all = fusetest.Dirent(all, fuse.Dirent{Ino: uint64(100 + i), Off: uint64(i + 1), Type: uint32(vfs.DT_REG), Name: fmt.Sprintf("e%06d", (i*7919)%n)})
		recOff = append(recOff, len(all))
	}
	dirAttr := fuse.Attr{Ino: 2, Mode: fuse.ModeDir | 0o755, Nlink: 2, Size: 131072}
	srv := fusetest.New(fusetest.Options{})
	srv.Handle(fuse.OpLookup, func(r *fusetest.Request) fusetest.Reply {
		if names := r.Strings(0); len(names) != 1 || names[0] != "d" {
			return fusetest.Err(syscall.ENOENT)
		}
		return fusetest.OK(fusetest.EntryOut(fuse.Entry{NodeID: 2, Generation: 1, EntryValid: time.Hour, AttrValid: time.Hour, Attr: dirAttr}))
	})
	srv.Handle(fuse.OpGetattr, func(r *fusetest.Request) fusetest.Reply {
		a := dirAttr
		a.Ino = r.NodeID
		return fusetest.OK(fusetest.AttrOut(fuse.AttrOut{AttrValid: time.Hour, Attr: a}))
	})
	srv.Handle(fuse.OpOpendir, func(r *fusetest.Request) fusetest.Reply {
		return fusetest.OK(fusetest.OpenOut(fuse.OpenOut{Fh: 1}))
	})
	srv.Handle(fuse.OpReleasedir, func(r *fusetest.Request) fusetest.Reply { return fusetest.OK(nil) })
	srv.Handle(fuse.OpReaddir, func(r *fusetest.Request) fusetest.Reply {
		first, size := min(int(r.U64(8)), n), int(r.U32(16))
		last := first
		for last < n && recOff[last+1]-recOff[first] <= size {
			last++
		}
		return fusetest.OK(all[recOff[first]:recOff[last]])
	})
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := fuse.NewConn(srv, fuse.ConnOptions{Logger: quiet})
	if err := c.Init(context.Background()); err != nil {
		b.Fatal(err)
	}
	ffs, err := fuse.NewFilesystem(c, fuse.FSOptions{Cache: fuse.CacheAuto, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	umask := uint32(0o022)
	f := newFS(vfs.New(ffs, ffs.Root(), vfs.Options{}), "client", &Options{Umask: &umask}, nil)
	defer f.Close()
	b.ReportAllocs()
	for b.Loop() {
		ents, err := f.ReadDir("d")
		if err != nil || len(ents) != n {
			b.Fatalf("ReadDir: %d entries, %v", len(ents), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
}
