package fuse_test

// Host integration: fuse.Conn over driver.Device over the vhost-user front
// end (virtio/vhostuser) against the real virtiofsd serving a temp
// directory. Every opcode virtiofsd implements is exercised and checked
// against what package os (and golang.org/x/sys/unix) sees in the
// directory; the ones it does not implement must fail with a clean
// ENOSYS. virtiofsd runs with -o cache=none, readdirplus, posix_lock,
// flock and xattr.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/driver"
	"github.com/govirtiofs/govirtiofs/fuse"
	"github.com/govirtiofs/govirtiofs/internal/syncbuf"
	"github.com/govirtiofs/govirtiofs/internal/virtiofsdtest"
	"github.com/govirtiofs/govirtiofs/virtio/vhostuser"
)

// hostConn starts virtiofsd on dir and returns an initialized Conn over
// the real device, and its log.
func hostConn(t testing.TB, dir string) (*fuse.Conn, *syncbuf.Buffer) {
	return hostConnOpts(t, dir, fuse.ConnOptions{})
}

// hostConnOpts is hostConn with Conn options and extra virtiofsd
// arguments.
func hostConnOpts(t testing.TB, dir string, opts fuse.ConnOptions, extraArgs ...string) (*fuse.Conn, *syncbuf.Buffer) {
	t.Helper()
	vd := virtiofsdtest.Start(t, dir, virtiofsdtest.Options{Cache: "none", Xattr: true,
		ExtraArgs: append([]string{"-o", "readdirplus", "-o", "posix_lock", "-o", "flock"}, extraArgs...)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr, err := vhostuser.Dial(ctx, vd.Socket, vhostuser.Options{Tag: "fusetest"})
	if err != nil {
		t.Fatalf("vhostuser.Dial: %v", err)
	}
	d, err := driver.New(ctx, tr, driver.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tr.Close()
		t.Fatalf("driver.New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	lb := &syncbuf.Buffer{}
	opts.Creds = fuse.Creds{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), PID: uint32(os.Getpid())}
	opts.Logger = slog.New(slog.NewTextHandler(lb, nil))
	c := fuse.NewConn(d, opts)
	if err := c.Init(ctx); err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Cleanup(func() {
		if s := lb.String(); s != "" {
			t.Errorf("invalid replies from virtiofsd were logged:\n%s", s)
		}
	})
	return c, lb
}

func hostStat(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatalf("host lstat %s: %v", path, err)
	}
	return &st
}

// sameAttr compares FUSE attributes with the host's stat.
func sameAttr(t *testing.T, what string, a fuse.Attr, st *syscall.Stat_t) {
	t.Helper()
	if a.Ino != st.Ino || a.Mode != st.Mode || a.Size != uint64(st.Size) || a.Nlink != uint32(st.Nlink) ||
		a.UID != st.Uid || a.GID != st.Gid || !a.Mtime.Equal(time.Unix(st.Mtim.Unix())) {
		t.Errorf("%s: FUSE attr ino %d mode %#o size %d nlink %d uid %d gid %d mtime %v;\nhost ino %d mode %#o size %d nlink %d uid %d gid %d mtime %v",
			what, a.Ino, a.Mode, a.Size, a.Nlink, a.UID, a.GID, a.Mtime,
			st.Ino, st.Mode, st.Size, st.Nlink, st.Uid, st.Gid, time.Unix(st.Mtim.Unix()))
	}
}

func randBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// readAll reads a whole open file through FUSE in MaxPages chunks.
func readAll(t *testing.T, c *fuse.Conn, nodeid, fh uint64) []byte {
	t.Helper()
	p, _ := c.Params()
	var out []byte
	buf := make([]byte, p.MaxPages*4096)
	for {
		n, err := c.Read(context.Background(), nodeid, fuse.ReadIn{Fh: fh, Offset: uint64(len(out))}, buf)
		if err != nil {
			t.Fatalf("Read at %d: %v", len(out), err)
		}
		if n == 0 {
			return out
		}
		out = append(out, buf[:n]...)
	}
}

func TestVirtiofsdOps(t *testing.T) {
	dir := t.TempDir()
	c, _ := hostConn(t, dir)
	ctx := context.Background()
	const root = fuse.RootID
	p, _ := c.Params()
	t.Logf("negotiated %+v", p)

	t.Run("INIT", func(t *testing.T) {
		if p.Minor != 36 || p.MaxWrite < 4096 || p.MaxPages < 1 {
			t.Errorf("Params %+v; want minor 36 and sane sizes", p)
		}
		for _, f := range []uint64{fuse.InitMaxPages, fuse.InitBigWrites, fuse.InitPosixLocks, fuse.InitFlockLocks,
			fuse.InitDoReaddirplus, fuse.InitParallelDirops, fuse.InitAsyncRead} {
			if !p.Has(f) {
				t.Errorf("virtiofsd did not negotiate %#x (flags %#x)", f, p.Flags)
			}
		}
	})

	t.Run("GETATTR root and STATFS", func(t *testing.T) {
		a, err := c.Getattr(ctx, root, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		sameAttr(t, "root", a.Attr, hostStat(t, dir))
		s, err := c.Statfs(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		var hs unix.Statfs_t
		if err := unix.Statfs(dir, &hs); err != nil {
			t.Fatal(err)
		}
		if s.Bsize != uint32(hs.Bsize) || s.Blocks != hs.Blocks || s.Files != hs.Files || s.Namelen != uint32(hs.Namelen) {
			t.Errorf("statfs %+v; host bsize %d blocks %d files %d namelen %d", s, hs.Bsize, hs.Blocks, hs.Files, hs.Namelen)
		}
	})

	t.Run("LOOKUP OPEN READ FLUSH RELEASE FORGET of a host file", func(t *testing.T) {
		data := randBytes(t, 300<<10+123)
		path := filepath.Join(dir, "hostfile")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		e, err := c.Lookup(ctx, root, "hostfile")
		if err != nil {
			t.Fatal(err)
		}
		sameAttr(t, "hostfile", e.Attr, hostStat(t, path))
		o, err := c.Open(ctx, e.NodeID, syscall.O_RDONLY)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, c, e.NodeID, o.Fh); !bytes.Equal(got, data) {
			t.Errorf("READ returned %d bytes differing from the %d the host wrote", len(got), len(data))
		}
		// A read straddling EOF is short, with the host's bytes.
		buf := make([]byte, 4096)
		n, err := c.Read(ctx, e.NodeID, fuse.ReadIn{Fh: o.Fh, Offset: uint64(len(data) - 100)}, buf)
		if err != nil || n != 100 || !bytes.Equal(buf[:n], data[len(data)-100:]) {
			t.Errorf("READ at EOF-100: n %d err %v", n, err)
		}
		if err := c.Flush(ctx, e.NodeID, o.Fh, 1); err != nil {
			t.Errorf("FLUSH: %v", err)
		}
		if err := c.Release(ctx, e.NodeID, fuse.ReleaseIn{Fh: o.Fh, Flags: syscall.O_RDONLY}); err != nil {
			t.Errorf("RELEASE: %v", err)
		}
		if err := c.Forget(ctx, e.NodeID, 1); err != nil {
			t.Errorf("FORGET: %v", err)
		}
		if _, err := c.Lookup(ctx, root, "missing"); err != syscall.ENOENT {
			t.Errorf("LOOKUP missing = %v, want ENOENT", err)
		}
	})

	t.Run("CREATE WRITE FSYNC SETATTR GETATTR", func(t *testing.T) {
		path := filepath.Join(dir, "created")
		e, o, err := c.Create(ctx, root, "created", syscall.O_RDWR|syscall.O_CREAT|syscall.O_EXCL, 0o640, 0)
		if err != nil {
			t.Fatal(err)
		}
		st := hostStat(t, path)
		if st.Mode != syscall.S_IFREG|0o640 {
			t.Errorf("host mode %#o, want regular 0640", st.Mode)
		}
		sameAttr(t, "created", e.Attr, st)
		if _, _, err := c.Create(ctx, root, "created", syscall.O_RDWR|syscall.O_CREAT|syscall.O_EXCL, 0o640, 0); err != syscall.EEXIST {
			t.Errorf("CREATE O_EXCL of an existing name = %v, want EEXIST", err)
		}
		big := randBytes(t, int(p.MaxWrite))
		for _, w := range []struct {
			off  uint64
			data []byte
		}{{0, []byte("hello")}, {10, []byte("world")}, {4096, big}} {
			n, err := c.Write(ctx, e.NodeID, fuse.WriteIn{Fh: o.Fh, Offset: w.off}, w.data)
			if err != nil || n != len(w.data) {
				t.Fatalf("WRITE %d bytes at %d: n %d err %v", len(w.data), w.off, n, err)
			}
		}
		if err := c.Fsync(ctx, e.NodeID, o.Fh, 0); err != nil {
			t.Errorf("FSYNC: %v", err)
		}
		if err := c.Fsync(ctx, e.NodeID, o.Fh, fuse.FsyncFdatasync); err != nil {
			t.Errorf("FSYNC datasync: %v", err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, 4096+len(big))
		copy(want, "hello\x00\x00\x00\x00\x00world")
		copy(want[4096:], big)
		if !bytes.Equal(got, want) {
			t.Errorf("host sees %d bytes not matching the writes", len(got))
		}
		mtime := time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC)
		a, err := c.Setattr(ctx, e.NodeID, fuse.SetattrIn{Valid: fuse.SetattrSize | fuse.SetattrMode | fuse.SetattrMtime | fuse.SetattrFh,
			Fh: o.Fh, Size: 3, Mode: 0o600, Mtime: mtime})
		if err != nil {
			t.Fatal(err)
		}
		st = hostStat(t, path)
		sameAttr(t, "after SETATTR", a.Attr, st)
		if st.Size != 3 || st.Mode&0o777 != 0o600 || !time.Unix(st.Mtim.Unix()).Equal(mtime) {
			t.Errorf("host after SETATTR: size %d mode %#o mtime %v", st.Size, st.Mode, time.Unix(st.Mtim.Unix()))
		}
		g, err := c.Getattr(ctx, e.NodeID, fuse.GetattrFh, o.Fh)
		if err != nil {
			t.Fatal(err)
		}
		sameAttr(t, "GETATTR by fh", g.Attr, st)
		if err := c.Release(ctx, e.NodeID, fuse.ReleaseIn{Fh: o.Fh, Flags: syscall.O_RDWR}); err != nil {
			t.Errorf("RELEASE: %v", err)
		}
	})

	t.Run("MKDIR MKNOD SYMLINK READLINK LINK", func(t *testing.T) {
		d, err := c.Mkdir(ctx, root, "sub", 0o750, 0)
		if err != nil {
			t.Fatal(err)
		}
		sameAttr(t, "sub", d.Attr, hostStat(t, filepath.Join(dir, "sub")))
		if _, err := c.Mkdir(ctx, root, "sub", 0o750, 0); err != syscall.EEXIST {
			t.Errorf("MKDIR existing = %v, want EEXIST", err)
		}
		f, err := c.Mknod(ctx, d.NodeID, "fifo", syscall.S_IFIFO|0o600, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if st := hostStat(t, filepath.Join(dir, "sub", "fifo")); st.Mode != syscall.S_IFIFO|0o600 {
			t.Errorf("host fifo mode %#o", st.Mode)
		} else {
			sameAttr(t, "fifo", f.Attr, st)
		}
		if _, err := c.Mknod(ctx, d.NodeID, "plain", syscall.S_IFREG|0o644, 0, 0); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(filepath.Join(dir, "sub", "plain")); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("host plain: %v %v", fi, err)
		}
		l, err := c.Symlink(ctx, root, "link", "created")
		if err != nil {
			t.Fatal(err)
		}
		if target, err := os.Readlink(filepath.Join(dir, "link")); err != nil || target != "created" {
			t.Errorf("host readlink = %q, %v", target, err)
		}
		if target, err := c.Readlink(ctx, l.NodeID); err != nil || target != "created" {
			t.Errorf("READLINK = %q, %v", target, err)
		}
		os.Symlink("../hostfile", filepath.Join(dir, "sub", "hostlink"))
		hl, err := c.Lookup(ctx, d.NodeID, "hostlink")
		if err != nil {
			t.Fatal(err)
		}
		if target, err := c.Readlink(ctx, hl.NodeID); err != nil || target != "../hostfile" {
			t.Errorf("READLINK of a host symlink = %q, %v", target, err)
		}
		cr, err := c.Lookup(ctx, root, "created")
		if err != nil {
			t.Fatal(err)
		}
		h, err := c.Link(ctx, cr.NodeID, d.NodeID, "hard")
		if err != nil {
			t.Fatal(err)
		}
		st := hostStat(t, filepath.Join(dir, "sub", "hard"))
		if h.NodeID != cr.NodeID || st.Ino != hostStat(t, filepath.Join(dir, "created")).Ino || st.Nlink != 2 {
			t.Errorf("LINK: nodeid %d (created %d), host ino %d nlink %d", h.NodeID, cr.NodeID, st.Ino, st.Nlink)
		}
		sameAttr(t, "hard", h.Attr, st)
		if _, err := c.Link(ctx, d.NodeID, root, "dirlink"); err != syscall.EPERM {
			t.Errorf("LINK of a directory = %v, want EPERM", err)
		}
	})

	t.Run("RENAME RENAME2 UNLINK RMDIR", func(t *testing.T) {
		sub, err := c.Lookup(ctx, root, "sub")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Rename(ctx, sub.NodeID, "plain", root, "moved"); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "sub", "plain")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("host still has sub/plain: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "moved")); err != nil {
			t.Errorf("host lacks moved: %v", err)
		}
		os.WriteFile(filepath.Join(dir, "a"), []byte("A"), 0o644)
		os.WriteFile(filepath.Join(dir, "b"), []byte("B"), 0o644)
		// As the kernel does, look names up before renaming them:
		// virtiofsd answers EIO for a name it has not handed out.
		for _, n := range []string{"a", "b"} {
			if _, err := c.Lookup(ctx, root, n); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Rename2(ctx, root, "a", root, "b", unix.RENAME_NOREPLACE); err != syscall.EEXIST {
			t.Errorf("RENAME2 NOREPLACE onto existing = %v, want EEXIST", err)
		}
		if err := c.Rename2(ctx, root, "a", root, "b", unix.RENAME_EXCHANGE); err != nil {
			t.Errorf("RENAME2 EXCHANGE: %v", err)
		}
		if a, _ := os.ReadFile(filepath.Join(dir, "a")); string(a) != "B" {
			t.Errorf("after EXCHANGE host a = %q, want B", a)
		}
		if err := c.Rename2(ctx, root, "a", root, "c", unix.RENAME_NOREPLACE); err != nil {
			t.Errorf("RENAME2 NOREPLACE to a free name: %v", err)
		}
		if err := c.Unlink(ctx, sub.NodeID, "hard"); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(filepath.Join(dir, "sub", "hard")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("host still has sub/hard: %v", err)
		}
		if st := hostStat(t, filepath.Join(dir, "created")); st.Nlink != 1 {
			t.Errorf("created nlink %d after unlinking its link", st.Nlink)
		}
		if err := c.Rmdir(ctx, root, "sub"); err != syscall.ENOTEMPTY {
			t.Errorf("RMDIR of a non-empty dir = %v, want ENOTEMPTY", err)
		}
		for _, n := range []string{"fifo", "hostlink"} {
			if err := c.Unlink(ctx, sub.NodeID, n); err != nil {
				t.Errorf("UNLINK %s: %v", n, err)
			}
		}
		if err := c.Unlink(ctx, root, "sub"); err != syscall.EISDIR {
			t.Errorf("UNLINK of a dir = %v, want EISDIR", err)
		}
		if err := c.Rmdir(ctx, root, "sub"); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "sub")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("host still has sub: %v", err)
		}
	})

	t.Run("OPENDIR READDIR READDIRPLUS FSYNCDIR RELEASEDIR", func(t *testing.T) {
		for i := range 150 { // several READDIR pages
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("entry-with-a-longish-name-%03d", i)), []byte{byte(i)}, 0o644)
		}
		hostEntries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{".", ".."}
		for _, de := range hostEntries {
			want = append(want, de.Name())
		}
		sort.Strings(want)
		o, err := c.Opendir(ctx, root, syscall.O_RDONLY)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for off := uint64(0); ; {
			ds, err := c.Readdir(ctx, root, fuse.ReadIn{Fh: o.Fh, Offset: off}, 4096)
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) == 0 {
				break
			}
			for _, d := range ds {
				names = append(names, d.Name)
				if d.Name != "." && d.Name != ".." {
					st := hostStat(t, filepath.Join(dir, d.Name))
					if d.Ino != st.Ino || d.Type != (st.Mode&syscall.S_IFMT)>>12 {
						t.Errorf("dirent %s ino %d type %d; host ino %d mode %#o", d.Name, d.Ino, d.Type, st.Ino, st.Mode)
					}
				}
			}
			off = ds[len(ds)-1].Off
		}
		sort.Strings(names)
		if !slices.Equal(names, want) {
			t.Errorf("READDIR names %v\nhost %v", names, want)
		}
		names = nil
		var forgets []fuse.ForgetOne
		for off := uint64(0); ; {
			ds, err := c.Readdirplus(ctx, root, fuse.ReadIn{Fh: o.Fh, Offset: off}, 8192)
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) == 0 {
				break
			}
			for _, d := range ds {
				names = append(names, d.Name)
				if d.Entry.NodeID != 0 {
					sameAttr(t, "direntplus "+d.Name, d.Entry.Attr, hostStat(t, filepath.Join(dir, d.Name)))
					forgets = append(forgets, fuse.ForgetOne{NodeID: d.Entry.NodeID, Nlookup: 1})
				}
			}
			off = ds[len(ds)-1].Off
		}
		sort.Strings(names)
		if !slices.Equal(names, want) {
			t.Errorf("READDIRPLUS names %v\nhost %v", names, want)
		}
		if len(forgets) != len(want)-2 {
			t.Errorf("READDIRPLUS looked up %d entries, want %d", len(forgets), len(want)-2)
		}
		if err := c.BatchForget(ctx, forgets); err != nil {
			t.Errorf("BATCH_FORGET: %v", err)
		}
		if err := c.Fsyncdir(ctx, root, o.Fh, 0); err != nil {
			t.Errorf("FSYNCDIR: %v", err)
		}
		if err := c.Releasedir(ctx, root, fuse.ReleaseIn{Fh: o.Fh}); err != nil {
			t.Errorf("RELEASEDIR: %v", err)
		}
		// After the forgets the names still resolve (to fresh lookups).
		if _, err := c.Lookup(ctx, root, "entry-with-a-longish-name-007"); err != nil {
			t.Errorf("LOOKUP after BATCH_FORGET: %v", err)
		}
	})

	t.Run("SETXATTR GETXATTR LISTXATTR REMOVEXATTR", func(t *testing.T) {
		path := filepath.Join(dir, "created")
		e, err := c.Lookup(ctx, root, "created")
		if err != nil {
			t.Fatal(err)
		}
		value := []byte("value\x00with NUL")
		if err := c.Setxattr(ctx, e.NodeID, "user.fusetest", value, 0, 0); err != nil {
			t.Fatal(err)
		}
		hb := make([]byte, 64)
		if n, err := unix.Getxattr(path, "user.fusetest", hb); err != nil || !bytes.Equal(hb[:n], value) {
			t.Errorf("host getxattr = %q, %v", hb[:max(n, 0)], err)
		}
		if err := c.Setxattr(ctx, e.NodeID, "user.fusetest", value, unix.XATTR_CREATE, 0); err != syscall.EEXIST {
			t.Errorf("SETXATTR XATTR_CREATE of existing = %v, want EEXIST", err)
		}
		if err := unix.Setxattr(path, "user.fromhost", []byte("h"), 0); err != nil {
			t.Fatal(err)
		}
		n, err := c.Getxattr(ctx, e.NodeID, "user.fusetest", nil)
		if err != nil || n != len(value) {
			t.Errorf("GETXATTR size = %d, %v; want %d", n, err, len(value))
		}
		buf := make([]byte, 64)
		if n, err := c.Getxattr(ctx, e.NodeID, "user.fusetest", buf); err != nil || !bytes.Equal(buf[:n], value) {
			t.Errorf("GETXATTR = %q, %v", buf[:n], err)
		}
		if _, err := c.Getxattr(ctx, e.NodeID, "user.fusetest", buf[:3]); err != syscall.ERANGE {
			t.Errorf("GETXATTR into a short buffer = %v, want ERANGE", err)
		}
		if _, err := c.Getxattr(ctx, e.NodeID, "user.none", buf); err != syscall.ENODATA {
			t.Errorf("GETXATTR missing = %v, want ENODATA", err)
		}
		n, err = c.Listxattr(ctx, e.NodeID, nil)
		if err != nil {
			t.Fatal(err)
		}
		list := make([]byte, n)
		if n, err = c.Listxattr(ctx, e.NodeID, list); err != nil {
			t.Fatal(err)
		}
		hl := make([]byte, 256)
		hn, _ := unix.Listxattr(path, hl)
		if !bytes.Equal(list[:n], hl[:hn]) || !bytes.Contains(list, []byte("user.fromhost\x00")) {
			t.Errorf("LISTXATTR %q, host %q", list[:n], hl[:hn])
		}
		if err := c.Removexattr(ctx, e.NodeID, "user.fusetest"); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Getxattr(path, "user.fusetest", hb); err != unix.ENODATA {
			t.Errorf("host getxattr after REMOVEXATTR = %v, want ENODATA", err)
		}
	})

	t.Run("GETLK SETLK SETLKW and flock", func(t *testing.T) {
		path := filepath.Join(dir, "locked")
		os.WriteFile(path, make([]byte, 200), 0o644)
		e, err := c.Lookup(ctx, root, "locked")
		if err != nil {
			t.Fatal(err)
		}
		o, err := c.Open(ctx, e.NodeID, syscall.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release(ctx, e.NodeID, fuse.ReleaseIn{Fh: o.Fh, Flags: syscall.O_RDWR})
		const ownerA, ownerB = 0xa, 0xb
		wr := fuse.FileLock{Start: 0, End: 99, Type: fuse.LockWrite, PID: uint32(os.Getpid())}
		if err := c.Setlk(ctx, e.NodeID, fuse.LkIn{Fh: o.Fh, Owner: ownerA, Lk: wr}); err != nil {
			t.Fatalf("SETLK: %v", err)
		}
		// The host sees the lock: virtiofsd holds it as an OFD lock, which
		// conflicts with an OFD lock on another open file description.
		hf, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer hf.Close()
		fl := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 50, Len: 10}
		if err := unix.FcntlFlock(hf.Fd(), unix.F_OFD_GETLK, &fl); err != nil || fl.Type != unix.F_WRLCK || fl.Start != 0 || fl.Len != 100 {
			t.Errorf("host F_OFD_GETLK: %+v, %v; want a write lock on 0..99", fl, err)
		}
		l, err := c.Getlk(ctx, e.NodeID, fuse.LkIn{Fh: o.Fh, Owner: ownerB, Lk: fuse.FileLock{Start: 10, End: 20, Type: fuse.LockRead}})
		if err != nil {
			t.Fatalf("GETLK: %v", err)
		}
		t.Logf("GETLK conflict: %+v", l)
		if l.Type != fuse.LockWrite || l.Start != 0 || l.End != 99 {
			t.Errorf("GETLK = %+v; want the write lock on 0..99", l)
		}
		if err := c.Setlk(ctx, e.NodeID, fuse.LkIn{Fh: o.Fh, Owner: ownerA, Lk: fuse.FileLock{Start: 0, End: 99, Type: fuse.LockUnlock}}); err != nil {
			t.Fatalf("SETLK unlock: %v", err)
		}
		fl = unix.Flock_t{Type: unix.F_WRLCK, Start: 0, Len: 0}
		if err := unix.FcntlFlock(hf.Fd(), unix.F_OFD_GETLK, &fl); err != nil || fl.Type != unix.F_UNLCK {
			t.Errorf("host F_OFD_GETLK after unlock: %+v, %v", fl, err)
		}
		l, err = c.Getlk(ctx, e.NodeID, fuse.LkIn{Fh: o.Fh, Owner: ownerB, Lk: fuse.FileLock{Start: 0, End: math.MaxInt64, Type: fuse.LockWrite}})
		if err != nil || l.Type != fuse.LockUnlock {
			t.Errorf("GETLK after unlock = %+v, %v; want unlocked", l, err)
		}
		// A host lock makes SETLK fail with EAGAIN.
		hl := unix.Flock_t{Type: unix.F_WRLCK, Start: 150, Len: 10}
		if err := unix.FcntlFlock(hf.Fd(), unix.F_OFD_SETLK, &hl); err != nil {
			t.Fatal(err)
		}
		if err := c.Setlk(ctx, e.NodeID, fuse.LkIn{Fh: o.Fh, Owner: ownerA, Lk: fuse.FileLock{Start: 140, End: 155, Type: fuse.LockWrite}}); err != syscall.EAGAIN {
			t.Errorf("SETLK against a host lock = %v, want EAGAIN", err)
		}
		hl.Type = unix.F_UNLCK
		unix.FcntlFlock(hf.Fd(), unix.F_OFD_SETLK, &hl)
		err = c.Setlkw(ctx, e.NodeID, fuse.LkIn{Fh: o.Fh, Owner: ownerA, Lk: fuse.FileLock{Start: 0, End: 9, Type: fuse.LockRead}})
		if err != syscall.EOPNOTSUPP {
			t.Errorf("SETLKW = %v, want EOPNOTSUPP (virtiofsd 7.2 has no blocking POSIX locks)", err)
		}
		// flock(2) locks: LkFlock.
		if err := c.Setlk(ctx, e.NodeID, fuse.LkIn{Fh: o.Fh, Owner: ownerA, LkFlags: fuse.LkFlock, Lk: fuse.FileLock{Type: fuse.LockWrite}}); err != nil {
			t.Fatalf("SETLK flock: %v", err)
		}
		if err := unix.Flock(int(hf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != unix.EWOULDBLOCK {
			t.Errorf("host flock against FUSE flock = %v, want EWOULDBLOCK", err)
		}
		if err := c.Setlk(ctx, e.NodeID, fuse.LkIn{Fh: o.Fh, Owner: ownerA, LkFlags: fuse.LkFlock, Lk: fuse.FileLock{Type: fuse.LockUnlock}}); err != nil {
			t.Fatalf("SETLK flock unlock: %v", err)
		}
		if err := unix.Flock(int(hf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			t.Errorf("host flock after FUSE unlock = %v", err)
		}
		unix.Flock(int(hf.Fd()), unix.LOCK_UN)
	})

	t.Run("LSEEK FALLOCATE COPY_FILE_RANGE", func(t *testing.T) {
		path := filepath.Join(dir, "sparse")
		hf, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer hf.Close()
		const mib = 1 << 20
		hf.WriteAt(bytes.Repeat([]byte{1}, 4096), 0)
		hf.WriteAt(bytes.Repeat([]byte{2}, 4096), 2*mib)
		hf.Truncate(4 * mib)
		hf.Sync()
		e, err := c.Lookup(ctx, root, "sparse")
		if err != nil {
			t.Fatal(err)
		}
		o, err := c.Open(ctx, e.NodeID, syscall.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release(ctx, e.NodeID, fuse.ReleaseIn{Fh: o.Fh, Flags: syscall.O_RDWR})
		for _, s := range []struct {
			off    int64
			whence int
		}{{0, unix.SEEK_DATA}, {0, unix.SEEK_HOLE}, {4096, unix.SEEK_DATA}, {2 * mib, unix.SEEK_HOLE}} {
			want, herr := unix.Seek(int(hf.Fd()), s.off, s.whence)
			got, err := c.Lseek(ctx, e.NodeID, o.Fh, uint64(s.off), uint32(s.whence))
			if herr != nil || err != nil || got != uint64(want) {
				t.Errorf("LSEEK(%d, %d) = %d, %v; host %d, %v", s.off, s.whence, got, err, want, herr)
			}
		}
		if _, err := c.Lseek(ctx, e.NodeID, o.Fh, 3*mib, unix.SEEK_DATA); err != syscall.ENXIO {
			t.Errorf("LSEEK SEEK_DATA past the last data = %v, want ENXIO", err)
		}
		// FALLOCATE: punch the first block, then extend the file.
		if err := c.Fallocate(ctx, e.NodeID, o.Fh, 0, 4096, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE); err != nil {
			t.Fatalf("FALLOCATE punch: %v", err)
		}
		if off, err := unix.Seek(int(hf.Fd()), 0, unix.SEEK_DATA); err != nil || off != 2*mib {
			t.Errorf("host SEEK_DATA after punching = %d, %v; want %d", off, err, 2*mib)
		}
		if err := c.Fallocate(ctx, e.NodeID, o.Fh, 4*mib, mib, 0); err != nil {
			t.Fatalf("FALLOCATE extend: %v", err)
		}
		if fi, _ := hf.Stat(); fi.Size() != 5*mib {
			t.Errorf("host size after FALLOCATE = %d, want %d", fi.Size(), 5*mib)
		}
		// COPY_FILE_RANGE from hostfile into a new file.
		src, err := c.Lookup(ctx, root, "hostfile")
		if err != nil {
			t.Fatal(err)
		}
		so, err := c.Open(ctx, src.NodeID, syscall.O_RDONLY)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release(ctx, src.NodeID, fuse.ReleaseIn{Fh: so.Fh})
		dst, do, err := c.Create(ctx, root, "copy", syscall.O_RDWR|syscall.O_CREAT, 0o644, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release(ctx, dst.NodeID, fuse.ReleaseIn{Fh: do.Fh, Flags: syscall.O_RDWR})
		n, err := c.CopyFileRange(ctx, src.NodeID, fuse.CopyFileRangeIn{FhIn: so.Fh, OffIn: 1000, NodeIDOut: dst.NodeID, FhOut: do.Fh, OffOut: 10, Len: 50000})
		if err != nil || n != 50000 {
			t.Fatalf("COPY_FILE_RANGE = %d, %v", n, err)
		}
		srcData, _ := os.ReadFile(filepath.Join(dir, "hostfile"))
		got, _ := os.ReadFile(filepath.Join(dir, "copy"))
		if len(got) != 50010 || !bytes.Equal(got[10:], srcData[1000:51000]) || !bytes.Equal(got[:10], make([]byte, 10)) {
			t.Errorf("host copy: %d bytes, not the source range", len(got))
		}
	})

	t.Run("ACCESS", func(t *testing.T) {
		e, err := c.Lookup(ctx, root, "created")
		if err != nil {
			t.Fatal(err)
		}
		// virtiofsd 7.2 has no access handler (the kernel then checks
		// permissions itself, fc->no_access).
		if err := c.Access(ctx, e.NodeID, unix.R_OK); err != syscall.ENOSYS {
			t.Errorf("ACCESS R_OK = %v, want ENOSYS", err)
		}
	})

	t.Run("per-request credentials", func(t *testing.T) {
		// virtiofsd creates with the request's fsuid/fsgid, so the
		// parent must be writable by them.
		pub := filepath.Join(dir, "public")
		if err := os.Mkdir(pub, 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(pub, 0o777)
		pe, err := c.Lookup(ctx, root, "public")
		if err != nil {
			t.Fatal(err)
		}
		cctx := fuse.WithCreds(ctx, fuse.Creds{UID: 1234, GID: 5678, PID: 1})
		e, err := c.Mkdir(cctx, pe.NodeID, "owned", 0o755, 0)
		if err != nil {
			t.Fatal(err)
		}
		st := hostStat(t, filepath.Join(pub, "owned"))
		if st.Uid != 1234 || st.Gid != 5678 || e.Attr.UID != 1234 || e.Attr.GID != 5678 {
			t.Errorf("MKDIR with creds 1234:5678: host owner %d:%d, FUSE %d:%d", st.Uid, st.Gid, e.Attr.UID, e.Attr.GID)
		}
		if st := hostStat(t, filepath.Join(dir, "created")); st.Uid != uint32(os.Getuid()) {
			t.Errorf("default creds: created is owned by %d, want %d", st.Uid, os.Getuid())
		}
	})

	t.Run("SYNCFS", func(t *testing.T) {
		if err := c.Syncfs(ctx, root); err != nil {
			t.Errorf("SYNCFS: %v", err)
		}
	})

	t.Run("SETUPMAPPING REMOVEMAPPING are ENOSYS", func(t *testing.T) {
		e, err := c.Lookup(ctx, root, "created")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Setupmapping(ctx, e.NodeID, fuse.SetupmappingIn{Len: 1 << 21, Flags: fuse.SetupmappingFlagRead}); err != syscall.ENOSYS {
			t.Errorf("SETUPMAPPING = %v, want ENOSYS", err)
		}
		if err := c.Removemapping(ctx, e.NodeID, []fuse.RemovemappingOne{{Moffset: 0, Len: 1 << 21}}); err != syscall.ENOSYS {
			t.Errorf("REMOVEMAPPING = %v, want ENOSYS", err)
		}
	})

	t.Run("INTERRUPT", func(t *testing.T) {
		// Off by default (virtiofsd 7.2 drops the connection after one):
		// nothing is sent and the connection goes on working.
		if err := c.Interrupt(ctx, 1<<40); err != syscall.ENOSYS {
			t.Fatalf("INTERRUPT = %v, want ENOSYS", err)
		}
		if _, err := c.Getattr(ctx, root, 0, 0); err != nil {
			t.Errorf("GETATTR after INTERRUPT: %v", err)
		}
	})

	t.Run("DESTROY", func(t *testing.T) {
		if err := c.Destroy(ctx); err != nil {
			t.Fatalf("DESTROY: %v", err)
		}
		if _, err := c.Getattr(ctx, root, 0, 0); err != syscall.ENOTCONN {
			t.Errorf("GETATTR after DESTROY = %v, want ENOTCONN", err)
		}
	})
}

// TestVirtiofsdConcurrentOps has 64 goroutines issue mixed requests at
// once, each on its own file, checking every result against the host.
func TestVirtiofsdConcurrentOps(t *testing.T) {
	dir := t.TempDir()
	c, _ := hostConn(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range 16 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("shared-%d", i)), bytes.Repeat([]byte{byte(i)}, 1000+i), 0o644)
	}
	const goroutines, rounds = 64, 10
	var wg sync.WaitGroup
	errc := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			errc <- concurrentWorker(ctx, c, dir, g, rounds)
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Error(err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 16 {
		t.Errorf("host has %d entries after the workers cleaned up, want 16", len(entries))
	}
}

func concurrentWorker(ctx context.Context, c *fuse.Conn, dir string, g, rounds int) error {
	name := fmt.Sprintf("worker-%d", g)
	for r := range rounds {
		data := bytes.Repeat([]byte{byte(g), byte(r)}, 1000+g*10+r)
		// As the kernel: CREATE the first time, then LOOKUP and OPEN
		// with O_TRUNC (see Conn.Create).
		var e fuse.Entry
		var o fuse.OpenOut
		var err error
		if r == 0 {
			e, o, err = c.Create(ctx, fuse.RootID, name, syscall.O_RDWR|syscall.O_CREAT|syscall.O_EXCL, 0o644, 0)
		} else if e, err = c.Lookup(ctx, fuse.RootID, name); err == nil {
			o, err = c.Open(ctx, e.NodeID, syscall.O_RDWR|syscall.O_TRUNC)
		}
		if err != nil {
			return fmt.Errorf("%s: round %d: CREATE or LOOKUP+OPEN: %w", name, r, err)
		}
		if n, err := c.Write(ctx, e.NodeID, fuse.WriteIn{Fh: o.Fh}, data); err != nil || n != len(data) {
			return fmt.Errorf("%s: WRITE: %d, %v", name, n, err)
		}
		buf := make([]byte, len(data)+10)
		if n, err := c.Read(ctx, e.NodeID, fuse.ReadIn{Fh: o.Fh}, buf); err != nil || !bytes.Equal(buf[:n], data) {
			return fmt.Errorf("%s: READ: %d, %v", name, n, err)
		}
		if host, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(host, data) {
			return fmt.Errorf("%s: host sees %d bytes, %v", name, len(host), err)
		}
		if a, err := c.Getattr(ctx, e.NodeID, 0, 0); err != nil || a.Attr.Size != uint64(len(data)) {
			return fmt.Errorf("%s: GETATTR size %d, %v", name, a.Attr.Size, err)
		}
		shared := fmt.Sprintf("shared-%d", (g+r)%16)
		se, err := c.Lookup(ctx, fuse.RootID, shared)
		if err != nil || se.Attr.Size != uint64(1000+(g+r)%16) {
			return fmt.Errorf("%s: LOOKUP %s size %d, %v", name, shared, se.Attr.Size, err)
		}
		if err := c.Forget(ctx, se.NodeID, 1); err != nil {
			return fmt.Errorf("%s: FORGET: %w", name, err)
		}
		if r%3 == 0 {
			do, err := c.Opendir(ctx, fuse.RootID, syscall.O_RDONLY)
			if err != nil {
				return fmt.Errorf("%s: OPENDIR: %w", name, err)
			}
			ds, err := c.Readdirplus(ctx, fuse.RootID, fuse.ReadIn{Fh: do.Fh}, 16384)
			if err != nil {
				return fmt.Errorf("%s: READDIRPLUS: %w", name, err)
			}
			var forgets []fuse.ForgetOne
			found := false
			for _, d := range ds {
				found = found || d.Name == shared
				if d.Entry.NodeID != 0 {
					forgets = append(forgets, fuse.ForgetOne{NodeID: d.Entry.NodeID, Nlookup: 1})
				}
			}
			if err := c.BatchForget(ctx, forgets); err != nil {
				return fmt.Errorf("%s: BATCH_FORGET: %w", name, err)
			}
			if err := c.Releasedir(ctx, fuse.RootID, fuse.ReleaseIn{Fh: do.Fh}); err != nil {
				return fmt.Errorf("%s: RELEASEDIR: %w", name, err)
			}
			if !found && len(ds) > 0 && ds[len(ds)-1].Off == 0 {
				return fmt.Errorf("%s: READDIRPLUS lacks %s", name, shared)
			}
		}
		if err := c.Release(ctx, e.NodeID, fuse.ReleaseIn{Fh: o.Fh, Flags: syscall.O_RDWR}); err != nil {
			return fmt.Errorf("%s: RELEASE: %w", name, err)
		}
		if err := c.Forget(ctx, e.NodeID, 1); err != nil {
			return fmt.Errorf("%s: FORGET: %w", name, err)
		}
	}
	// Hold a lookup across UNLINK, as the kernel's dentry does:
	// virtiofsd answers EIO for a name whose inode it has forgotten.
	e, err := c.Lookup(ctx, fuse.RootID, name)
	if err != nil {
		return fmt.Errorf("%s: LOOKUP: %w", name, err)
	}
	if err := c.Unlink(ctx, fuse.RootID, name); err != nil {
		return fmt.Errorf("%s: UNLINK: %w", name, err)
	}
	if err := c.Forget(ctx, e.NodeID, 1); err != nil {
		return fmt.Errorf("%s: FORGET: %w", name, err)
	}
	if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: host still has it after UNLINK: %v", name, err)
	}
	return nil
}

// TestVirtiofsdOptionalFlags negotiates the flags virtiofsd grants only
// when both sides ask: writeback cache (-o writeback); it also offers
// FUSE_SETXATTR_EXT (virtiofsd takes it only with -o posix_acl, which
// also needs POSIX_ACL and DONT_MASK, not offered here) and sets an xattr
// in whichever fuse_setxattr_in form was agreed.
func TestVirtiofsdOptionalFlags(t *testing.T) {
	tests := []struct {
		name string
		opts fuse.ConnOptions
		args []string
	}{
		{"not asked", fuse.ConnOptions{}, []string{"-o", "writeback"}},
		{"asked server off", fuse.ConnOptions{WritebackCache: true, SetxattrExt: true}, nil},
		{"asked server on", fuse.ConnOptions{WritebackCache: true, SetxattrExt: true}, []string{"-o", "writeback"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c, _ := hostConnOpts(t, dir, tt.opts, tt.args...)
			p, _ := c.Params()
			on := tt.opts.WritebackCache && tt.args != nil
			if p.Has(fuse.InitWritebackCache) != on {
				t.Errorf("WRITEBACK_CACHE negotiated %v, want %v", p.Has(fuse.InitWritebackCache), on)
			}
			t.Logf("SETXATTR_EXT negotiated: %v", p.Has(fuse.InitSetxattrExt))
			if p.Has(fuse.InitSetxattrExt) && !tt.opts.SetxattrExt {
				t.Errorf("SETXATTR_EXT negotiated without being asked")
			}
			ctx := context.Background()
			path := filepath.Join(dir, "f")
			os.WriteFile(path, nil, 0o644)
			e, err := c.Lookup(ctx, fuse.RootID, "f")
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Setxattr(ctx, e.NodeID, "user.form", []byte("ok"), 0, 0); err != nil {
				t.Fatalf("SETXATTR: %v", err)
			}
			b := make([]byte, 8)
			if n, err := unix.Getxattr(path, "user.form", b); err != nil || string(b[:n]) != "ok" {
				t.Errorf("host getxattr = %q, %v", b[:max(n, 0)], err)
			}
		})
	}
}

// BenchmarkVirtiofsdGetattr measures a GETATTR round trip through the
// whole stack: Conn, driver, vhost-user, virtiofsd.
func BenchmarkVirtiofsdGetattr(b *testing.B) {
	c, _ := hostConn(b, b.TempDir())
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.Getattr(ctx, fuse.RootID, 0, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVirtiofsdRead measures 128 KiB READs of a cached host file.
func BenchmarkVirtiofsdRead(b *testing.B) {
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), make([]byte, 1<<20), 0o644)
	c, _ := hostConn(b, dir)
	ctx := context.Background()
	e, err := c.Lookup(ctx, fuse.RootID, "f")
	if err != nil {
		b.Fatal(err)
	}
	o, err := c.Open(ctx, e.NodeID, syscall.O_RDONLY)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 128<<10)
	b.SetBytes(int64(len(buf)))
	off := uint64(0)
	for b.Loop() {
		if _, err := c.Read(ctx, e.NodeID, fuse.ReadIn{Fh: o.Fh, Offset: off}, buf); err != nil {
			b.Fatal(err)
		}
		off = (off + uint64(len(buf))) % (1 << 20)
	}
}
