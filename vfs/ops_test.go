package vfs_test

import (
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/vfs"
	"github.com/govirtiofs/govirtiofs/vfs/vfstest"
)

// opsTree is the starting tree of every operation test case.
var opsTree = []string{
	"a/", "a/b/", "a/b/c", "a/f", "d/", "e/", "e/x",
	"l_file -> a/f", "l_dir -> a", "dangling -> a/created",
	"sub/!", "sub/g", "sub/h/",
}

func TestOpen(t *testing.T) {
	tests := []struct {
		name  string
		path  string
		flags int
		err   syscall.Errno
		check string // a path that must exist afterwards
		isDir bool
	}{
		{name: "read file", path: "a/f", flags: unix.O_RDONLY},
		{name: "missing", path: "a/nope", flags: unix.O_RDONLY, err: syscall.ENOENT},
		{name: "create", path: "a/new", flags: unix.O_CREAT | unix.O_WRONLY, check: "a/new"},
		{name: "create in missing dir", path: "nope/new", flags: unix.O_CREAT | unix.O_WRONLY, err: syscall.ENOENT},
		{name: "create existing", path: "a/f", flags: unix.O_CREAT | unix.O_RDWR},
		{name: "create excl existing", path: "a/f", flags: unix.O_CREAT | unix.O_EXCL | unix.O_RDWR, err: syscall.EEXIST},
		{name: "create excl symlink", path: "dangling", flags: unix.O_CREAT | unix.O_EXCL | unix.O_RDWR, err: syscall.EEXIST},
		{name: "create through dangling", path: "dangling", flags: unix.O_CREAT | unix.O_RDWR, check: "a/created"},
		{name: "create trailing slash", path: "a/new/", flags: unix.O_CREAT | unix.O_RDWR, err: syscall.EISDIR},
		{name: "create existing dir", path: "d", flags: unix.O_CREAT | unix.O_RDONLY, err: syscall.EISDIR},
		{name: "create existing dir slash", path: "d/", flags: unix.O_CREAT | unix.O_RDONLY, err: syscall.EISDIR},
		{name: "create dot", path: "a/.", flags: unix.O_CREAT | unix.O_RDONLY, err: syscall.EISDIR},
		{name: "create root", path: "/", flags: unix.O_CREAT | unix.O_RDONLY, err: syscall.EISDIR},
		{name: "create directory flag", path: "a/n", flags: unix.O_CREAT | unix.O_DIRECTORY, err: syscall.EINVAL},
		{name: "nofollow symlink", path: "l_file", flags: unix.O_NOFOLLOW | unix.O_RDONLY, err: syscall.ELOOP},
		{name: "nofollow trailing slash", path: "l_dir/", flags: unix.O_NOFOLLOW | unix.O_RDONLY, isDir: true},
		{name: "follow symlink", path: "l_file", flags: unix.O_RDONLY},
		{name: "directory flag on file", path: "a/f", flags: unix.O_DIRECTORY, err: syscall.ENOTDIR},
		{name: "trailing slash on file", path: "a/f/", flags: unix.O_RDONLY, err: syscall.ENOTDIR},
		{name: "directory", path: "a", flags: unix.O_DIRECTORY | unix.O_RDONLY, isDir: true},
		{name: "root", path: "/", flags: unix.O_RDONLY, isDir: true},
		{name: "dotdot", path: "a/..", flags: unix.O_RDONLY, isDir: true},
		{name: "dir for write", path: "a", flags: unix.O_WRONLY, err: syscall.EISDIR},
		{name: "dir for rdwr", path: "a", flags: unix.O_RDWR, err: syscall.EISDIR},
		{name: "dir with trunc", path: "a", flags: unix.O_RDONLY | unix.O_TRUNC, err: syscall.EISDIR},
		{name: "bad access mode", path: "a/f", flags: unix.O_ACCMODE, err: syscall.EINVAL},
		{name: "submount root", path: "sub", flags: unix.O_RDONLY, isDir: true},
		{name: "create in submount", path: "sub/h/new", flags: unix.O_CREAT | unix.O_WRONLY, check: "sub/h/new"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, vfstest.Options{EntryValid: 1e9}, vfs.Options{})
			defer e.checkDrained(t)
			build(t, e.fs, opsTree...)
			fd, err := e.v.Open(e.ctx, creds, tt.path, tt.flags, 0o640)
			if fd != nil {
				defer fd.Close(e.ctx)
			}
			if got := errno(err); got != tt.err {
				t.Fatalf("Open(%q, %#x) error = %v, want %v", tt.path, tt.flags, errStr(got), errStr(tt.err))
			}
			if err != nil {
				return
			}
			if fd.IsDir() != tt.isDir {
				t.Errorf("IsDir = %v, want %v", fd.IsDir(), tt.isDir)
			}
			if tt.check != "" {
				st, err := e.v.Lstat(e.ctx, creds, tt.check)
				if err != nil {
					t.Fatalf("Lstat(%q) after create: %v", tt.check, err)
				}
				if st.Mode != vfs.S_IFREG|0o640 {
					t.Errorf("mode = %o, want %o", st.Mode, vfs.S_IFREG|0o640)
				}
			}
		})
	}
}

