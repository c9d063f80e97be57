package vfs_test

import (
	"bytes"
	"context"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/vfs"
	"github.com/govirtiofs/govirtiofs/vfs/vfstest"
)

func TestFileIO(t *testing.T) {
	e := newEnv(t, vfstest.Options{EntryValid: 1e9}, vfs.Options{})
	defer e.checkDrained(t)
	ctx := e.ctx
	fd, err := e.v.Open(ctx, creds, "f", unix.O_CREAT|unix.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func() (int64, error) // returns a number to compare
		want int64
		err  syscall.Errno
	}{
		{"write", func() (int64, error) { n, err := fd.Write(ctx, []byte("hello world")); return int64(n), err }, 11, 0},
		{"seek cur", func() (int64, error) { return fd.Seek(ctx, 0, unix.SEEK_CUR) }, 11, 0},
		{"seek set", func() (int64, error) { return fd.Seek(ctx, 6, unix.SEEK_SET) }, 6, 0},
		{"read", func() (int64, error) {
			b := make([]byte, 10)
			n, err := fd.Read(ctx, b)
			if string(b[:n]) != "world" {
				t.Errorf("read %q, want \"world\"", b[:n])
			}
			return int64(n), err
		}, 5, 0},
		{"read at eof", func() (int64, error) { n, err := fd.Read(ctx, make([]byte, 4)); return int64(n), err }, 0, 0},
		{"seek end", func() (int64, error) { return fd.Seek(ctx, -5, unix.SEEK_END) }, 6, 0},
		{"seek negative", func() (int64, error) { return fd.Seek(ctx, -100, unix.SEEK_CUR) }, 0, syscall.EINVAL},
		{"seek bad whence", func() (int64, error) { return fd.Seek(ctx, 0, 17) }, 0, syscall.EINVAL},
		{"seek data", func() (int64, error) { return fd.Seek(ctx, 2, unix.SEEK_DATA) }, 2, 0},
		{"seek hole", func() (int64, error) { return fd.Seek(ctx, 2, unix.SEEK_HOLE) }, 11, 0},
		{"seek data past end", func() (int64, error) { return fd.Seek(ctx, 11, unix.SEEK_DATA) }, 0, syscall.ENXIO},
		{"pwrite", func() (int64, error) { n, err := fd.PWrite(ctx, []byte("W"), 6); return int64(n), err }, 1, 0},
		{"offset unmoved by pwrite", func() (int64, error) { return fd.Seek(ctx, 0, unix.SEEK_CUR) }, 11, 0},
		{"pread", func() (int64, error) {
			b := make([]byte, 5)
			n, err := fd.PRead(ctx, b, 6)
			if string(b[:n]) != "World" {
				t.Errorf("pread %q, want \"World\"", b[:n])
			}
			return int64(n), err
		}, 5, 0},
		{"pread negative", func() (int64, error) { n, err := fd.PRead(ctx, make([]byte, 1), -1); return int64(n), err }, 0, syscall.EINVAL},
		{"ftruncate", func() (int64, error) {
			return 0, fd.SetStat(ctx, &vfs.SetStatOptions{Mask: vfs.SetSize, Size: 5})
		}, 0, 0},
		{"fstat size", func() (int64, error) { st, err := fd.Stat(ctx); return int64(st.Size), err }, 5, 0},
		{"readdir on file", func() (int64, error) { return 0, fd.ReadDir(ctx, func(vfs.Dirent) bool { return true }) }, 0, syscall.ENOTDIR},
		{"fsync", func() (int64, error) { return 0, fd.Sync(ctx, false) }, 0, 0},
	}
	for _, s := range steps {
		got, err := s.do()
		if errno(err) != s.err || (err == nil && got != s.want) {
			t.Errorf("%s: got %d, %v; want %d, %v", s.name, got, errStr(errno(err)), s.want, errStr(s.err))
		}
	}
	if err := fd.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := fd.Read(ctx, make([]byte, 1)); errno(err) != syscall.EBADF {
		t.Errorf("Read after Close: %v, want EBADF", err)
	}
	if err := fd.Close(ctx); errno(err) != syscall.EBADF {
		t.Errorf("second Close: %v, want EBADF", err)
	}
	if got := e.fs.OpenFiles(); got != 0 {
		t.Errorf("open files after Close = %d, want 0", got)
	}
}

