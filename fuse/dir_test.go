package fuse_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/fuse"
	"github.com/govirtiofs/govirtiofs/internal/virtiofsdtest"
	"github.com/govirtiofs/govirtiofs/vfs"
)

// TestReadDirPlusChoice checks when a listing asks for READDIRPLUS
// (virtiofsd with -o readdirplus, which answers with READDIRPLUS_AUTO): at
// the start of a small directory's listing, whose entries then stat with
// no LOOKUP; not for a large directory (its size attribute is more than a
// page), unless names in it were looked up since its last listing.
func TestReadDirPlusChoice(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []struct {
		name string
		n    int
	}{{"small", 5}, {"large", 500}} {
		if err := os.Mkdir(filepath.Join(dir, d.name), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range d.n {
			fsHostWrite(t, filepath.Join(dir, d.name, fmt.Sprintf("entry%04d", i)), "x")
		}
	}
	s := startFS(t, dir, fsConfig{
		daemon: virtiofsdtest.Options{Cache: "auto", ExtraArgs: []string{"-o", "readdirplus"}},
		fs:     fuse.FSOptions{Cache: fuse.CacheAuto},
	})
	if p := s.fs.Params(); !p.Has(fuse.InitDoReaddirplus) || !p.Has(fuse.InitReaddirplusAuto) {
		t.Fatalf("virtiofsd did not negotiate READDIRPLUS with READDIRPLUS_AUTO: flags %#x", p.Flags)
	}
	ctx := context.Background()
	// list lists name whole and returns the LOOKUPs the listing counted
	// (READDIRPLUS entries count as lookups) and the names it saw.
	list := func(name string) (uint64, int) {
		t.Helper()
		before := s.fs.Stats().Lookups
		fd, err := s.v.Open(ctx, root, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer fd.Close(ctx)
		seen := 0
		if err := fd.ReadDir(ctx, func(de vfs.Dirent) bool { seen++; return true }); err != nil {
			t.Fatal(err)
		}
		return s.fs.Stats().Lookups - before, seen
	}
	// stat stats name and returns the LOOKUPs it sent.
	stat := func(name string) uint64 {
		t.Helper()
		before := s.fs.Stats().Lookups
		if _, err := s.v.Stat(ctx, root, name); err != nil {
			t.Fatal(err)
		}
		return s.fs.Stats().Lookups - before
	}

	stat("small") // looked up now, so that list counts the listing's lookups only
	stat("large")
	if got, seen := list("small"); got != 5 || seen != 7 {
		t.Errorf("listing small: %d lookups, %d names; want 5 (READDIRPLUS) and 7", got, seen)
	}
	if got := stat("small/entry0003"); got != 0 {
		t.Errorf("stat after READDIRPLUS sent %d LOOKUPs, want 0", got)
	}
	if got, seen := list("large"); got != 0 || seen != 502 {
		t.Errorf("listing large: %d lookups, %d names; want 0 (plain READDIR) and 502", got, seen)
	}
	if got := stat("large/entry0100"); got != 1 {
		t.Errorf("stat of a name listed plainly sent %d LOOKUPs, want 1", got)
	}
	// That LOOKUP advises READDIRPLUS for the next listing's first request.
	if got, seen := list("large"); got == 0 || seen != 502 {
		t.Errorf("listing large after a lookup in it: %d lookups, %d names; want READDIRPLUS and 502", got, seen)
	}
}