func TestOpenTrunc(t *testing.T) {
	e := newEnv(t, vfstest.Options{EntryValid: 1e9}, vfs.Options{})
	defer e.checkDrained(t)
	build(t, e.fs, "f")
	fd, err := e.v.Open(e.ctx, creds, "f", unix.O_WRONLY|unix.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close(e.ctx)
	st, err := fd.Stat(e.ctx)
	if err != nil || st.Size != 0 {
		t.Errorf("after O_TRUNC: size %d, err %v; want 0, nil", st.Size, err)
	}
	if fd.Flags()&unix.O_TRUNC != 0 {
		t.Errorf("Flags() = %#x keeps O_TRUNC", fd.Flags())
	}
}

// op is one operation of TestOps.
type op struct {
	name string
	do   func(e *env) error
	err  syscall.Errno
	// after lists paths that must resolve (lstat) afterwards, and gone
	// paths that must not.
	after, gone []string
}

func TestOps(t *testing.T) {
	mkdir := func(p string) func(e *env) error {
		return func(e *env) error { return e.v.Mkdir(e.ctx, creds, p, 0o755) }
	}
	mknod := func(p string, mode uint32) func(e *env) error {
		return func(e *env) error { return e.v.Mknod(e.ctx, creds, p, mode, 0) }
	}
	unlink := func(p string) func(e *env) error {
		return func(e *env) error { return e.v.Unlink(e.ctx, creds, p) }
	}
	rmdir := func(p string) func(e *env) error {
		return func(e *env) error { return e.v.Rmdir(e.ctx, creds, p) }
	}
	rename := func(o, n string, flags uint32) func(e *env) error {
		return func(e *env) error { return e.v.Rename(e.ctx, creds, o, n, flags) }
	}
	link := func(o, n string) func(e *env) error {
		return func(e *env) error { return e.v.Link(e.ctx, creds, o, n) }
	}
	symlink := func(target, p string) func(e *env) error {
		return func(e *env) error { return e.v.Symlink(e.ctx, creds, target, p) }
	}
	const (
		noreplace = unix.RENAME_NOREPLACE
		exchange  = unix.RENAME_EXCHANGE
	)
	tests := []op{
		{name: "mkdir", do: mkdir("a/n"), after: []string{"a/n"}},
		{name: "mkdir trailing slash", do: mkdir("a/n/"), after: []string{"a/n"}},
		{name: "mkdir exists", do: mkdir("a/f"), err: syscall.EEXIST},
		{name: "mkdir exists slash", do: mkdir("a/b/"), err: syscall.EEXIST},
		{name: "mkdir dot", do: mkdir("a/."), err: syscall.EEXIST},
		{name: "mkdir dotdot", do: mkdir("a/.."), err: syscall.EEXIST},
		{name: "mkdir root", do: mkdir("/"), err: syscall.EEXIST},
		{name: "mkdir dangling symlink", do: mkdir("dangling"), err: syscall.EEXIST},
		{name: "mkdir missing parent", do: mkdir("x/y"), err: syscall.ENOENT},
		{name: "mkdir under file", do: mkdir("a/f/y"), err: syscall.ENOTDIR},
		{name: "mkdir through symlink dir", do: mkdir("l_dir/n"), after: []string{"a/n"}},
		{name: "mknod", do: mknod("a/p", vfs.S_IFIFO|0o600), after: []string{"a/p"}},
		{name: "mknod regular", do: mknod("a/p", 0o600), after: []string{"a/p"}},
		{name: "mknod dir", do: mknod("a/p", vfs.S_IFDIR|0o600), err: syscall.EPERM},
		{name: "mknod symlink type", do: mknod("a/p", vfs.S_IFLNK|0o600), err: syscall.EINVAL},
		{name: "mknod trailing slash", do: mknod("a/p/", 0o600), err: syscall.ENOENT},
		{name: "symlink", do: symlink("x", "a/s"), after: []string{"a/s"}},
		{name: "symlink empty target", do: symlink("", "a/s"), err: syscall.ENOENT},
		{name: "symlink exists", do: symlink("x", "a/f"), err: syscall.EEXIST},
		{name: "symlink trailing slash", do: symlink("x", "a/s/"), err: syscall.ENOENT},
		{name: "unlink", do: unlink("a/f"), gone: []string{"a/f"}},
		{name: "unlink symlink", do: unlink("l_file"), gone: []string{"l_file"}, after: []string{"a/f"}},
		{name: "unlink missing", do: unlink("a/nope"), err: syscall.ENOENT},
		{name: "unlink dir", do: unlink("a/b"), err: syscall.EISDIR},
		{name: "unlink dir slash", do: unlink("a/b/"), err: syscall.EISDIR},
		{name: "unlink file slash", do: unlink("a/f/"), err: syscall.ENOTDIR},
		{name: "unlink dot", do: unlink("a/."), err: syscall.EISDIR},
		{name: "unlink root", do: unlink("/"), err: syscall.EISDIR},
		{name: "rmdir", do: rmdir("d"), gone: []string{"d"}},
		{name: "rmdir slash", do: rmdir("d/"), gone: []string{"d"}},
		{name: "rmdir not empty", do: rmdir("a"), err: syscall.ENOTEMPTY},
		{name: "rmdir file", do: rmdir("a/f"), err: syscall.ENOTDIR},
		{name: "rmdir symlink to dir", do: rmdir("l_dir"), err: syscall.ENOTDIR},
		{name: "rmdir dot", do: rmdir("d/."), err: syscall.EINVAL},
		{name: "rmdir dotdot", do: rmdir("a/b/.."), err: syscall.ENOTEMPTY},
		{name: "rmdir root", do: rmdir("/"), err: syscall.EBUSY},
		{name: "rmdir mount point", do: rmdir("sub/h/.."), err: syscall.ENOTEMPTY},
		{name: "rmdir submount", do: rmdir("sub"), err: syscall.EBUSY},
		{name: "rename file", do: rename("a/f", "d/g", 0), after: []string{"d/g"}, gone: []string{"a/f"}},
		{name: "rename over file", do: rename("a/f", "e/x", 0), after: []string{"e/x"}, gone: []string{"a/f"}},
		{name: "rename dir", do: rename("a", "n", 0), after: []string{"n/b/c", "n/f"}, gone: []string{"a"}},
		{name: "rename dir over empty dir", do: rename("a", "d", 0), after: []string{"d/b/c"}, gone: []string{"a"}},
		{name: "rename dir over nonempty", do: rename("d", "e", 0), err: syscall.ENOTEMPTY},
		{name: "rename dir over file", do: rename("d", "a/f", 0), err: syscall.ENOTDIR},
		{name: "rename file over dir", do: rename("a/f", "d", 0), err: syscall.EISDIR},
		{name: "rename missing", do: rename("a/nope", "d/x", 0), err: syscall.ENOENT},
		{name: "rename into self", do: rename("a", "a/b/n", 0), err: syscall.EINVAL},
		{name: "rename onto self", do: rename("a", "a", 0), after: []string{"a/f"}},
		{name: "rename onto ancestor", do: rename("a/b/c", "a", 0), err: syscall.ENOTEMPTY},
		{name: "rename hard link onto itself", do: func(e *env) error {
			if err := e.v.Link(e.ctx, creds, "a/f", "a/f2"); err != nil {
				return err
			}
			return e.v.Rename(e.ctx, creds, "a/f", "a/f2", 0)
		}, after: []string{"a/f", "a/f2"}},
		{name: "rename dot", do: rename("a/.", "n", 0), err: syscall.EBUSY},
		{name: "rename to dotdot", do: rename("a/f", "a/..", 0), err: syscall.EBUSY},
		{name: "rename to dotdot noreplace", do: rename("a/f", "a/..", noreplace), err: syscall.EEXIST},
		{name: "rename file slash", do: rename("a/f/", "n", 0), err: syscall.ENOTDIR},
		{name: "rename file to slash", do: rename("a/f", "n/", 0), err: syscall.ENOTDIR},
		{name: "rename dir to slash", do: rename("d", "n/", 0), after: []string{"n"}},
		{name: "rename noreplace", do: rename("a/f", "e/x", noreplace), err: syscall.EEXIST},
		{name: "rename noreplace free", do: rename("a/f", "e/y", noreplace), after: []string{"e/y"}},
		{name: "rename exchange", do: rename("a/f", "d", exchange), after: []string{"a/f/", "d"}},
		{name: "rename exchange missing", do: rename("a/f", "e/y", exchange), err: syscall.ENOENT},
		{name: "rename exchange ancestor", do: rename("a/b/c", "a", exchange), err: syscall.EINVAL},
		{name: "rename bad flags", do: rename("a/f", "n", noreplace|exchange), err: syscall.EINVAL},
		{name: "rename unknown flag", do: rename("a/f", "n", 1<<7), err: syscall.EINVAL},
		{name: "rename across mounts", do: rename("a/f", "sub/f", 0), err: syscall.EXDEV},
		{name: "rename mount point", do: rename("sub", "n", 0), err: syscall.EBUSY},
		{name: "rename over mount point", do: rename("d", "sub", 0), err: syscall.EBUSY},
		{name: "rename inside submount", do: rename("sub/g", "sub/h/g", 0), after: []string{"sub/h/g"}, gone: []string{"sub/g"}},
		{name: "rename symlink", do: rename("l_dir", "n", 0), after: []string{"n/f"}, gone: []string{"l_dir"}},
		{name: "link", do: link("a/f", "d/f"), after: []string{"d/f", "a/f"}},
		{name: "link symlink itself", do: link("l_dir", "d/l"), after: []string{"d/l", "l_dir/f"}},
		{name: "link dir", do: link("a", "d/a"), err: syscall.EPERM},
		{name: "link exists", do: link("a/f", "e/x"), err: syscall.EEXIST},
		{name: "link missing", do: link("a/nope", "d/x"), err: syscall.ENOENT},
		{name: "link across mounts", do: link("a/f", "sub/f"), err: syscall.EXDEV},
		{name: "link trailing slash", do: link("a/f", "d/x/"), err: syscall.ENOENT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, vfstest.Options{EntryValid: 1e9}, vfs.Options{})
			defer e.checkDrained(t)
			build(t, e.fs, opsTree...)
			// Warm the cache so that operations update cached dentries.
			for _, p := range []string{"a/b/c", "a/f", "d", "e/x", "sub/g", "sub/h", "l_dir", "l_file"} {
				if _, err := e.v.Lstat(e.ctx, creds, p); err != nil {
					t.Fatalf("warm Lstat(%q): %v", p, err)
				}
			}
			err := tt.do(e)
			if got := errno(err); got != tt.err {
				t.Fatalf("error = %v, want %v", errStr(got), errStr(tt.err))
			}
			for _, p := range tt.after {
				if _, err := e.v.Lstat(e.ctx, creds, p); err != nil {
					t.Errorf("Lstat(%q) afterwards: %v", p, err)
				}
			}
			for _, p := range tt.gone {
				if _, err := e.v.Lstat(e.ctx, creds, p); errno(err) != syscall.ENOENT {
					t.Errorf("Lstat(%q) afterwards: %v, want ENOENT", p, err)
				}
			}
		})
	}
}

