package govirtiofs

import (
	"errors"
	"io"
	"io/fs"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/vfs"
)

// maxRW bounds one read or write request the facade passes down, as package
// os bounds one system call (internal/poll maxRW).
const maxRW = 1 << 30

var errWriteAtInAppendMode = errors.New("govirtiofs: invalid use of WriteAt on file opened with O_APPEND")

// File is an open file or directory of an FS, used like *os.File. It
// implements io.Reader, io.Writer, io.Seeker, io.ReaderAt, io.WriterAt,
// io.Closer, fs.File and fs.ReadDirFile. A File is safe for concurrent use:
// Read, Write, Seek and ReadDir each move the offset atomically with their
// I/O. After Close, every method fails with an error wrapping fs.ErrClosed.
type File struct {
	fs     *FS                  // immutable
	fd     *vfs.FileDescription // immutable
	name   string               // immutable: the name as given to Open
	path   string               // immutable: the path from the share root
	append bool                 // immutable: opened with O_APPEND
	closed atomic.Bool
	info   vfs.InfoSlot // the last Stat's fileInfo (reuseFileInfo)

	// prev and next link the FS's open files (FS.files), guarded by
	// fs.mu; listed says the file is on that list.
	prev, next *File
	listed     bool
}

// Name returns the name of the file as given to Open.
func (f *File) Name() string { return f.name }

// check returns the error for use of a closed file.
func (f *File) check(op string) error {
	if f == nil {
		return fs.ErrInvalid
	}
	if f.closed.Load() {
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	}
	return nil
}

// wrapErr wraps an error from the file description. EBADF on a file closed
// meanwhile becomes fs.ErrClosed.
func (f *File) wrapErr(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if errnoOf(err) == syscall.EBADF && f.closed.Load() {
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	}
	return pathErr(op, f.name, err)
}

// Read reads up to len(b) bytes at the file offset and advances it
// (os.File.Read). At end of file it returns 0, io.EOF.
//
// Errors: *fs.PathError with op "read": EBADF (not open for reading),
// EISDIR, EIO, ...
func (f *File) Read(b []byte) (int, error) {
	if err := f.check("read"); err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, nil
	}
	n, err := f.fd.Read(f.fs.ctx(), b[:min(len(b), maxRW)])
	if err == nil && n == 0 {
		return 0, io.EOF
	}
	return n, f.wrapErr("read", err)
}

// ReadAt reads len(b) bytes at off without using the file offset
// (os.File.ReadAt); fewer than len(b) only with an error, io.EOF at end of
// file.
//
// Errors: *fs.PathError with op "readat" for a negative offset, "read"
// otherwise.
func (f *File) ReadAt(b []byte, off int64) (n int, err error) {
	if err := f.check("read"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "readat", Path: f.name, Err: errors.New("negative offset")}
	}
	for len(b) > 0 {
		m, e := f.fd.PRead(f.fs.ctx(), b[:min(len(b), maxRW)], off)
		if e != nil {
			return n, f.wrapErr("read", e)
		}
		if m == 0 {
			return n, io.EOF
		}
		n += m
		b = b[m:]
		off += int64(m)
	}
	return n, nil
}

// Write writes b at the file offset, or at the end of the file with
// O_APPEND, and advances the offset (os.File.Write). It returns an error
// when fewer than len(b) bytes were written.
//
// Errors: *fs.PathError with op "write": EBADF (not open for writing),
// ENOSPC, EFBIG, EIO, ...
func (f *File) Write(b []byte) (n int, err error) {
	if err := f.check("write"); err != nil {
		return 0, err
	}
	for {
		m, e := f.fd.Write(f.fs.ctx(), b[:min(len(b), maxRW)])
		n += m
		b = b[m:]
		if e != nil {
			return n, f.wrapErr("write", e)
		}
		if len(b) == 0 {
			return n, nil
		}
		if m == 0 {
			return n, f.wrapErr("write", io.ErrShortWrite)
		}
	}
}

