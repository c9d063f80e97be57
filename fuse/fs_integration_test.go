package fuse_test

// Host integration of the client filesystem: vfs over fuse.Filesystem over
// fuse.Conn over driver.Device over the vhost-user front end
// (virtio/vhostuser), against the real virtiofsd serving a temp
// directory. Results are compared with what package os sees in that
// directory; changes made on the host check the cache modes.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/driver"
	"github.com/govirtiofs/govirtiofs/fuse"
	"github.com/govirtiofs/govirtiofs/internal/virtiofsdtest"
	"github.com/govirtiofs/govirtiofs/vfs"
	"github.com/govirtiofs/govirtiofs/virtio/vhostuser"
)

// fsStack is one share mounted through the whole stack.
type fsStack struct {
	d     *virtiofsdtest.Daemon
	dev   *driver.Device
	conn  *fuse.Conn
	fs    *fuse.Filesystem
	v     *vfs.VirtualFilesystem
	clock *fsClock
	dir   string
}

// fsClock is a fake clock shared by vfs and the filesystem, so that entry
// and attribute timeouts expire when the test says so.
type fsClock struct{ t time.Time }

func (c *fsClock) now() time.Time          { return c.t }
func (c *fsClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// fsConfig selects the stack's options.
type fsConfig struct {
	daemon    virtiofsdtest.Options
	conn      fuse.ConnOptions
	fs        fuse.FSOptions
	vfs       vfs.Options
	fakeClock bool
	// sender, if set, wraps the device (a request counter).
	sender func(fuse.Sender) fuse.Sender
}

// writebackConfig is the configuration of a stack with writeback caching
// on both sides, in fs's cache mode (fs.Writeback is set).
func writebackConfig(fs fuse.FSOptions) fsConfig {
	fs.Writeback = true
	return fsConfig{
		daemon: virtiofsdtest.Options{Cache: fs.Cache.String(), ExtraArgs: []string{"-o", "writeback"}},
		conn:   fuse.ConnOptions{WritebackCache: true},
		fs:     fs,
	}
}

// startWritebackFS is startFS with writebackConfig(fs), checking that
// writeback was negotiated.
func startWritebackFS(t *testing.T, dir string, fs fuse.FSOptions) *fsStack {
	t.Helper()
	s := startFS(t, dir, writebackConfig(fs))
	if !s.fs.WritebackEnabled() {
		t.Fatalf("writeback not negotiated: flags %#x", s.fs.Params().Flags)
	}
	return s
}

// startFS starts virtiofsd on dir and brings the whole stack up. The
// stack is torn down (vfs, filesystem, device) when the test ends.
func startFS(t testing.TB, dir string, cfg fsConfig) *fsStack {
	t.Helper()
	d := virtiofsdtest.Start(t, dir, cfg.daemon)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr, err := vhostuser.Dial(ctx, d.Socket, vhostuser.Options{Tag: "fs"})
	if err != nil {
		t.Fatalf("vhostuser.Dial: %v", err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dev, err := driver.New(ctx, tr, driver.Options{Logger: quiet})
	if err != nil {
		tr.Close()
		t.Fatalf("driver.New: %v", err)
	}
	t.Cleanup(func() { dev.Close() })
	var snd fuse.Sender = dev
	if cfg.sender != nil {
		snd = cfg.sender(dev)
	}
	conn := fuse.NewConn(snd, cfg.conn)
	if err := conn.Init(ctx); err != nil {
		t.Fatalf("Init: %v", err)
	}
	s := &fsStack{d: d, dev: dev, conn: conn, dir: dir}
	if cfg.fakeClock {
		s.clock = &fsClock{t: time.Unix(1_000_000, 0)}
		cfg.fs.Now = s.clock.now
		cfg.vfs.Now = s.clock.now
	}
	fs, err := fuse.NewFilesystem(conn, cfg.fs)
	if err != nil {
		t.Fatalf("NewFilesystem: %v", err)
	}
	s.fs = fs
	s.v = vfs.New(fs, fs.Root(), cfg.vfs)
	t.Cleanup(func() { s.close(t) })
	return s
}

// close unmounts the share and ends the session; safe to call twice.
func (s *fsStack) close(t testing.TB) {
	ctx := context.Background()
	if s.v != nil {
		s.v.Close(ctx)
		s.v = nil
	}
	if s.fs != nil {
		if err := s.fs.Close(ctx); err != nil {
			t.Errorf("Filesystem.Close: %v", err)
		}
		s.fs = nil
	}
}

var root = &vfs.Credentials{}

// fsWriteFile creates path through vfs with data.
func fsWriteFile(t *testing.T, v *vfs.VirtualFilesystem, path string, data []byte) {
	t.Helper()
	ctx := context.Background()
	fd, err := v.Open(ctx, root, path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, 0o644)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	if n, err := fd.Write(ctx, data); err != nil || n != len(data) {
		t.Fatalf("write %s: %d, %v", path, n, err)
	}
	if err := fd.Close(ctx); err != nil {
		t.Fatalf("close %s: %v", path, err)
	}
}

// fsReadFile reads path through vfs.
func fsReadFile(t *testing.T, v *vfs.VirtualFilesystem, path string) []byte {
	t.Helper()
	ctx := context.Background()
	fd, err := v.Open(ctx, root, path, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer fd.Close(ctx)
	return fsReadAll(t, fd)
}

func fsReadAll(t *testing.T, fd *vfs.FileDescription) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, 50_000)
	for {
		n, err := fd.Read(context.Background(), buf)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if n == 0 {
			return out
		}
		out = append(out, buf[:n]...)
	}
}

func fsPattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i%251)
	}
	return b
}

