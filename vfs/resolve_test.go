package vfs_test

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs/vfs"
	"github.com/govirtiofs/govirtiofs/vfs/vfstest"
)

// walkTree is the tree the path-walk tests resolve in.
var walkTree = []string{
	"a/", "a/b/", "a/b/c", "a/f", "d/",
	"l_abs -> /a/b", "l_rel -> a/b", "a/l_up -> ../d", "l_file -> a/f",
	"dangling -> nothere", "loop1 -> loop2", "loop2 -> loop1",
	"l_root -> /../../..", "l_dot -> .", "empty -> ",
}

func walkEnv(t *testing.T) *env {
	e := newEnv(t, vfstest.Options{EntryValid: 1e9}, vfs.Options{})
	build(t, e.fs, walkTree...)
	// chain0 -> chain1 -> ... -> chain40 -> a/f: following chain0 takes 41
	// links, one past Linux's MAXSYMLINKS.
	for i := 0; i < 40; i++ {
		build(t, e.fs, fmt.Sprintf("chain%d -> chain%d", i, i+1))
	}
	build(t, e.fs, "chain40 -> a/f")
	return e
}

func TestWalk(t *testing.T) {
	e := walkEnv(t)
	defer e.checkDrained(t)
	ino := func(p string) uint64 {
		st, err := e.v.Lstat(e.ctx, creds, p)
		if err != nil {
			t.Fatalf("Lstat(%q): %v", p, err)
		}
		return st.Ino
	}
	root, a, b, c, f, d := ino("/"), ino("a"), ino("a/b"), ino("a/b/c"), ino("a/f"), ino("d")
	long := strings.Repeat("x", 256)
	tests := []struct {
		path   string
		follow bool
		want   uint64 // inode number, or 0 when an error is expected
		err    syscall.Errno
		isLink bool // want a symlink (nofollow cases)
	}{
		{path: "", follow: true, err: syscall.ENOENT},
		{path: "/", follow: true, want: root},
		{path: "//", follow: true, want: root},
		{path: ".", follow: true, want: root},
		{path: "..", follow: true, want: root},
		{path: "/../../..", follow: true, want: root},
		{path: "a/b/c", follow: true, want: c},
		{path: "/a/b/c", follow: true, want: c},
		{path: "a//b///c", follow: true, want: c},
		{path: "./a/./b/c", follow: true, want: c},
		{path: "a/b/../f", follow: true, want: f},
		{path: "a/b/../../d", follow: true, want: d},
		{path: "a/b/", follow: true, want: b},
		{path: "a/b/.", follow: true, want: b},
		{path: "a/b/..", follow: true, want: a},
		{path: "a/b/c/", follow: true, err: syscall.ENOTDIR},
		{path: "a/b/c/.", follow: true, err: syscall.ENOTDIR},
		{path: "a/b/c/..", follow: true, err: syscall.ENOTDIR},
		{path: "a/f/x", follow: true, err: syscall.ENOTDIR},
		{path: "a/nope", follow: true, err: syscall.ENOENT},
		{path: "a/nope/x", follow: true, err: syscall.ENOENT},
		{path: "l_abs/c", follow: true, want: c},
		{path: "l_rel/c", follow: true, want: c},
		{path: "l_rel/../f", follow: true, want: f},
		{path: "a/l_up", follow: true, want: d},
		{path: "a/l_up", follow: false, isLink: true},
		{path: "a/l_up/", follow: false, want: d},
		{path: "l_abs", follow: true, want: b},
		{path: "l_abs", follow: false, isLink: true},
		{path: "l_abs/", follow: false, want: b},
		{path: "l_file", follow: true, want: f},
		{path: "l_file/", follow: false, err: syscall.ENOTDIR},
		{path: "l_root", follow: true, want: root},
		{path: "l_root/a/f", follow: true, want: f},
		{path: "l_dot/a", follow: true, want: a},
		{path: "dangling", follow: true, err: syscall.ENOENT},
		{path: "dangling", follow: false, isLink: true},
		{path: "loop1", follow: true, err: syscall.ELOOP},
		{path: "loop1", follow: false, isLink: true},
		{path: "loop1/x", follow: false, err: syscall.ELOOP},
		{path: "chain1", follow: true, want: f},
		{path: "chain0", follow: true, err: syscall.ELOOP},
		{path: "chain0", follow: false, isLink: true},
		{path: "empty", follow: true, err: syscall.ENOENT},
		{path: "empty/x", follow: true, err: syscall.ENOENT},
		{path: long, follow: true, err: syscall.ENAMETOOLONG},
		{path: "a/" + long + "/x", follow: true, err: syscall.ENAMETOOLONG},
		{path: long[:255], follow: true, err: syscall.ENOENT},
		{path: strings.Repeat("a/", 2048), follow: true, err: syscall.ENAMETOOLONG},
		{path: strings.Repeat("./", 2047) + "a", follow: true, want: a},
	}
	// The second pass finds every positive name cached: the walk that
	// holds vfs.mu once must give the same answers as the full one.
	for _, pass := range []string{"first", "cached"} {
		for _, tt := range tests {
			name := tt.path
			if len(name) > 40 {
				name = name[:40] + "..."
			}
			t.Run(fmt.Sprintf("%s/%s/follow=%v", pass, name, tt.follow), func(t *testing.T) {
				stat := e.v.Lstat
				if tt.follow {
					stat = e.v.Stat
				}
				st, err := stat(e.ctx, creds, tt.path)
				if got := errno(err); got != tt.err {
					t.Fatalf("error = %v, want %v", errStr(got), errStr(tt.err))
				}
				if err != nil {
					return
				}
				if tt.isLink {
					if st.Mode&vfs.S_IFMT != vfs.S_IFLNK {
						t.Errorf("mode = %o, want a symlink", st.Mode)
					}
					return
				}
				if st.Ino != tt.want {
					t.Errorf("ino = %d, want %d", st.Ino, tt.want)
				}
			})
		}
	}
}

