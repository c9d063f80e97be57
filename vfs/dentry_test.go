package vfs_test

import (
	"fmt"
	"math/rand"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/vfs"
	"github.com/govirtiofs/govirtiofs/vfs/vfstest"
)

func TestReadDir(t *testing.T) {
	for _, plus := range []bool{false, true} {
		t.Run(fmt.Sprintf("readdirplus=%v", plus), func(t *testing.T) {
			e := newEnv(t, vfstest.Options{EntryValid: time.Hour, ReaddirPlus: plus}, vfs.Options{})
			defer e.checkDrained(t)
			build(t, e.fs, "d/", "d/a", "d/b/", "d/c -> a", "d/e")
			fd, err := e.v.Open(e.ctx, creds, "d", unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer fd.Close(e.ctx)
			var names []string
			types := map[string]uint8{}
			// Two entries per call: the refused one comes back next time.
			for {
				n := 0
				err := fd.ReadDir(e.ctx, func(de vfs.Dirent) bool {
					if n == 2 {
						return false
					}
					n++
					names = append(names, de.Name)
					types[de.Name] = de.Type
					return true
				})
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
			}
			if got, want := fmt.Sprint(names), "[. .. a b c e]"; got != want {
				t.Errorf("names %s, want %s", got, want)
			}
			if types["b"] != vfs.DT_DIR || types["c"] != vfs.DT_LNK || types["a"] != vfs.DT_REG {
				t.Errorf("types %v", types)
			}
			// Rewind and list again.
			if _, err := fd.Seek(e.ctx, 0, unix.SEEK_SET); err != nil {
				t.Fatal(err)
			}
			n := 0
			fd.ReadDir(e.ctx, func(vfs.Dirent) bool { n++; return true })
			if n != 6 {
				t.Errorf("after rewind: %d entries, want 6", n)
			}
			// emit may walk into the directory being listed; with
			// READDIRPLUS the listing has filled the dentry cache.
			if _, err := fd.Seek(e.ctx, 0, unix.SEEK_SET); err != nil {
				t.Fatal(err)
			}
			lookups := e.fs.Calls("Lookup")
			if err := fd.ReadDir(e.ctx, func(de vfs.Dirent) bool {
				_, err := e.v.Lstat(e.ctx, creds, "d/"+de.Name)
				if err != nil {
					t.Errorf("Lstat(%q) in emit: %v", de.Name, err)
				}
				return err == nil
			}); err != nil {
				t.Fatal(err)
			}
			got := e.fs.Calls("Lookup") - lookups
			want := 4
			if plus {
				want = 0
			}
			if got != want {
				t.Errorf("lookups while listing = %d, want %d", got, want)
			}
			if err := e.v.Unlink(e.ctx, creds, "d/e"); err != nil {
				t.Fatal(err)
			}
			if _, err := e.v.Lstat(e.ctx, creds, "d/e"); errno(err) != syscall.ENOENT {
				t.Errorf("Lstat after unlink: %v, want ENOENT", err)
			}
		})
	}
}

func TestLRUBound(t *testing.T) {
	const max, files = 10, 200
	e := newEnv(t, vfstest.Options{EntryValid: time.Hour, NegativeValid: time.Hour}, vfs.Options{MaxCachedDentries: max})
	defer e.checkDrained(t)
	build(t, e.fs, "d/", "d/e/")
	for i := 0; i < files; i++ {
		build(t, e.fs, fmt.Sprintf("d/e/f%d", i))
	}
	for i := 0; i < files; i++ {
		if _, err := e.v.Stat(e.ctx, creds, fmt.Sprintf("d/e/f%d", i)); err != nil {
			t.Fatal(err)
		}
		if _, err := e.v.Stat(e.ctx, creds, fmt.Sprintf("d/e/missing%d", i)); errno(err) != syscall.ENOENT {
			t.Fatalf("Stat missing: %v", err)
		}
		s := e.v.CacheStats()
		if s.Unreferenced > max {
			t.Fatalf("after %d stats: %d unreferenced dentries, want <= %d", i, s.Unreferenced, max)
		}
		// Cached positive dentries hold exactly the outstanding references.
		if got, want := e.fs.Outstanding(), s.Dentries-s.Negative-1; got != want {
			t.Fatalf("after %d stats: %d references outstanding, want %d (dentries %+v)", i, got, want, s)
		}
	}
	if e.fs.HandedOut() <= max {
		t.Errorf("only %d references handed out; the test did not exercise eviction", e.fs.HandedOut())
	}
	// An open file pins its dentry and ancestors beyond the LRU bound.
	fd, err := e.v.Open(e.ctx, creds, "d/e/f0", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < files; i++ {
		e.v.Stat(e.ctx, creds, fmt.Sprintf("d/e/f%d", i))
	}
	if got := e.fs.Outstanding(); got < 3 {
		t.Errorf("with an open file: %d references, want >= 3 (d, e, f0)", got)
	}
	fd.Close(e.ctx)
}

func TestNoCache(t *testing.T) {
	e := newEnv(t, vfstest.Options{}, vfs.Options{MaxCachedDentries: -1})
	defer e.checkDrained(t)
	build(t, e.fs, "a/", "a/b")
	for i := 0; i < 3; i++ {
		if _, err := e.v.Stat(e.ctx, creds, "a/b"); err != nil {
			t.Fatal(err)
		}
		if got := e.fs.Outstanding(); got != 0 {
			t.Fatalf("outstanding = %d after a walk with no cache, want 0", got)
		}
	}
	if got := e.fs.Calls("Lookup"); got != 6 {
		t.Errorf("lookups = %d, want 6", got)
	}
}

func TestNegativeEntries(t *testing.T) {
	tests := []struct {
		name        string
		negValid    time.Duration
		wantLookups int // for three stats of a missing name
	}{
		{"cached", time.Second, 1},
		{"uncached", 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, vfstest.Options{EntryValid: time.Hour, NegativeValid: tt.negValid}, vfs.Options{})
			defer e.checkDrained(t)
			for i := 0; i < 3; i++ {
				if _, err := e.v.Stat(e.ctx, creds, "x"); errno(err) != syscall.ENOENT {
					t.Fatalf("Stat: %v, want ENOENT", err)
				}
			}
			if got := e.fs.Calls("Lookup"); got != tt.wantLookups {
				t.Errorf("lookups = %d, want %d", got, tt.wantLookups)
			}
			// The host creates the name: a cached negative entry hides it
			// until it expires.
			build(t, e.fs, "x")
			_, err := e.v.Stat(e.ctx, creds, "x")
			if tt.negValid > 0 && errno(err) != syscall.ENOENT {
				t.Errorf("Stat before expiry: %v, want ENOENT from the negative entry", err)
			}
			if tt.negValid == 0 && err != nil {
				t.Errorf("Stat: %v, want found", err)
			}
			e.clock.advance(tt.negValid + 1)
			if _, err := e.v.Stat(e.ctx, creds, "x"); err != nil {
				t.Errorf("Stat after expiry: %v", err)
			}
			// Creating over a negative entry replaces it.
			if err := e.v.Mkdir(e.ctx, creds, "y", 0o755); err != nil {
				t.Fatal(err)
			}
			if _, err := e.v.Stat(e.ctx, creds, "y"); err != nil {
				t.Errorf("Stat after mkdir over negative entry: %v", err)
			}
		})
	}
}