// TestFSBasicOps runs the namespace and file operations through vfs and
// checks each against the host directory.
func TestFSBasicOps(t *testing.T) {
	for _, mode := range []fuse.CacheMode{fuse.CacheNone, fuse.CacheAuto, fuse.CacheAlways} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			s := startFS(t, dir, fsConfig{
				daemon: virtiofsdtest.Options{Cache: mode.String(), Xattr: true},
				fs:     fuse.FSOptions{Cache: mode},
			})
			ctx := context.Background()
			v := s.v

			// Create, write (several max_write chunks), read back.
			data := fsPattern(300_000, 7)
			fsWriteFile(t, v, "f", data)
			if got, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("host sees %d bytes (%v), want the %d written", len(got), err, len(data))
			}
			if got := fsReadFile(t, v, "f"); !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes, want %d equal", len(got), len(data))
			}
			st, err := v.Stat(ctx, root, "f")
			if err != nil {
				t.Fatal(err)
			}
			var hst unix.Stat_t
			if err := unix.Stat(filepath.Join(dir, "f"), &hst); err != nil {
				t.Fatal(err)
			}
			if st.Size != uint64(len(data)) || st.Ino != hst.Ino || st.Mode != hst.Mode {
				t.Errorf("stat = size %d ino %d mode %#o, host size %d ino %d mode %#o", st.Size, st.Ino, st.Mode, hst.Size, hst.Ino, hst.Mode)
			}

			// pread/pwrite in the middle, O_APPEND.
			fd, err := v.Open(ctx, root, "f", unix.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fd.PWrite(ctx, []byte("HELLO"), 4094); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 9)
			if n, err := fd.PRead(ctx, buf, 4092); err != nil || string(buf[2:7]) != "HELLO" {
				t.Errorf("pread = %d %q, %v", n, buf, err)
			}
			if end, err := fd.Seek(ctx, 0, unix.SEEK_END); err != nil || end != int64(len(data)) {
				t.Errorf("SEEK_END = %d, %v; want %d", end, err, len(data))
			}
			if err := fd.Close(ctx); err != nil {
				t.Fatal(err)
			}
			copy(data[4094:], "HELLO")
			fa, err := v.Open(ctx, root, "f", unix.O_WRONLY|unix.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fa.Write(ctx, []byte("tail")); err != nil {
				t.Fatal(err)
			}
			fa.Close(ctx)
			data = append(data, "tail"...)
			if got, _ := os.ReadFile(filepath.Join(dir, "f")); !bytes.Equal(got, data) {
				t.Errorf("after pwrite and append the host has %d bytes, not what was written", len(got))
			}
			if got := fsReadFile(t, v, "f"); !bytes.Equal(got, data) {
				t.Errorf("read after pwrite and append: %d bytes, not what was written", len(got))
			}

			// Truncate, chmod, utimes.
			mt := time.Unix(1_500_000_000, 123456789)
			if err := v.SetStat(ctx, root, "f", &vfs.SetStatOptions{Mask: vfs.SetSize | vfs.SetMode | vfs.SetMtime, Size: 10, Mode: 0o600, Mtime: mt}, true); err != nil {
				t.Fatal(err)
			}
			if err := unix.Stat(filepath.Join(dir, "f"), &hst); err != nil {
				t.Fatal(err)
			}
			if hst.Size != 10 || hst.Mode&0o7777 != 0o600 || hst.Mtim.Sec != mt.Unix() || hst.Mtim.Nsec != int64(mt.Nanosecond()) {
				t.Errorf("host after setattr: size %d mode %#o mtime %v", hst.Size, hst.Mode, hst.Mtim)
			}
			if got := fsReadFile(t, v, "f"); !bytes.Equal(got, data[:10]) {
				t.Errorf("read after truncate: %q, want %q", got, data[:10])
			}
			// O_TRUNC on open.
			ft, err := v.Open(ctx, root, "f", unix.O_RDWR|unix.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			ft.Close(ctx)
			if fi, _ := os.Stat(filepath.Join(dir, "f")); fi.Size() != 0 {
				t.Errorf("after O_TRUNC host size %d", fi.Size())
			}
			if got := fsReadFile(t, v, "f"); len(got) != 0 {
				t.Errorf("after O_TRUNC read %d bytes", len(got))
			}

			// Directories, symlinks, links, rename, readdir.
			if err := v.Mkdir(ctx, root, "d", 0o755); err != nil {
				t.Fatal(err)
			}
			fsWriteFile(t, v, "d/a", []byte("a"))
			if err := v.Symlink(ctx, root, "d/a", "ln"); err != nil {
				t.Fatal(err)
			}
			if tg, err := v.Readlink(ctx, root, "ln"); err != nil || tg != "d/a" {
				t.Errorf("readlink = %q, %v", tg, err)
			}
			if got := fsReadFile(t, v, "ln"); string(got) != "a" {
				t.Errorf("read through symlink = %q", got)
			}
			if err := v.Link(ctx, root, "d/a", "hard"); err != nil {
				t.Fatal(err)
			}
			if st, err := v.Stat(ctx, root, "hard"); err != nil || st.Nlink != 2 {
				t.Errorf("hard link nlink = %d, %v", st.Nlink, err)
			}
			if err := v.Rename(ctx, root, "d/a", "d/b", 0); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dir, "d", "b")); err != nil {
				t.Errorf("host after rename: %v", err)
			}
			fsWriteFile(t, v, "d/c", []byte("c"))
			if err := v.Rename(ctx, root, "d/c", "d/b", unix.RENAME_NOREPLACE); !errors.Is(err, syscall.EEXIST) {
				t.Errorf("RENAME_NOREPLACE onto an existing name: %v, want EEXIST", err)
			}
			if err := v.Rename(ctx, root, "d/c", "d/b", unix.RENAME_EXCHANGE); err != nil {
				t.Errorf("RENAME_EXCHANGE: %v", err)
			} else if got, _ := os.ReadFile(filepath.Join(dir, "d", "b")); string(got) != "c" {
				t.Errorf("after exchange d/b = %q", got)
			}
			dfd, err := v.Open(ctx, root, "d", unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			if err := dfd.ReadDir(ctx, func(de vfs.Dirent) bool {
				if de.Name != "." && de.Name != ".." {
					names = append(names, de.Name)
				}
				return true
			}); err != nil {
				t.Fatal(err)
			}
			dfd.Close(ctx)
			slices.Sort(names)
			if !slices.Equal(names, []string{"b", "c"}) {
				t.Errorf("readdir = %q, want [b c]", names)
			}
			if err := v.Rmdir(ctx, root, "d"); !errors.Is(err, syscall.ENOTEMPTY) {
				t.Errorf("rmdir of a non-empty dir: %v", err)
			}
			for _, p := range []string{"d/b", "d/c", "hard", "ln"} {
				if err := v.Unlink(ctx, root, p); err != nil {
					t.Errorf("unlink %s: %v", p, err)
				}
			}
			if err := v.Rmdir(ctx, root, "d"); err != nil {
				t.Errorf("rmdir: %v", err)
			}
			if _, err := v.Stat(ctx, root, "d"); !errors.Is(err, syscall.ENOENT) {
				t.Errorf("stat of removed dir: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "d")); !os.IsNotExist(err) {
				t.Errorf("host still has d: %v", err)
			}

			// Xattrs and statfs.
			if err := v.Setxattr(ctx, root, "f", "user.k", []byte("v1"), 0, true); err != nil {
				t.Fatalf("setxattr: %v", err)
			}
			if val, err := v.Getxattr(ctx, root, "f", "user.k", true); err != nil || string(val) != "v1" {
				t.Errorf("getxattr = %q, %v", val, err)
			}
			hv := make([]byte, 16)
			if n, err := unix.Getxattr(filepath.Join(dir, "f"), "user.k", hv); err != nil || string(hv[:n]) != "v1" {
				t.Errorf("host getxattr = %q, %v", hv[:n], err)
			}
			if l, err := v.Listxattr(ctx, root, "f", true); err != nil || !slices.Contains(l, "user.k") {
				t.Errorf("listxattr = %q, %v", l, err)
			}
			if err := v.Removexattr(ctx, root, "f", "user.k", true); err != nil {
				t.Errorf("removexattr: %v", err)
			}
			if _, err := v.Getxattr(ctx, root, "f", "user.k", true); !errors.Is(err, syscall.ENODATA) {
				t.Errorf("getxattr after remove: %v, want ENODATA", err)
			}
			sf, err := v.Statfs(ctx, root, ".")
			if err != nil {
				t.Fatal(err)
			}
			var hsf unix.Statfs_t
			unix.Statfs(dir, &hsf)
			if sf.Blocks != hsf.Blocks || sf.Bsize != uint32(hsf.Bsize) {
				t.Errorf("statfs blocks %d bsize %d, host %d %d", sf.Blocks, sf.Bsize, hsf.Blocks, hsf.Bsize)
			}
			if err := v.Sync(ctx); err != nil {
				t.Errorf("sync: %v", err)
			}
		})
	}
}

