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
	"github.com/govirtiofs/govirtiofs/virtio/vhostuser"
	"github.com/govirtiofs/govirtiofs/vfs"
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
}

// startFS starts virtiofsd on dir and brings the whole stack up. The
// stack is torn down (vfs, filesystem, device) when the test ends.
func startFS(t *testing.T, dir string, cfg fsConfig) *fsStack {
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
	conn := fuse.NewConn(dev, cfg.conn)
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
func (s *fsStack) close(t *testing.T) {
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