// WriteString is Write of the bytes of s.
func (f *File) WriteString(s string) (int, error) {
	return f.Write([]byte(s))
}

// WriteAt writes b at off without using the file offset (os.File.WriteAt).
//
// Errors: an error for a file opened with O_APPEND (as package os);
// *fs.PathError with op "writeat" for a negative offset, "write" otherwise.
func (f *File) WriteAt(b []byte, off int64) (n int, err error) {
	if err := f.check("write"); err != nil {
		return 0, err
	}
	if f.append {
		return 0, errWriteAtInAppendMode
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "writeat", Path: f.name, Err: errors.New("negative offset")}
	}
	for len(b) > 0 {
		m, e := f.fd.PWrite(f.fs.ctx(), b[:min(len(b), maxRW)], off)
		if e != nil {
			return n, f.wrapErr("write", e)
		}
		if m == 0 {
			return n, f.wrapErr("write", io.ErrShortWrite)
		}
		n += m
		b = b[m:]
		off += int64(m)
	}
	return n, nil
}

// Seek sets the file offset (os.File.Seek): whence is io.SeekStart,
// io.SeekCurrent, io.SeekEnd, or unix.SEEK_DATA / unix.SEEK_HOLE. On a
// directory, Seek(0, io.SeekStart) rewinds the listing.
//
// Errors: *fs.PathError with op "seek": EINVAL, ENXIO, ...
func (f *File) Seek(offset int64, whence int) (int64, error) {
	if err := f.check("seek"); err != nil {
		return 0, err
	}
	off, err := f.fd.Seek(f.fs.ctx(), offset, whence)
	if err != nil {
		return 0, f.wrapErr("seek", err)
	}
	return off, nil
}

// Stat returns the file's FileInfo (os.File.Stat).
//
// Errors: *fs.PathError with op "stat".
func (f *File) Stat() (fs.FileInfo, error) {
	if err := f.check("stat"); err != nil {
		return nil, err
	}
	st, err := f.fd.Stat(f.fs.ctx())
	if err != nil {
		return nil, f.wrapErr("stat", err)
	}
	return reuseFileInfo(&f.info, basename(f.name), &st), nil
}

// setStat sends one attribute change through the open file.
func (f *File) setStat(op string, opts *vfs.SetStatOptions) error {
	if err := f.check(op); err != nil {
		return err
	}
	return f.wrapErr(op, f.fd.SetStat(f.fs.ctx(), opts))
}

// Truncate changes the file's size (os.File.Truncate).
//
// Errors: *fs.PathError with op "truncate": EINVAL (negative size, or not
// open for writing), EFBIG, ...
func (f *File) Truncate(size int64) error {
	// Linux do_sys_ftruncate: EINVAL for a negative size and for anything
	// but a regular file (a directory included) or a file not open for
	// writing.
	if size < 0 || f.fd.IsDir() {
		if err := f.check("truncate"); err != nil {
			return err
		}
		return f.wrapErr("truncate", syscall.EINVAL)
	}
	return f.setStat("truncate", &vfs.SetStatOptions{Mask: vfs.SetSize, Size: uint64(size)})
}

// Chmod changes the file's mode (os.File.Chmod).
//
// Errors: *fs.PathError with op "chmod".
func (f *File) Chmod(mode fs.FileMode) error {
	return f.setStat("chmod", &vfs.SetStatOptions{Mask: vfs.SetMode, Mode: syscallMode(mode)})
}

// Chown changes the file's owner and group; -1 leaves one unchanged
// (os.File.Chown).
//
// Errors: *fs.PathError with op "chown".
func (f *File) Chown(uid, gid int) error {
	opts := chownOptions(uid, gid)
	return f.setStat("chown", &opts)
}

// Chtimes changes the file's access and modification times; a zero
// time.Time leaves that time unchanged (futimens(2)).
//
// Errors: *fs.PathError with op "chtimes".
func (f *File) Chtimes(atime, mtime time.Time) error {
	var opts vfs.SetStatOptions
	if !atime.IsZero() {
		opts.Mask |= vfs.SetAtime
		opts.Atime = atime
	}
	if !mtime.IsZero() {
		opts.Mask |= vfs.SetMtime
		opts.Mtime = mtime
	}
	return f.setStat("chtimes", &opts)
}

