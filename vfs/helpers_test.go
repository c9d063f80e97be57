package vfs_test

import (
	"context"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs/vfs"
	"github.com/govirtiofs/govirtiofs/vfs/vfstest"
)

var creds = &vfs.Credentials{UID: 1000, GID: 1000}

// fakeClock is a clock that moves only when told.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// env is one VirtualFilesystem over one vfstest.FS.
type env struct {
	t     *testing.T
	fs    *vfstest.FS
	v     *vfs.VirtualFilesystem
	clock *fakeClock
	ctx   context.Context
}

func newEnv(t testing.TB, fo vfstest.Options, vo vfs.Options) *env {
	e := &env{fs: vfstest.New(fo), clock: &fakeClock{}, ctx: context.Background()}
	if tt, ok := t.(*testing.T); ok {
		e.t = tt
	}
	e.clock.ns.Store(1e18)
	vo.Now = e.clock.now
	e.v = vfs.New(e.fs, e.fs.Root(), vo)
	return e
}

// checkDrained closes the VirtualFilesystem and checks that every inode
// reference came back exactly once.
func (e *env) checkDrained(t testing.TB) {
	t.Helper()
	if err := e.v.Close(e.ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if n := e.fs.Outstanding(); n != 0 {
		t.Errorf("after Close: %d inode references outstanding, want 0", n)
	}
	if s := e.v.CacheStats(); s != (vfs.CacheStats{}) {
		t.Errorf("after Close: CacheStats = %+v, want zero", s)
	}
	for _, v := range e.fs.Violations() {
		t.Errorf("contract violation: %s", v)
	}
}

// build creates a tree host-side from specs: "d/" a directory, "s/!" a
// submount directory, "l -> target" a symlink, anything else a file whose
// content is its path.
func build(t testing.TB, fs *vfstest.FS, specs ...string) {
	t.Helper()
	for _, s := range specs {
		var err error
		switch {
		case strings.Contains(s, " -> "):
			p, target, _ := strings.Cut(s, " -> ")
			err = fs.HostSymlink(target, p)
		case strings.HasSuffix(s, "/!"):
			err = fs.HostMkdir(strings.TrimSuffix(s, "/!"), true)
		case strings.HasSuffix(s, "/"):
			err = fs.HostMkdir(strings.TrimSuffix(s, "/"), false)
		default:
			err = fs.HostWriteFile(s, []byte(s))
		}
		if err != nil {
			t.Fatalf("build %q: %v", s, err)
		}
	}
}

func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if e, ok := err.(syscall.Errno); ok {
		return e
	}
	return syscall.Errno(0xffff)
}

func errStr(e syscall.Errno) string {
	if e == 0 {
		return "nil"
	}
	return e.Error()
}
