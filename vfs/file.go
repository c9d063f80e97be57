package vfs

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// FileDescriptionImpl is a filesystem's open file or directory (a FUSE file
// handle). vfs keeps the file offset and flags and serialises offset
// updates; the implementation only sees explicit offsets.
//
// All methods may block on a request. vfs calls none of them after
// Release, and Release only once no other call is in progress.
type FileDescriptionImpl interface {
	// Read reads up to len(dst) bytes at off (Linux fuse_file_read_iter,
	// FUSE READ). It returns 0, nil at end of file.
	//
	// Errors: EIO, EINTR, ...
	// Preconditions: the file is not a directory and was opened readable;
	// off >= 0.
	Read(ctx context.Context, dst []byte, off int64) (int, error)

	// Write writes src at off, or at the current end of the file when
	// appending is true (O_APPEND; off is then ignored, and the
	// implementation makes the end-of-file lookup and the write atomic as
	// far as its protocol allows). It returns the bytes written and the
	// offset just past them (Linux fuse_file_write_iter, FUSE WRITE).
	//
	// Errors: ENOSPC, EFBIG, EDQUOT, EIO, ...
	// Preconditions: not a directory, opened writable, off >= 0.
	Write(ctx context.Context, src []byte, off int64, appending bool) (n int, end int64, err error)

	// Seek resolves SEEK_END, SEEK_DATA and SEEK_HOLE (vfs resolves
	// SEEK_SET and SEEK_CUR itself) and returns the absolute offset (Linux
	// fuse_file_llseek: SEEK_END from a fresh size, DATA/HOLE through FUSE
	// LSEEK).
	//
	// Errors: ENXIO (DATA/HOLE at or past the end), EINVAL.
	Seek(ctx context.Context, offset int64, whence int) (int64, error)

	// ReadDir lists the directory from cookie (0 is the start), calling
	// emit for each entry in order until emit returns false or the end
	// is reached (FUSE READDIR or READDIRPLUS). Entries carry Next, the
	// cookie continuing after them; with READDIRPLUS each also carries an
	// Entry whose reference passes to vfs, even when emit returns false.
	//
	// Errors: ENOTDIR is checked by vfs; EIO, ...
	// Preconditions: the file is a directory.
	ReadDir(ctx context.Context, cookie int64, emit func(Dirent) bool) error

	// Stat returns the file's attributes (FUSE GETATTR with the file
	// handle). vfs fills in Dev.
	Stat(ctx context.Context) (Statx, error)

	// SetStat changes the file's attributes (FUSE SETATTR with the file
	// handle: ftruncate, fchmod, fchown, futimens) and returns them.
	//
	// Preconditions: as FilesystemImpl.Setattr.
	SetStat(ctx context.Context, opts *SetStatOptions) (Statx, error)

	// Sync flushes the file to stable storage (FUSE FSYNC or FSYNCDIR);
	// dataOnly asks for fdatasync.
	Sync(ctx context.Context, dataOnly bool) error

	// Lock acquires or releases a lock (FUSE SETLK, SETLKW when wait is
	// true; FUSE_LK_FLOCK for LockRequest.Flock).
	//
	// Errors: EAGAIN if !wait and the lock conflicts; EDEADLK; ENOLCK;
	// ctx.Err() if ctx ends while waiting.
	Lock(ctx context.Context, lk LockRequest, wait bool) error

	// Flush is called on every Close of the file description (Linux
	// filp_close -> fuse_flush, FUSE FLUSH): write back dirty data and
	// drop POSIX locks. Its error is what Close returns.
	Flush(ctx context.Context) error

	// Release is called once, after the last reference to the file
	// description is gone (FUSE RELEASE or RELEASEDIR). It must not fail
	// from the caller's point of view; a FUSE client may send it without
	// waiting for the reply.
	Release(ctx context.Context)
}

// FileDescription is an open file: its dentry and mount, its flags and
// offset, and the filesystem's FileDescriptionImpl (Linux struct file).
// All methods are safe for concurrent use; Read, Write, Seek and ReadDir
// serialise on the offset lock, as Linux fdget_pos does, so each moves the
// offset atomically with its I/O.
type FileDescription struct {
	d     *Dentry             // immutable; the file holds a reference
	impl  FileDescriptionImpl // immutable
	creds Credentials         // immutable, the opener's
	flags int                 // immutable: O_ACCMODE, O_APPEND, O_DIRECTORY, ...
	isDir bool                // immutable

	// refs counts Close not yet called (1) plus calls in progress. At zero
	// impl.Release is called. Atomic.
	refs   atomic.Int64
	closed atomic.Bool

	// posMu guards off. It is held across impl.Read, Write, Seek and
	// ReadDir: a documented lock held across a blocking request, like
	// Linux f_pos_lock.
	posMu sync.Mutex
	off   int64
}