// fsStatSize stats path through vfs and returns its size, or -1 with the
// error.
func fsStatSize(v *vfs.VirtualFilesystem, path string) (int64, error) {
	st, err := v.Stat(context.Background(), root, path)
	if err != nil {
		return -1, err
	}
	return int64(st.Size), nil
}

func fsPRead(t *testing.T, fd *vfs.FileDescription, n int) string {
	t.Helper()
	buf := make([]byte, n)
	m, err := fd.PRead(context.Background(), buf, 0)
	if err != nil {
		t.Fatalf("pread: %v", err)
	}
	return string(buf[:m])
}

func fsHostWrite(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFSCacheModes makes changes on the host and checks when the client
// sees them, with a fake clock for the timeouts virtiofsd sends (0 with
// cache=none, 1 s with auto, a day with always).
func TestFSCacheModes(t *testing.T) {
	const second = time.Second + time.Millisecond

	t.Run("none", func(t *testing.T) {
		dir := t.TempDir()
		host := filepath.Join(dir, "f")
		fsHostWrite(t, host, "aaaa")
		s := startFS(t, dir, fsConfig{daemon: virtiofsdtest.Options{Cache: "none"}, fs: fuse.FSOptions{Cache: fuse.CacheNone}, fakeClock: true})
		if n, err := fsStatSize(s.v, "f"); n != 4 {
			t.Fatalf("size = %d, %v", n, err)
		}
		fsHostWrite(t, host, "bbbbbb")
		if n, err := fsStatSize(s.v, "f"); n != 6 {
			t.Errorf("size after a host write = %d, %v; want 6 at once", n, err)
		}
		fd, err := s.v.Open(context.Background(), root, "f", unix.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer fd.Close(context.Background())
		if got := fsPRead(t, fd, 16); got != "bbbbbb" {
			t.Errorf("read = %q", got)
		}
		fsHostWrite(t, host, "cc")
		if got := fsPRead(t, fd, 16); got != "cc" {
			t.Errorf("read of an open file after a host write = %q, want \"cc\" at once", got)
		}
		if err := os.Rename(host, filepath.Join(dir, "g")); err != nil {
			t.Fatal(err)
		}
		if _, err := fsStatSize(s.v, "f"); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("stat of a name renamed away on the host: %v, want ENOENT at once", err)
		}
		if n, err := fsStatSize(s.v, "g"); n != 2 {
			t.Errorf("stat of the new name = %d, %v", n, err)
		}
	})

	t.Run("auto", func(t *testing.T) {
		dir := t.TempDir()
		host := filepath.Join(dir, "f")
		fsHostWrite(t, host, "aaaa")
		s := startFS(t, dir, fsConfig{daemon: virtiofsdtest.Options{Cache: "auto"}, fs: fuse.FSOptions{Cache: fuse.CacheAuto}, fakeClock: true})
		ctx := context.Background()
		if n, err := fsStatSize(s.v, "f"); n != 4 {
			t.Fatalf("size = %d, %v", n, err)
		}
		fsHostWrite(t, host, "bbbbbb")
		if n, _ := fsStatSize(s.v, "f"); n != 4 {
			t.Errorf("size within the attribute timeout = %d, want the cached 4", n)
		}
		s.clock.advance(second)
		if n, err := fsStatSize(s.v, "f"); n != 6 {
			t.Errorf("size after the timeout = %d, %v; want 6", n, err)
		}

		// Data: cached while open, dropped at the next open.
		fd, err := s.v.Open(ctx, root, "f", unix.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := fsPRead(t, fd, 16); got != "bbbbbb" {
			t.Errorf("read = %q", got)
		}
		reads := s.fs.Stats().Reads
		fsHostWrite(t, host, "xxxxxx")
		if got := fsPRead(t, fd, 16); got != "bbbbbb" {
			t.Errorf("read of an open file within the timeout = %q, want the cached data", got)
		}
		if r := s.fs.Stats().Reads; r != reads {
			t.Errorf("READs sent for a cached read: %d", r-reads)
		}
		fd.Close(ctx)
		if got := string(fsReadFile(t, s.v, "f")); got != "xxxxxx" {
			t.Errorf("read after reopening = %q, want the host's new data", got)
		}

		// An open file sees a host change once the attributes expire
		// (FUSE_AUTO_INVAL_DATA).
		fd, err = s.v.Open(ctx, root, "f", unix.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer fd.Close(ctx)
		if got := fsPRead(t, fd, 16); got != "xxxxxx" {
			t.Errorf("read = %q", got)
		}
		fsHostWrite(t, host, "yyyyyyy")
		s.clock.advance(second)
		if got := fsPRead(t, fd, 16); got != "yyyyyyy" {
			t.Errorf("read of an open file after the timeout = %q, want the host's new data", got)
		}

		// Names: a host rename is seen once the entry expires.
		if _, err := fsStatSize(s.v, "f"); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(host, filepath.Join(dir, "g")); err != nil {
			t.Fatal(err)
		}
		if _, err := fsStatSize(s.v, "f"); err != nil {
			t.Errorf("stat of the old name within the entry timeout: %v, want the cached entry", err)
		}
		s.clock.advance(second)
		if _, err := fsStatSize(s.v, "f"); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("stat of the old name after the timeout: %v, want ENOENT", err)
		}
	})

	t.Run("always", func(t *testing.T) {
		dir := t.TempDir()
		host := filepath.Join(dir, "f")
		fsHostWrite(t, host, "aaaa")
		s := startFS(t, dir, fsConfig{daemon: virtiofsdtest.Options{Cache: "always"}, fs: fuse.FSOptions{Cache: fuse.CacheAlways}, fakeClock: true})
		if got := string(fsReadFile(t, s.v, "f")); got != "aaaa" {
			t.Fatalf("read = %q", got)
		}
		reads := s.fs.Stats().Reads
		fsHostWrite(t, host, "zzzz")
		s.clock.advance(10 * second)
		if got := string(fsReadFile(t, s.v, "f")); got != "aaaa" {
			t.Errorf("read after reopening = %q, want the cached data (kept across opens)", got)
		}
		if r := s.fs.Stats().Reads; r != reads {
			t.Errorf("READs sent for cached data: %d", r-reads)
		}
		// Writing through the client updates the cache and the host.
		fd, err := s.v.Open(context.Background(), root, "f", unix.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fd.PWrite(context.Background(), []byte("Q"), 1); err != nil {
			t.Fatal(err)
		}
		if got := fsPRead(t, fd, 16); got != "aQaa" {
			t.Errorf("read after own write = %q, want the cache updated", got)
		}
		fd.Close(context.Background())
		if got, _ := os.ReadFile(host); string(got) != "zQzz" {
			t.Errorf("host = %q", got)
		}
	})
}

// TestFSWriteback checks that with FUSE_WRITEBACK_CACHE written data
// reaches the host only on Sync or Close, and all of it by Close.
func TestFSWriteback(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(dir, "f")
	s := startWritebackFS(t, dir, fuse.FSOptions{Cache: fuse.CacheAuto, WritebackLimit: 1 << 20})
	ctx := context.Background()
	fd, err := s.v.Open(ctx, root, "f", unix.O_RDWR|unix.O_CREAT, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	data := fsPattern(300_000, 3)
	writes := s.fs.Stats().Writes
	for off := 0; off < len(data); off += 10_000 {
		if _, err := fd.Write(ctx, data[off:off+10_000]); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := os.ReadFile(host); len(got) != 0 {
		t.Errorf("host has %d bytes before Sync, want none", len(got))
	}
	if w := s.fs.Stats().Writes; w != writes {
		t.Errorf("%d WRITEs sent before Sync", w-writes)
	}
	if st, err := fd.Stat(ctx); err != nil || st.Size != uint64(len(data)) {
		t.Errorf("fstat size = %d, %v; want the local size %d", st.Size, err, len(data))
	}
	if got := fsPRead(t, fd, 400_000); got != string(data) {
		t.Errorf("reading dirty data back gave %d bytes, not what was written", len(got))
	}
	if err := fd.Sync(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(host); !bytes.Equal(got, data) {
		t.Errorf("host has %d bytes after Sync, want the %d written", len(got), len(data))
	}
	// A sparse write in the same page as dirty data, then more at the end.
	if _, err := fd.PWrite(ctx, []byte("AB"), 10); err != nil {
		t.Fatal(err)
	}
	if _, err := fd.PWrite(ctx, []byte("CD"), 100); err != nil {
		t.Fatal(err)
	}
	tail := fsPattern(70_000, 9)
	if _, err := fd.Write(ctx, tail); err != nil {
		t.Fatal(err)
	}
	copy(data[10:], "AB")
	copy(data[100:], "CD")
	data = append(data, tail...)
	if got, _ := os.ReadFile(host); len(got) != 300_000 {
		t.Errorf("host has %d bytes before Close, want the 300000 synced", len(got))
	}
	if err := fd.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(host); !bytes.Equal(got, data) {
		t.Errorf("host has %d bytes after Close, want the %d written", len(got), len(data))
	}
	if d := s.fs.Stats().DirtyBytes; d != 0 {
		t.Errorf("%d dirty bytes after Close", d)
	}

	// Past WritebackLimit the writer writes back by itself.
	fd, err = s.v.Open(ctx, root, "big", unix.O_WRONLY|unix.O_CREAT, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	big := fsPattern(4<<20, 5)
	for off := 0; off < len(big); off += 64 << 10 {
		if _, err := fd.Write(ctx, big[off:off+64<<10]); err != nil {
			t.Fatal(err)
		}
		if d := s.fs.Stats().DirtyBytes; d > 1<<20 {
			t.Fatalf("%d dirty bytes, more than the 1 MiB limit", d)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "big")); fi.Size() < 3<<20 {
		t.Errorf("host has %d bytes of 4 MiB before Close: the limit did not write back", fi.Size())
	}
	if err := fd.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "big")); !bytes.Equal(got, big) {
		t.Errorf("host has %d bytes after Close, want the 4 MiB written", len(got))
	}

	// The filesystem-wide Sync (syncfs) writes back every open file's
	// dirty data.
	var fds []*vfs.FileDescription
	for i, name := range []string{"s1", "s2"} {
		fd, err := s.v.Open(ctx, root, name, unix.O_RDWR|unix.O_CREAT, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
		if _, err := fd.Write(ctx, fsPattern(50_000, byte(i))); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, name)); len(got) != 0 {
			t.Errorf("host has %d bytes of %s before Sync, want none", len(got), name)
		}
	}
	if err := s.v.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"s1", "s2"} {
		if got, _ := os.ReadFile(filepath.Join(dir, name)); !bytes.Equal(got, fsPattern(50_000, byte(i))) {
			t.Errorf("host has %d bytes of %s after the filesystem Sync, want the 50000 written", len(got), name)
		}
		if err := fds[i].Close(ctx); err != nil {
			t.Error(err)
		}
	}
}

// TestFSForgets walks 10,000 files with a dentry cache of 1,000: every
// lookup is forgotten, in few hiprio messages, and virtiofsd closes the
// O_PATH descriptor it kept for each inode.
func TestFSForgets(t *testing.T) {
	const files = 10_000
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range files {
		f, err := os.Create(filepath.Join(dir, "d", fsName(i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	s := startFS(t, dir, fsConfig{
		daemon: virtiofsdtest.Options{Cache: "auto"},
		// A delay long enough for many lookups even under -race.
		fs:  fuse.FSOptions{Cache: fuse.CacheAuto, ForgetDelay: 50 * time.Millisecond},
		vfs: vfs.Options{MaxCachedDentries: 1000},
	})
	ctx := context.Background()
	if _, err := s.v.Stat(ctx, root, "."); err != nil {
		t.Fatal(err)
	}
	before, err := s.d.FDCount()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range files {
		if _, err := s.v.Stat(ctx, root, "d/"+fsName(i)); err != nil {
			t.Fatalf("stat %d: %v", i, err)
		}
	}
	walk := time.Since(start)
	if cs := s.v.CacheStats(); cs.Unreferenced > 1000 {
		t.Errorf("dentry cache holds %d unreferenced dentries, limit 1000", cs.Unreferenced)
	}
	// vfs keeps 1,000 dentries; virtiofsd may lag behind the forgets a
	// little, but not by thousands.
	if during, err := s.d.FDCount(); err == nil && during > before+files/2 {
		t.Errorf("virtiofsd holds %d descriptors during the walk, %d before: forgets are not flowing", during, before)
	}
	s.v.Close(ctx)
	s.v = nil
	if err := s.fs.FlushForgets(ctx); err != nil {
		t.Fatal(err)
	}
	st := s.fs.Stats()
	t.Logf("walk of %d files: %v; lookups %d, forgotten %d in %d entries and %d hiprio messages", files, walk, st.Lookups, st.Forgotten, st.ForgetEntries, st.HiprioMessages)
	if st.Lookups < files {
		t.Errorf("lookups = %d, want at least %d", st.Lookups, files)
	}
	if st.Forgotten != st.Lookups {
		t.Errorf("forgotten %d, lookups %d: want equal", st.Forgotten, st.Lookups)
	}
	if st.HiprioMessages*10 > st.Lookups {
		t.Errorf("%d hiprio messages for %d forgets, want at most a tenth", st.HiprioMessages, st.Lookups)
	}
	if st.Inodes != 1 {
		t.Errorf("%d inodes left, want the root only", st.Inodes)
	}
	// virtiofsd handles the hiprio queue on its own thread: wait for it.
	deadline := time.Now().Add(10 * time.Second)
	after := -1
	for time.Now().Before(deadline) {
		if after, err = s.d.FDCount(); err != nil || after <= before {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if after != before {
		t.Errorf("virtiofsd holds %d descriptors after the forgets, %d before", after, before)
	}
}

func fsName(i int) string {
	const digits = "0123456789"
	b := []byte("f00000")
	for j := 5; j >= 1; j-- {
		b[j] = digits[i%10]
		i /= 10
	}
	return string(b)
}

// TestFSSubmount shares a directory with a tmpfs mounted inside it:
// virtiofsd announces the submount, which gets its own st_dev; ".."
// crosses back; files inside work.
func TestFSSubmount(t *testing.T) {
	dir := t.TempDir()
	mnt := virtiofsdtest.Submount(t, dir, "sub")
	fsHostWrite(t, filepath.Join(mnt, "inside"), "tmpfs data")
	s := startFS(t, dir, fsConfig{
		daemon: virtiofsdtest.Options{Cache: "auto", AnnounceSubmounts: true},
		fs:     fuse.FSOptions{Cache: fuse.CacheAuto},
	})
	ctx := context.Background()
	rst, err := s.v.Stat(ctx, root, ".")
	if err != nil {
		t.Fatal(err)
	}
	sst, err := s.v.Stat(ctx, root, "sub")
	if err != nil {
		t.Fatal(err)
	}
	if sst.Dev == rst.Dev {
		t.Errorf("sub has the root's st_dev %d", sst.Dev)
	}
	var hst unix.Stat_t
	unix.Stat(mnt, &hst)
	if sst.Ino != hst.Ino {
		t.Errorf("sub ino = %d, host %d", sst.Ino, hst.Ino)
	}
	fst, err := s.v.Stat(ctx, root, "sub/inside")
	if err != nil {
		t.Fatal(err)
	}
	if fst.Dev != sst.Dev {
		t.Errorf("sub/inside st_dev %d, sub's %d", fst.Dev, sst.Dev)
	}
	up, err := s.v.Stat(ctx, root, "sub/..")
	if err != nil {
		t.Fatal(err)
	}
	if up.Dev != rst.Dev || up.Ino != rst.Ino {
		t.Errorf("sub/.. = dev %d ino %d, want the root's %d %d", up.Dev, up.Ino, rst.Dev, rst.Ino)
	}
	if got := string(fsReadFile(t, s.v, "sub/inside")); got != "tmpfs data" {
		t.Errorf("read sub/inside = %q", got)
	}
	data := fsPattern(100_000, 1)
	fsWriteFile(t, s.v, "sub/new", data)
	if got, _ := os.ReadFile(filepath.Join(mnt, "new")); !bytes.Equal(got, data) {
		t.Errorf("host tmpfs has %d bytes of sub/new, want %d", len(got), len(data))
	}
	if got := fsReadFile(t, s.v, "sub/../sub/new"); !bytes.Equal(got, data) {
		t.Errorf("read back %d bytes", len(got))
	}
	if err := s.v.Unlink(ctx, root, "sub/new"); err != nil {
		t.Error(err)
	}
}

// TestFSLocksAndSeek takes flock and POSIX locks through two open files
// and checks them against the host, and resolves SEEK_DATA and SEEK_HOLE
// as the host does.
func TestFSLocksAndSeek(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(dir, "f")
	hf, err := os.Create(host)
	if err != nil {
		t.Fatal(err)
	}
	hf.WriteAt(fsPattern(4096, 1), 0)
	hf.WriteAt(fsPattern(4096, 2), 1<<20)
	hf.Truncate(2 << 20)
	hf.Close()
	s := startFS(t, dir, fsConfig{
		daemon: virtiofsdtest.Options{Cache: "auto", ExtraArgs: []string{"-o", "posix_lock", "-o", "flock"}},
		fs:     fuse.FSOptions{Cache: fuse.CacheAuto},
	})
	ctx := context.Background()
	fd1, err := s.v.Open(ctx, root, "f", unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fd2, err := s.v.Open(ctx, root, "f", unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	hostFlock := func() error {
		f, err := os.Open(host)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			unix.Flock(int(f.Fd()), unix.LOCK_UN)
		}
		return err
	}

	// flock(2).
	ex := vfs.LockRequest{Type: unix.F_WRLCK, Flock: true}
	if err := fd1.Lock(ctx, ex, false); err != nil {
		t.Fatalf("flock: %v", err)
	}
	if err := fd2.Lock(ctx, ex, false); !errors.Is(err, syscall.EAGAIN) {
		t.Errorf("conflicting flock = %v, want EAGAIN", err)
	}
	if err := hostFlock(); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Errorf("host flock against ours = %v, want EWOULDBLOCK", err)
	}
	if err := fd1.Lock(ctx, vfs.LockRequest{Type: unix.F_UNLCK, Flock: true}, false); err != nil {
		t.Fatal(err)
	}
	if err := fd2.Lock(ctx, ex, true); err != nil {
		t.Errorf("flock after unlock: %v", err)
	}

	// POSIX record locks: the handle is the owner.
	rng := vfs.LockRequest{Type: unix.F_WRLCK, Start: 0, Len: 100}
	if err := fd1.Lock(ctx, rng, false); err != nil {
		t.Fatalf("F_SETLK: %v", err)
	}
	if err := fd2.Lock(ctx, rng, false); !errors.Is(err, syscall.EAGAIN) {
		t.Errorf("conflicting F_SETLK = %v, want EAGAIN", err)
	}
	type getLocker interface {
		GetLock(context.Context, vfs.LockRequest) (vfs.LockRequest, error)
	}
	if gl, ok := fd2.Impl().(getLocker); !ok {
		t.Error("file has no GetLock")
	} else if got, err := gl.GetLock(ctx, rng); err != nil || got.Type != unix.F_WRLCK || got.Start != 0 || got.Len != 100 {
		t.Errorf("F_GETLK = %+v, %v; want the write lock on [0, 100)", got, err)
	}
	// A waiting lock ends with its context, or is granted once the
	// holder goes (virtiofsd refuses SETLKW: the client retries SETLK).
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	if err := fd2.Lock(short, rng, true); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting F_SETLKW with a deadline = %v, want DeadlineExceeded", err)
	}
	cancel()
	waited := make(chan error, 1)
	go func() { waited <- fd2.Lock(ctx, rng, true) }()
	if err := fd1.Close(ctx); err != nil { // FLUSH drops the handle's locks
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Errorf("F_SETLKW after the holder closed: %v", err)
	}
	if err := fd2.Lock(ctx, rng, false); err != nil {
		t.Errorf("F_SETLK after the holder closed: %v", err)
	}

	// SEEK_DATA and SEEK_HOLE agree with the host.
	hfd, err := os.Open(host)
	if err != nil {
		t.Fatal(err)
	}
	defer hfd.Close()
	for _, c := range []struct {
		off    int64
		whence int
	}{{0, unix.SEEK_DATA}, {0, unix.SEEK_HOLE}, {8192, unix.SEEK_DATA}, {1 << 20, unix.SEEK_HOLE}, {(1 << 20) + 8192, unix.SEEK_DATA}} {
		want, werr := unix.Seek(int(hfd.Fd()), c.off, c.whence)
		got, gerr := fd2.Seek(ctx, c.off, c.whence)
		if werr != nil && !errors.Is(gerr, werr) || werr == nil && (gerr != nil || got != want) {
			t.Errorf("Seek(%d, %d) = %d, %v; host %d, %v", c.off, c.whence, got, gerr, want, werr)
		}
	}
	if err := fd2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := hostFlock(); err != nil {
		t.Errorf("host flock after our files closed: %v", err)
	}
}

// TestFSReadDir lists a directory of 300 entries in pieces, with
// READDIRPLUS negotiated (which starts the listing) and without, and checks
// that every lookup READDIRPLUS made is forgotten once vfs lets go.
func TestFSReadDir(t *testing.T) {
	for _, plus := range []bool{true, false} {
		name := "readdir"
		args := []string{"-o", "no_readdirplus"}
		if plus {
			name, args = "readdirplus", []string{"-o", "readdirplus"}
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			want := map[string]bool{}
			for i := range 300 {
				want[fsName(i)] = true
				fsHostWrite(t, filepath.Join(dir, fsName(i)), "x")
			}
			s := startFS(t, dir, fsConfig{
				daemon: virtiofsdtest.Options{Cache: "auto", ExtraArgs: args},
				fs:     fuse.FSOptions{Cache: fuse.CacheAuto},
			})
			if got := s.fs.Params().Has(fuse.InitDoReaddirplus); got != plus {
				t.Fatalf("READDIRPLUS negotiated = %v, want %v", got, plus)
			}
			ctx := context.Background()
			fd, err := s.v.Open(ctx, root, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			first := "" // the first name listed: READDIRPLUS starts a listing
			for round := 0; ; round++ {
				got := 0
				if err := fd.ReadDir(ctx, func(de vfs.Dirent) bool {
					if got == 37 {
						return false
					}
					got++
					seen[de.Name]++
					if first == "" && de.Name != "." && de.Name != ".." {
						first = de.Name
					}
					return true
				}); err != nil {
					t.Fatal(err)
				}
				if got == 0 {
					break
				}
				if round > 100 {
					t.Fatal("listing does not end")
				}
			}
			fd.Close(ctx)
			for n := range want {
				if seen[n] != 1 {
					t.Errorf("%s listed %d times", n, seen[n])
				}
			}
			if len(seen) != len(want)+2 {
				t.Errorf("%d names listed, want %d and . and ..", len(seen), len(want))
			}
			// READDIRPLUS filled the dentry cache at the start of the
			// listing: a stat needs no LOOKUP.
			before := s.fs.Stats().Lookups
			if _, err := s.v.Stat(ctx, root, first); err != nil {
				t.Fatal(err)
			}
			if plus && s.fs.Stats().Lookups != before {
				t.Errorf("stat after READDIRPLUS sent a LOOKUP")
			}
			s.v.Close(ctx)
			s.v = nil
			if err := s.fs.FlushForgets(ctx); err != nil {
				t.Fatal(err)
			}
			st := s.fs.Stats()
			if plus && st.Lookups == 0 {
				t.Errorf("no lookups: the listing did not start with READDIRPLUS")
			}
			if st.Forgotten != st.Lookups {
				t.Errorf("forgotten %d, lookups %d: want equal", st.Forgotten, st.Lookups)
			}
		})
	}
}

// TestFSConcurrent runs goroutines that create, write, read, stat,
// rename and remove their own files while others read a shared one, with
// writeback on, under -race; then checks the host and the nlookup
// accounting.
func TestFSConcurrent(t *testing.T) {
	dir := t.TempDir()
	shared := fsPattern(200_000, 4)
	if err := os.WriteFile(filepath.Join(dir, "shared"), shared, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := writebackConfig(fuse.FSOptions{Cache: fuse.CacheAuto, WritebackLimit: 256 << 10})
	cfg.vfs = vfs.Options{MaxCachedDentries: 16}
	s := startFS(t, dir, cfg)
	ctx := context.Background()
	const workers, rounds = 8, 20
	errc := make(chan error, workers*2)
	for w := range workers {
		go func() {
			errc <- func() error {
				for r := range rounds {
					name := fsName(w*1000 + r)
					data := fsPattern(10_000+r*997, byte(w))
					fd, err := s.v.Open(ctx, root, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
					if err != nil {
						return err
					}
					for off := 0; off < len(data); off += 3000 {
						if _, err := fd.Write(ctx, data[off:min(off+3000, len(data))]); err != nil {
							return err
						}
					}
					buf := make([]byte, len(data)+10)
					if n, err := fd.PRead(ctx, buf, 0); err != nil || !bytes.Equal(buf[:n], data) {
						return errors.New(name + ": read back differs")
					}
					if err := fd.Close(ctx); err != nil {
						return err
					}
					if st, err := s.v.Stat(ctx, root, name); err != nil || st.Size != uint64(len(data)) {
						return errors.New(name + ": wrong size")
					}
					if err := s.v.Rename(ctx, root, name, name+".r", 0); err != nil {
						return err
					}
					if r%2 == 0 {
						if err := s.v.Unlink(ctx, root, name+".r"); err != nil {
							return err
						}
					}
				}
				return nil
			}()
		}()
		go func() {
			errc <- func() error {
				for range rounds {
					fd, err := s.v.Open(ctx, root, "shared", unix.O_RDONLY, 0)
					if err != nil {
						return err
					}
					buf := make([]byte, len(shared))
					n, err := fd.PRead(ctx, buf, 0)
					fd.Close(ctx)
					if err != nil || !bytes.Equal(buf[:n], shared) {
						return errors.New("shared: read differs")
					}
				}
				return nil
			}()
		}()
	}
	for range workers * 2 {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	for w := range workers {
		for r := 1; r < rounds; r += 2 {
			got, err := os.ReadFile(filepath.Join(dir, fsName(w*1000+r)+".r"))
			if want := fsPattern(10_000+r*997, byte(w)); err != nil || !bytes.Equal(got, want) {
				t.Errorf("host %s: %d bytes, %v; want %d", fsName(w*1000+r), len(got), err, len(want))
			}
		}
	}
	s.v.Close(ctx)
	s.v = nil
	if err := s.fs.FlushForgets(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.fs.Stats(); st.Forgotten != st.Lookups || st.DirtyBytes != 0 || st.Inodes != 1 {
		t.Errorf("after the run: %+v; want all lookups forgotten, nothing dirty, the root left", st)
	}
}
