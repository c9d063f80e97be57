package govirtiofs

import (
	"errors"
	"io/fs"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs/vfs"
	"github.com/govirtiofs/govirtiofs/vfs/vfstest"
)

// newMemFS returns an FS over vfstest's in-memory filesystem, closed (with
// the reference contract checked) when the test ends.
func newMemFS(t testing.TB) *FS {
	t.Helper()
	mem := vfstest.New(vfstest.Options{EntryValid: time.Second, NegativeValid: time.Second})
	v := vfs.New(mem, mem.Root(), vfs.Options{})
	umask := uint32(0o022)
	f := newFS(v, "mem", &Options{Umask: &umask}, nil)
	t.Cleanup(func() {
		if err := f.Close(); err != nil && !errors.Is(err, fs.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
		if n := mem.Outstanding(); n != 0 {
			t.Errorf("after Close: %d inode references outstanding", n)
		}
		if n := mem.OpenFiles(); n != 0 {
			t.Errorf("after Close: %d files open", n)
		}
	})
	return f
}