func TestRenameMovesCachedTree(t *testing.T) {
	e := newEnv(t, vfstest.Options{EntryValid: 1e9}, vfs.Options{})
	defer e.checkDrained(t)
	build(t, e.fs, "a/", "a/b/", "a/b/sub/!", "a/b/sub/x", "n/")
	before, err := e.v.Stat(e.ctx, creds, "a/b/sub/x")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.v.Rename(e.ctx, creds, "a/b", "n/b", 0); err != nil {
		t.Fatal(err)
	}
	lookups := e.fs.Calls("Lookup")
	after, err := e.v.Stat(e.ctx, creds, "n/b/sub/x")
	if err != nil {
		t.Fatal(err)
	}
	if after.Ino != before.Ino || after.Dev != before.Dev {
		t.Errorf("after rename: ino/dev %d/%#x, want %d/%#x", after.Ino, after.Dev, before.Ino, before.Dev)
	}
	if got := e.fs.Calls("Lookup") - lookups; got != 0 {
		t.Errorf("walk after rename did %d lookups, want 0 (dentries moved)", got)
	}
	if got := e.v.CacheStats().Mounts; got != 2 {
		t.Errorf("mounts = %d, want 2", got)
	}
}

func TestSetStatAndXattr(t *testing.T) {
	e := newEnv(t, vfstest.Options{EntryValid: 1e9}, vfs.Options{})
	defer e.checkDrained(t)
	build(t, e.fs, "d/", "f", "l -> f")
	setSize := &vfs.SetStatOptions{Mask: vfs.SetSize, Size: 3}
	tests := []struct {
		name string
		do   func() error
		err  syscall.Errno
	}{
		{"truncate", func() error { return e.v.SetStat(e.ctx, creds, "f", setSize, true) }, 0},
		{"truncate through symlink", func() error { return e.v.SetStat(e.ctx, creds, "l", setSize, true) }, 0},
		{"truncate dir", func() error { return e.v.SetStat(e.ctx, creds, "d", setSize, true) }, syscall.EISDIR},
		{"truncate symlink itself", func() error { return e.v.SetStat(e.ctx, creds, "l", setSize, false) }, syscall.EINVAL},
		{"truncate negative", func() error {
			return e.v.SetStat(e.ctx, creds, "f", &vfs.SetStatOptions{Mask: vfs.SetSize, Size: 1 << 63}, true)
		}, syscall.EINVAL},
		{"chmod", func() error {
			return e.v.SetStat(e.ctx, creds, "f", &vfs.SetStatOptions{Mask: vfs.SetMode, Mode: vfs.S_IFDIR | 0o600}, true)
		}, 0},
		{"setxattr", func() error { return e.v.Setxattr(e.ctx, creds, "f", "user.a", []byte("v"), 0, true) }, 0},
		{"setxattr create exists", func() error {
			return e.v.Setxattr(e.ctx, creds, "f", "user.a", []byte("v"), unix.XATTR_CREATE, true)
		}, syscall.EEXIST},
		{"setxattr replace missing", func() error {
			return e.v.Setxattr(e.ctx, creds, "f", "user.b", []byte("v"), unix.XATTR_REPLACE, true)
		}, syscall.ENODATA},
		{"setxattr bad flags", func() error { return e.v.Setxattr(e.ctx, creds, "f", "user.b", nil, 8, true) }, syscall.EINVAL},
		{"setxattr empty name", func() error { return e.v.Setxattr(e.ctx, creds, "f", "", nil, 0, true) }, syscall.ERANGE},
		{"setxattr too big", func() error {
			return e.v.Setxattr(e.ctx, creds, "f", "user.b", make([]byte, 65537), 0, true)
		}, syscall.E2BIG},
		{"getxattr missing", func() error { _, err := e.v.Getxattr(e.ctx, creds, "f", "user.zz", true); return err }, syscall.ENODATA},
		{"removexattr", func() error { return e.v.Removexattr(e.ctx, creds, "f", "user.a", true) }, 0},
		{"removexattr missing", func() error { return e.v.Removexattr(e.ctx, creds, "f", "user.a", true) }, syscall.ENODATA},
		{"readlink", func() error { _, err := e.v.Readlink(e.ctx, creds, "l"); return err }, 0},
		{"readlink not symlink", func() error { _, err := e.v.Readlink(e.ctx, creds, "f"); return err }, syscall.EINVAL},
		{"statfs", func() error { _, err := e.v.Statfs(e.ctx, creds, "d"); return err }, 0},
		{"sync", func() error { return e.v.Sync(e.ctx) }, 0},
	}
	for _, tt := range tests {
		if got := errno(tt.do()); got != tt.err {
			t.Errorf("%s: error = %v, want %v", tt.name, errStr(got), errStr(tt.err))
		}
	}
	st, err := e.v.Stat(e.ctx, creds, "f")
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != 3 || st.Mode != vfs.S_IFREG|0o600 {
		t.Errorf("size %d mode %o, want 3 and %o", st.Size, st.Mode, vfs.S_IFREG|0o600)
	}
	if err := e.v.Setxattr(e.ctx, creds, "f", "user.x", []byte("val"), 0, true); err != nil {
		t.Fatal(err)
	}
	if v, err := e.v.Getxattr(e.ctx, creds, "l", "user.x", true); err != nil || string(v) != "val" {
		t.Errorf("Getxattr through symlink = %q, %v; want \"val\", nil", v, err)
	}
	if names, err := e.v.Listxattr(e.ctx, creds, "f", false); err != nil || len(names) != 1 || names[0] != "user.x" {
		t.Errorf("Listxattr = %q, %v; want [user.x]", names, err)
	}
}