// Sync writes the file's data and attributes back and asks the host to make
// them stable (os.File.Sync, fsync(2)).
//
// Errors: *fs.PathError with op "sync".
func (f *File) Sync() error {
	if err := f.check("sync"); err != nil {
		return err
	}
	return f.wrapErr("sync", f.fd.Sync(f.fs.ctx(), false))
}

// lock sends one flock(2) request (FUSE SETLK/SETLKW with FUSE_LK_FLOCK).
// A server that refuses blocking requests (virtiofsd 7.2 answers SETLKW
// with EOPNOTSUPP) gets non-blocking ones, repeated with a growing pause
// until the lock is granted, as a waiting flock(2) would be.
func (f *File) lock(typ int16, wait bool) error {
	if err := f.check("flock"); err != nil {
		return err
	}
	ctx := f.fs.ctx()
	lk := vfs.LockRequest{Type: typ, Flock: true}
	err := f.fd.Lock(ctx, lk, wait)
	if wait && errnoOf(err) == syscall.EOPNOTSUPP {
		pause := 50 * time.Microsecond
		for {
			err = f.fd.Lock(ctx, lk, false)
			if errnoOf(err) != syscall.EAGAIN {
				break
			}
			time.Sleep(pause)
			pause = min(2*pause, 20*time.Millisecond)
		}
	}
	return f.wrapErr("flock", err)
}

// Lock takes an exclusive flock(2) lock on the file, waiting for it. As
// with flock, the lock belongs to this File (all its users share it) and
// is released by Unlock or Close.
//
// Errors: *fs.PathError with op "flock": ENOLCK, EDEADLK, ...
func (f *File) Lock() error { return f.lock(unix.F_WRLCK, true) }

// RLock takes a shared flock(2) lock on the file, waiting for it.
//
// Errors: as Lock.
func (f *File) RLock() error { return f.lock(unix.F_RDLCK, true) }

// TryLock tries to take an exclusive flock(2) lock without waiting; it
// returns false, nil if another holder has a conflicting lock.
//
// Errors: as Lock.
func (f *File) TryLock() (bool, error) { return tryLock(f.lock(unix.F_WRLCK, false)) }

// TryRLock tries to take a shared flock(2) lock without waiting; it returns
// false, nil if another holder has an exclusive lock.
//
// Errors: as Lock.
func (f *File) TryRLock() (bool, error) { return tryLock(f.lock(unix.F_RDLCK, false)) }

func tryLock(err error) (bool, error) {
	if err == nil {
		return true, nil
	}
	if errors.Is(err, syscall.EAGAIN) {
		return false, nil
	}
	return false, err
}

// Unlock releases the file's flock(2) lock. Releasing no lock is not an
// error.
//
// Errors: as Lock.
func (f *File) Unlock() error { return f.lock(unix.F_UNLCK, false) }

// Close closes the file (os.File.Close), writing back its data; its error is
// the write-back's.
//
// Errors: *fs.PathError with op "close": fs.ErrClosed if already closed;
// EIO, ENOSPC, ... from write-back.
func (f *File) Close() error {
	if f == nil {
		return fs.ErrInvalid
	}
	if !f.closed.CompareAndSwap(false, true) {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	err := f.fd.Close(f.fs.ctx())
	f.fs.forgetFile(f)
	if err != nil {
		return pathErr("close", f.name, err)
	}
	return nil
}

// Interface checks.
var (
	_ io.ReadWriteSeeker = (*File)(nil)
	_ io.ReaderAt        = (*File)(nil)
	_ io.WriterAt        = (*File)(nil)
	_ io.Closer          = (*File)(nil)
	_ io.StringWriter    = (*File)(nil)
	_ fs.ReadDirFile     = (*File)(nil)
)