func TestStatDev(t *testing.T) {
	e := newEnv(t, vfstest.Options{EntryValid: 1e9}, vfs.Options{Dev: 0x1234})
	defer e.checkDrained(t)
	build(t, e.fs, "f")
	for _, p := range []string{"/", "f"} {
		st, err := e.v.Stat(e.ctx, creds, p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Dev != 0x1234 {
			t.Errorf("Stat(%q).Dev = %#x, want %#x", p, st.Dev, 0x1234)
		}
	}
}

// TestWalkCachedParent checks the walk of a path whose directories are
// cached but whose last name is not: one Lookup, of that name only; and
// once the directories' entries expire, each is revalidated again.
func TestWalkCachedParent(t *testing.T) {
	e := newEnv(t, vfstest.Options{EntryValid: 1e9}, vfs.Options{})
	defer e.checkDrained(t)
	build(t, e.fs, "a/", "a/b/", "a/b/x", "a/b/y", "a/b/z")
	if _, err := e.v.Stat(e.ctx, creds, "a/b/x"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path    string
		advance time.Duration // clock step before the stat
		lookups int
		err     syscall.Errno
	}{
		{"a/b/y", 0, 1, 0},     // a and a/b cached: y alone
		{"/a//b/./z", 0, 1, 0}, // the same, spelled otherwise
		{"a/b/nope", 0, 1, syscall.ENOENT},
		{"a/b/x/w", 0, 0, syscall.ENOTDIR}, // x cached, not a directory
		{"a/b/z", 2 * time.Second, 3, 0},   // everything expired: a, b and z again
	}
	for _, tt := range tests {
		e.clock.advance(tt.advance)
		before := e.fs.Calls("Lookup") + e.fs.Calls("Revalidate")
		_, err := e.v.Stat(e.ctx, creds, tt.path)
		if got := errno(err); got != tt.err {
			t.Errorf("Stat(%q) error = %v, want %v", tt.path, errStr(got), errStr(tt.err))
		}
		if n := e.fs.Calls("Lookup") + e.fs.Calls("Revalidate") - before; n != tt.lookups {
			t.Errorf("Stat(%q) made %d lookups, want %d", tt.path, n, tt.lookups)
		}
	}
}