func TestRevalidation(t *testing.T) {
	e := newEnv(t, vfstest.Options{EntryValid: time.Second}, vfs.Options{})
	defer e.checkDrained(t)
	build(t, e.fs, "a/", "a/b/", "a/b/c")
	counts := func() (int, int) { return e.fs.Calls("Lookup"), e.fs.Calls("Revalidate") }
	stat := func() uint64 {
		t.Helper()
		st, err := e.v.Stat(e.ctx, creds, "a/b/c")
		if err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	first := stat()
	if l, r := counts(); l != 3 || r != 0 {
		t.Fatalf("cold walk: %d lookups, %d revalidations; want 3, 0", l, r)
	}
	stat()
	if l, r := counts(); l != 3 || r != 0 {
		t.Fatalf("cached walk: %d lookups, %d revalidations; want 3, 0", l, r)
	}
	e.clock.advance(2 * time.Second)
	if got := stat(); got != first {
		t.Fatalf("ino changed to %d", got)
	}
	if l, r := counts(); l != 3 || r != 3 {
		t.Fatalf("expired walk: %d lookups, %d revalidations; want 3, 3", l, r)
	}
	if n := e.fs.Outstanding(); n != 3 {
		t.Errorf("outstanding after revalidation = %d, want 3 (duplicates released)", n)
	}
	// The host replaces a/b/c: after expiry the walk sees the new node.
	if err := e.fs.HostRemove("a/b/c"); err != nil {
		t.Fatal(err)
	}
	build(t, e.fs, "a/b/c")
	if got := stat(); got != first {
		t.Fatalf("before expiry: ino %d, want the cached %d", got, first)
	}
	e.clock.advance(2 * time.Second)
	if got := stat(); got == first {
		t.Fatalf("after expiry: still the old ino %d", got)
	}
	// The host removes it: revalidation drops the dentry.
	e.fs.HostRemove("a/b/c")
	e.clock.advance(2 * time.Second)
	if _, err := e.v.Stat(e.ctx, creds, "a/b/c"); errno(err) != syscall.ENOENT {
		t.Fatalf("after host removal: %v, want ENOENT", err)
	}
	if n := e.fs.Outstanding(); n != 2 {
		t.Errorf("outstanding = %d, want 2 (a, a/b)", n)
	}
}

func TestCacheModeNone(t *testing.T) {
	e := newEnv(t, vfstest.Options{EntryValid: 0}, vfs.Options{})
	defer e.checkDrained(t)
	build(t, e.fs, "a/", "a/b")
	for i := 0; i < 4; i++ {
		if _, err := e.v.Stat(e.ctx, creds, "a/b"); err != nil {
			t.Fatal(err)
		}
	}
	if l, r := e.fs.Calls("Lookup"), e.fs.Calls("Revalidate"); l+r != 8 || l != 2 {
		t.Errorf("%d lookups + %d revalidations, want 2 + 6: every walk asks", l, r)
	}
}

func TestSubmounts(t *testing.T) {
	e := newEnv(t, vfstest.Options{EntryValid: time.Second}, vfs.Options{Dev: 100})
	defer e.checkDrained(t)
	build(t, e.fs, "a/", "sub/!", "sub/x", "sub/inner/!", "sub/inner/y", "sub/l -> ../a", "sub/abs -> /a")
	stat := func(p string) vfs.Statx {
		t.Helper()
		st, err := e.v.Stat(e.ctx, creds, p)
		if err != nil {
			t.Fatalf("Stat(%q): %v", p, err)
		}
		return st
	}
	tests := []struct {
		path    string
		wantDev uint64
		sameAs  string // must be the same node as this path
	}{
		{"/", 100, ""},
		{"a", 100, ""},
		{"sub", 101, ""},
		{"sub/x", 101, ""},
		{"sub/.", 101, "sub"},
		{"sub/..", 100, "/"},
		{"sub/../a", 100, "a"},
		{"sub/inner", 102, ""},
		{"sub/inner/y", 102, ""},
		{"sub/inner/..", 101, "sub"},
		{"sub/inner/../..", 100, "/"},
		{"sub/inner/../../../..", 100, "/"},
		{"sub/l", 100, "a"},
		{"sub/abs", 100, "a"},
	}
	for _, tt := range tests {
		st := stat(tt.path)
		if st.Dev != tt.wantDev {
			t.Errorf("Stat(%q).Dev = %d, want %d", tt.path, st.Dev, tt.wantDev)
		}
		if tt.sameAs != "" {
			if o := stat(tt.sameAs); o.Ino != st.Ino || o.Dev != st.Dev {
				t.Errorf("Stat(%q) = %d/%d, want %q's %d/%d", tt.path, st.Dev, st.Ino, tt.sameAs, o.Dev, o.Ino)
			}
		}
	}
	if got := e.v.CacheStats().Mounts; got != 3 {
		t.Errorf("mounts = %d, want 3", got)
	}
	// An open file inside a submount keeps working after the host removes
	// the submount and a walk detaches it.
	fd, err := e.v.Open(e.ctx, creds, "sub/inner/y", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.fs.HostRemove("sub"); err != nil {
		t.Fatal(err)
	}
	e.clock.advance(2 * time.Second)
	if _, err := e.v.Stat(e.ctx, creds, "sub/x"); errno(err) != syscall.ENOENT {
		t.Fatalf("Stat after host removal: %v, want ENOENT", err)
	}
	if got := e.v.CacheStats().Mounts; got != 1 {
		t.Errorf("mounts after detach = %d, want 1", got)
	}
	if st, err := fd.Stat(e.ctx); err != nil || st.Dev != 102 {
		t.Errorf("fstat of file in detached mount: dev %d, %v; want 102", st.Dev, err)
	}
	if err := fd.Close(e.ctx); err != nil {
		t.Fatal(err)
	}
	// The host recreates a submount there: it gets a new device number.
	build(t, e.fs, "sub/!")
	if st := stat("sub"); st.Dev != 103 {
		t.Errorf("new submount dev = %d, want 103", st.Dev)
	}
}

func TestCloseWithOpenFile(t *testing.T) {
	e := newEnv(t, vfstest.Options{EntryValid: time.Hour}, vfs.Options{})
	build(t, e.fs, "a/", "a/f", "sub/!", "sub/g")
	fd, err := e.v.Open(e.ctx, creds, "sub/g", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	e.v.Stat(e.ctx, creds, "a/f")
	if err := e.v.Close(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.v.Stat(e.ctx, creds, "a"); errno(err) != syscall.ENOTCONN {
		t.Errorf("Stat after Close: %v, want ENOTCONN", err)
	}
	if got := e.fs.Outstanding(); got != 2 {
		t.Errorf("outstanding with a file open = %d, want 2 (sub, g)", got)
	}
	if n, err := fd.Read(e.ctx, make([]byte, 16)); err != nil || n != len("sub/g") {
		t.Errorf("Read after Close = %d, %v", n, err)
	}
	fd.Close(e.ctx)
	if got := e.fs.Outstanding(); got != 0 {
		t.Errorf("outstanding = %d, want 0", got)
	}
	for _, v := range e.fs.Violations() {
		t.Errorf("contract violation: %s", v)
	}
}

// TestConcurrent runs walks, opens, listings and namespace changes at once
// with a small cache and short validity, then checks the reference
// accounting. Run with -race.
func TestConcurrent(t *testing.T) {
	e := newEnv(t, vfstest.Options{EntryValid: time.Millisecond, NegativeValid: time.Millisecond, ReaddirPlus: true},
		vfs.Options{MaxCachedDentries: 8})
	build(t, e.fs, "a/", "a/b/", "a/b/c", "sub/!", "sub/d/", "sub/d/e", "l -> a/b", "x/")
	paths := []string{"a/b/c", "l/c", "sub/d/e", "sub/../a/b", "x/y", "x/z/w", "a/b/../../sub/d", "/", "missing"}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed))
			for i := 0; i < 300; i++ {
				p := paths[r.Intn(len(paths))]
				switch r.Intn(6) {
				case 0:
					fd, err := e.v.Open(e.ctx, creds, p, unix.O_RDONLY, 0)
					if err == nil {
						if fd.IsDir() {
							fd.ReadDir(e.ctx, func(vfs.Dirent) bool { return true })
						}
						fd.Close(e.ctx)
					}
				case 1:
					e.clock.advance(time.Millisecond)
				default:
					e.v.Stat(e.ctx, creds, p)
				}
			}
		}(int64(g))
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 200; i++ {
			e.v.Mkdir(e.ctx, creds, "x/z", 0o755)
			if fd, err := e.v.Open(e.ctx, creds, "x/y", unix.O_CREAT|unix.O_WRONLY, 0o644); err == nil {
				fd.Close(e.ctx)
			}
			e.v.Rename(e.ctx, creds, "x/y", "x/z/w", 0)
			e.v.Unlink(e.ctx, creds, "x/z/w")
			e.v.Rmdir(e.ctx, creds, "x/z")
		}
	}()
	wg.Wait()
	if s := e.v.CacheStats(); s.Unreferenced > 8 {
		t.Errorf("unreferenced dentries = %d, want <= 8", s.Unreferenced)
	}
	e.checkDrained(t)
}