func TestFileAccessModes(t *testing.T) {
	e := newEnv(t, vfstest.Options{EntryValid: 1e9}, vfs.Options{})
	defer e.checkDrained(t)
	build(t, e.fs, "f", "d/")
	ro, err := e.v.Open(e.ctx, creds, "f", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close(e.ctx)
	wo, err := e.v.Open(e.ctx, creds, "f", unix.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer wo.Close(e.ctx)
	dir, err := e.v.Open(e.ctx, creds, "d", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close(e.ctx)
	buf := make([]byte, 4)
	tests := []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"write read-only", func() error { _, err := ro.Write(e.ctx, buf); return err }(), syscall.EBADF},
		{"read write-only", func() error { _, err := wo.Read(e.ctx, buf); return err }(), syscall.EBADF},
		{"read dir", func() error { _, err := dir.Read(e.ctx, buf); return err }(), syscall.EISDIR},
		{"pread dir", func() error { _, err := dir.PRead(e.ctx, buf, 0); return err }(), syscall.EISDIR},
		{"write dir", func() error { _, err := dir.Write(e.ctx, buf); return err }(), syscall.EBADF},
		{"ftruncate read-only", ro.SetStat(e.ctx, &vfs.SetStatOptions{Mask: vfs.SetSize}), syscall.EINVAL},
		{"ftruncate dir", dir.SetStat(e.ctx, &vfs.SetStatOptions{Mask: vfs.SetSize}), syscall.EINVAL},
		{"seek end dir", func() error { _, err := dir.Seek(e.ctx, 0, unix.SEEK_END); return err }(), syscall.EINVAL},
		{"write lock read-only", ro.Lock(e.ctx, vfs.LockRequest{Type: unix.F_WRLCK}, false), syscall.EBADF},
		{"read lock write-only", wo.Lock(e.ctx, vfs.LockRequest{Type: unix.F_RDLCK}, false), syscall.EBADF},
		{"bad lock type", ro.Lock(e.ctx, vfs.LockRequest{Type: 99}, false), syscall.EINVAL},
		{"fchmod read-only", ro.SetStat(e.ctx, &vfs.SetStatOptions{Mask: vfs.SetMode, Mode: 0o600}), 0},
	}
	for _, tt := range tests {
		if got := errno(tt.err); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, errStr(got), errStr(tt.want))
		}
	}
	if st, err := dir.Stat(e.ctx); err != nil || !st.IsDir() || st.Dev != e.v.RootMount().Dev() {
		t.Errorf("dir Stat = %+v, %v; want a directory on the root mount's dev", st, err)
	}
}

func TestAppendConcurrent(t *testing.T) {
	e := newEnv(t, vfstest.Options{EntryValid: 1e9}, vfs.Options{})
	defer e.checkDrained(t)
	build(t, e.fs, "log")
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			fd, err := e.v.Open(e.ctx, creds, "log", unix.O_WRONLY|unix.O_APPEND, 0)
			if err != nil {
				t.Error(err)
				return
			}
			defer fd.Close(e.ctx)
			for i := 0; i < each; i++ {
				if _, err := fd.Write(e.ctx, []byte{'a' + byte(w)}); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	data, err := e.fs.HostData("log")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(data), len("log")+writers*each; got != want {
		t.Errorf("file length %d, want %d (appends lost)", got, want)
	}
	for w := 0; w < writers; w++ {
		if n := bytes.Count(data, []byte{'a' + byte(w)}); n < each {
			t.Errorf("writer %d: %d bytes, want %d", w, n, each)
		}
	}
}

func TestSharedOffset(t *testing.T) {
	e := newEnv(t, vfstest.Options{EntryValid: 1e9}, vfs.Options{})
	defer e.checkDrained(t)
	fd, err := e.v.Open(e.ctx, creds, "f", unix.O_CREAT|unix.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close(e.ctx)
	const writers, each = 8, 64
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := fd.Write(e.ctx, []byte("xy")); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	st, err := fd.Stat(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(writers * each * 2); st.Size != want {
		t.Errorf("size %d, want %d: concurrent writes overlapped", st.Size, want)
	}
}

func TestLock(t *testing.T) {
	e := newEnv(t, vfstest.Options{EntryValid: 1e9}, vfs.Options{})
	defer e.checkDrained(t)
	build(t, e.fs, "f")
	a, err := e.v.Open(e.ctx, creds, "f", unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.v.Open(e.ctx, creds, "f", unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(e.ctx)
	wr := vfs.LockRequest{Type: unix.F_WRLCK, Flock: true}
	if err := a.Lock(e.ctx, wr, false); err != nil {
		t.Fatal(err)
	}
	if err := b.Lock(e.ctx, wr, false); errno(err) != syscall.EAGAIN {
		t.Fatalf("conflicting TryLock: %v, want EAGAIN", err)
	}
	got := make(chan error, 1)
	go func() { got <- b.Lock(context.Background(), wr, true) }()
	// Closing a releases its lock, which must wake the waiter.
	if err := a.Close(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("waiting Lock: %v", err)
	}
	if err := b.Lock(e.ctx, vfs.LockRequest{Type: unix.F_UNLCK, Flock: true}, false); err != nil {
		t.Fatal(err)
	}
}

func TestCloseWaitsForCalls(t *testing.T) {
	e := newEnv(t, vfstest.Options{EntryValid: 1e9}, vfs.Options{})
	build(t, e.fs, "f")
	fd, err := e.v.Open(e.ctx, creds, "f", unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := fd.PRead(e.ctx, make([]byte, 1), 0); err != nil {
					if errno(err) != syscall.EBADF {
						t.Errorf("PRead: %v", err)
					}
					return
				}
			}
		}()
	}
	if err := fd.Close(e.ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	// The vfstest file records a violation if used after Release.
	e.checkDrained(t)
	if got := e.fs.OpenFiles(); got != 0 {
		t.Errorf("open files = %d, want 0", got)
	}
}