// Flags returns the flags the file was opened with (O_CREAT, O_EXCL,
// O_TRUNC and O_NOFOLLOW removed).
func (fd *FileDescription) Flags() int { return fd.flags }

// Dentry returns the file's dentry (and through it, its Mount). The caller
// gets no reference: it is valid while the file description is open.
func (fd *FileDescription) Dentry() *Dentry { return fd.d }

// Impl returns the filesystem's part of the file.
func (fd *FileDescription) Impl() FileDescriptionImpl { return fd.impl }

// Credentials returns the credentials the file was opened with.
func (fd *FileDescription) Credentials() Credentials { return fd.creds }

// IsDir reports whether the file is a directory.
func (fd *FileDescription) IsDir() bool { return fd.isDir }

// get takes a reference for one call (Linux fdget), failing once Close has
// been called.
func (fd *FileDescription) get() error {
	for {
		n := fd.refs.Load()
		if n <= 0 || fd.closed.Load() {
			return syscall.EBADF
		}
		if fd.refs.CompareAndSwap(n, n+1) {
			return nil
		}
	}
}

// put drops a reference; the last one releases the file (Linux fput).
func (fd *FileDescription) put(ctx context.Context) {
	if fd.refs.Add(-1) == 0 {
		if ctx.Done() != nil { // WithoutCancel costs an allocation even of one that never ends
			ctx = context.WithoutCancel(ctx)
		}
		fd.impl.Release(ctx)
		fd.d.vfs.decRef(fd.d)
	}
}

func (fd *FileDescription) readable() bool { return fd.flags&unix.O_ACCMODE != unix.O_WRONLY }
func (fd *FileDescription) writable() bool { return fd.flags&unix.O_ACCMODE != unix.O_RDONLY }

// Close closes the file description: it flushes (returning the flush
// error) and releases the file once calls in progress have returned
// (Linux close(2)).
//
// Errors: EBADF if already closed; whatever Flush returns.
func (fd *FileDescription) Close(ctx context.Context) error {
	if !fd.closed.CompareAndSwap(false, true) {
		return syscall.EBADF
	}
	err := fd.impl.Flush(ctx)
	fd.put(ctx)
	return err
}

// Read reads at the file offset and advances it (read(2)). It returns 0,
// nil at end of file.
//
// Errors: EBADF (closed, or not opened for reading), EISDIR, and the
// implementation's errors.
func (fd *FileDescription) Read(ctx context.Context, dst []byte) (int, error) {
	if err := fd.checkRead(); err != nil {
		return 0, err
	}
	defer fd.put(ctx)
	fd.posMu.Lock()
	defer fd.posMu.Unlock()
	n, err := fd.impl.Read(ctx, dst, fd.off)
	if n > 0 {
		fd.off += int64(n)
	}
	return n, err
}

// PRead reads at off without using or moving the file offset (pread(2)).
//
// Errors: as Read, and EINVAL for a negative offset.
func (fd *FileDescription) PRead(ctx context.Context, dst []byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if err := fd.checkRead(); err != nil {
		return 0, err
	}
	defer fd.put(ctx)
	return fd.impl.Read(ctx, dst, off)
}

func (fd *FileDescription) checkRead() error {
	if err := fd.get(); err != nil {
		return err
	}
	if fd.isDir {
		fd.put(context.Background())
		return syscall.EISDIR
	}
	if !fd.readable() {
		fd.put(context.Background())
		return syscall.EBADF
	}
	return nil
}

func (fd *FileDescription) checkWrite() error {
	if err := fd.get(); err != nil {
		return err
	}
	if fd.isDir || !fd.writable() {
		fd.put(context.Background())
		return syscall.EBADF
	}
	return nil
}

// Write writes at the file offset, or at the end of the file with
// O_APPEND, and moves the offset past the data (write(2)).
//
// Errors: EBADF (closed, or not opened for writing), and the
// implementation's errors.
func (fd *FileDescription) Write(ctx context.Context, src []byte) (int, error) {
	if err := fd.checkWrite(); err != nil {
		return 0, err
	}
	defer fd.put(ctx)
	fd.posMu.Lock()
	defer fd.posMu.Unlock()
	n, end, err := fd.impl.Write(ctx, src, fd.off, fd.flags&unix.O_APPEND != 0)
	if n > 0 {
		fd.off = end
	}
	return n, err
}

// PWrite writes at off without using or moving the file offset
// (pwrite(2)). As on Linux, with O_APPEND the data goes to the end anyway.
//
// Errors: as Write, and EINVAL for a negative offset.
func (fd *FileDescription) PWrite(ctx context.Context, src []byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if err := fd.checkWrite(); err != nil {
		return 0, err
	}
	defer fd.put(ctx)
	n, _, err := fd.impl.Write(ctx, src, off, fd.flags&unix.O_APPEND != 0)
	return n, err
}

// Seek sets the file offset (lseek(2)): SEEK_SET, SEEK_CUR, SEEK_END,
// SEEK_DATA, SEEK_HOLE. On a directory only SEEK_SET (to a cookie from
// ReadDir, or 0 to rewind) and SEEK_CUR with offset 0 are allowed.
//
// Errors: EBADF, EINVAL (bad whence, or a negative result), ENXIO, and the
// implementation's errors.
func (fd *FileDescription) Seek(ctx context.Context, offset int64, whence int) (int64, error) {
	if err := fd.get(); err != nil {
		return 0, err
	}
	defer fd.put(ctx)
	fd.posMu.Lock()
	defer fd.posMu.Unlock()
	var n int64
	switch whence {
	case unix.SEEK_SET:
		n = offset
	case unix.SEEK_CUR:
		if fd.isDir && offset != 0 {
			return 0, syscall.EINVAL
		}
		n = fd.off + offset
		if offset > 0 && n < fd.off {
			return 0, syscall.EOVERFLOW
		}
	case unix.SEEK_END, unix.SEEK_DATA, unix.SEEK_HOLE:
		if fd.isDir {
			return 0, syscall.EINVAL
		}
		var err error
		if n, err = fd.impl.Seek(ctx, offset, whence); err != nil {
			return 0, err
		}
	default:
		return 0, syscall.EINVAL
	}
	if n < 0 {
		return 0, syscall.EINVAL
	}
	fd.off = n
	return n, nil
}

// DirBatchReader is implemented by a FileDescriptionImpl that can hand a
// listing's entries out in batches (FileDescription.ReadDirBatch): a
// listing passes each entry from the filesystem through vfs to its caller,
// and in a guest under TCG the two indirect calls per entry of ReadDir
// cost more than the entry's own work.
type DirBatchReader interface {
	// ReadDirBatch is ReadDir with the entries handed out in batches:
	// emit returns how many of a batch's entries it took, in order; the
	// listing stops at the first one it did not take. emit may modify
	// the batch but not keep it.
	//
	// Errors: as ReadDir.
	// Preconditions: the file is a directory.
	ReadDirBatch(ctx context.Context, cookie int64, emit func([]Dirent) int) error
}

// ReadDir calls emit for the directory's entries from the current offset
// on, until emit returns false or the listing ends (getdents64(2)). Each
// entry emit accepts moves the offset past it; the one it refuses is
// returned again by the next ReadDir. Entries include "." and ".." when
// the filesystem lists them. READDIRPLUS entries fill the dentry cache.
// emit may call any vfs method except those of fd itself.
//
// Errors: EBADF, ENOTDIR, and the implementation's errors.
func (fd *FileDescription) ReadDir(ctx context.Context, emit func(Dirent) bool) error {
	return fd.ReadDirBatch(ctx, EachDirent(emit))
}

// EachDirent turns emit, which takes one entry at a time, into a batch
// emit for ReadDirBatch: it hands a batch's entries to emit in order and
// returns how many emit took before the first it refused.
func EachDirent(emit func(Dirent) bool) func([]Dirent) int {
	return func(b []Dirent) int {
		for i := range b {
			if !emit(b[i]) {
				return i
			}
		}
		return len(b)
	}
}

// ReadDirBatch is ReadDir with the entries handed to emit in batches, in
// order: emit returns how many of a batch's entries it took, and the
// offset moves past those; the listing stops at the first one it did not
// take, which the next call returns again. A batch is valid during the
// call of emit only. An implementation that is not a DirBatchReader hands
// out batches of one entry.
//
// Errors: EBADF, ENOTDIR, and the implementation's errors.
func (fd *FileDescription) ReadDirBatch(ctx context.Context, emit func([]Dirent) int) error {
	if err := fd.get(); err != nil {
		return err
	}
	defer fd.put(ctx)
	if !fd.isDir {
		return syscall.ENOTDIR
	}
	fd.posMu.Lock()
	defer fd.posMu.Unlock()
	// Linux lists under the directory lock held shared (iterate_shared).
	// Here emit may walk into the directory, so instead a READDIRPLUS
	// entry is only cached if no name was removed from the directory
	// since the listing started (see Dentry.removals).
	gen := fd.d.vfs.removals(fd.d)
	stopped := false
	take := func(b []Dirent) int {
		for i := range b {
			if b[i].Entry != nil {
				if b[i].Entry.Inode != nil {
					fd.d.vfs.cacheDirent(fd.d, &b[i], gen)
				}
				b[i].Entry = nil
			}
		}
		if stopped {
			return 0
		}
		n := emit(b)
		if n > 0 {
			fd.off = b[n-1].Next
		}
		if n < len(b) {
			stopped = true
		}
		return n
	}
	if br, ok := fd.impl.(DirBatchReader); ok {
		return br.ReadDirBatch(ctx, fd.off, take)
	}
	var one [1]Dirent
	return fd.impl.ReadDir(ctx, fd.off, func(de Dirent) bool {
		one[0] = de
		return take(one[:]) == 1
	})
}

// Stat returns the file's attributes with Dev set from its mount (fstat).
//
// Errors: EBADF, and the implementation's errors.
func (fd *FileDescription) Stat(ctx context.Context) (Statx, error) {
	if err := fd.get(); err != nil {
		return Statx{}, err
	}
	defer fd.put(ctx)
	st, err := fd.impl.Stat(ctx)
	st.Dev = fd.d.mount.dev
	return st, err
}

// SetStat changes the file's attributes (ftruncate, fchmod, fchown,
// futimens).
//
// Errors: EBADF; EINVAL for SetSize on a file not opened for writing or
// not regular (a directory included), as Linux do_sys_ftruncate; and the
// implementation's errors.
func (fd *FileDescription) SetStat(ctx context.Context, opts *SetStatOptions) error {
	if err := fd.get(); err != nil {
		return err
	}
	defer fd.put(ctx)
	if opts.Mask&SetSize != 0 {
		// A directory is never open for writing: EINVAL, where
		// truncate(2) of its path says EISDIR.
		if fd.isDir || !fd.writable() || fd.d.mode&S_IFMT != S_IFREG {
			return syscall.EINVAL
		}
		if int64(opts.Size) < 0 {
			return syscall.EINVAL
		}
	}
	_, err := fd.impl.SetStat(ctx, opts)
	return err
}

// Sync flushes the file to stable storage (fsync, or fdatasync when
// dataOnly).
func (fd *FileDescription) Sync(ctx context.Context, dataOnly bool) error {
	if err := fd.get(); err != nil {
		return err
	}
	defer fd.put(ctx)
	return fd.impl.Sync(ctx, dataOnly)
}

// Lock acquires or releases a lock (fcntl F_SETLK/F_SETLKW, or flock(2)
// with LockRequest.Flock); wait blocks until the lock is granted or ctx
// ends.
//
// Errors: EBADF (closed; or a POSIX read lock on a file not open for
// reading, a write lock on one not open for writing), EINVAL (bad type),
// EAGAIN (conflict without wait), and the implementation's errors.
func (fd *FileDescription) Lock(ctx context.Context, lk LockRequest, wait bool) error {
	if err := fd.get(); err != nil {
		return err
	}
	defer fd.put(ctx)
	switch lk.Type {
	case unix.F_RDLCK:
		if !lk.Flock && !fd.readable() {
			return syscall.EBADF
		}
	case unix.F_WRLCK:
		if !lk.Flock && !fd.writable() {
			return syscall.EBADF
		}
	case unix.F_UNLCK:
	default:
		return syscall.EINVAL
	}
	return fd.impl.Lock(ctx, lk, wait)
}
