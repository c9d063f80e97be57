package fuse

import (
	"context"
	"math"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/vfs"
)

// fileHandle is an open file or directory: a FUSE file handle (Linux
// struct fuse_file). It implements vfs.FileDescriptionImpl.
type fileHandle struct {
	fs        *Filesystem     // immutable
	ino       *inode          // immutable
	fh        uint64          // immutable: the server's handle
	flags     int             // immutable: the open flags sent
	openFlags uint32          // immutable: FOPEN_* from the server
	dir       bool            // immutable
	creds     vfs.Credentials // immutable: the opener's
	owner     uint64          // immutable: lock owner ID, unique per handle
	// direct is whether I/O bypasses the page cache (CacheNone or
	// FOPEN_DIRECT_IO). Immutable.
	direct bool

	// releaseHeld says the RELEASE in flight holds an inode reference.
	// Written by Release before the RELEASE is sent, read when it is done.
	releaseHeld bool

	flockUsed atomic.Bool // a flock(2) lock was taken: RELEASE unlocks it
	posixUsed atomic.Bool // a POSIX lock request was sent: FLUSH drops them
	wrote     atomic.Bool // a WRITE was sent or data buffered through f
	ra        readahead   // read-ahead state of the page cache
	dirs      dirState    // listing state of a directory
	released  atomic.Bool

	// prev and next link the filesystem's open files (Filesystem.files),
	// guarded by fs.mu; listed says f is on that list.
	prev, next *fileHandle
	listed     bool
}

var _ vfs.FileDescriptionImpl = (*fileHandle)(nil)

// newFile wraps an OPEN, OPENDIR or CREATE reply (Linux fuse_finish_open):
// without FOPEN_KEEP_CACHE, CacheAuto drops the inode's cached data,
// which gives close-to-open consistency; CacheAlways keeps it.
func (fs *Filesystem) newFile(ino *inode, creds *vfs.Credentials, flags int, out *OpenOut, dir bool) *fileHandle {
	f := &fileHandle{fs: fs, ino: ino, fh: out.Fh, flags: flags, openFlags: out.OpenFlags, dir: dir,
		owner: fs.nextOwner.Add(1)}
	if creds != nil {
		f.creds = *creds
	}
	f.direct = fs.opts.Cache == CacheNone || out.OpenFlags&OpenDirectIO != 0
	if !dir {
		ino.mu.Lock()
		if !f.direct && fs.opts.Cache == CacheAuto && out.OpenFlags&OpenKeepCache == 0 {
			ino.cache.invalidateLocked()
		}
		if flags&unix.O_ACCMODE != unix.O_RDONLY {
			if ino.writers == nil {
				ino.writers = ino.firstWriter[:0]
			}
			ino.writers = append(ino.writers, f)
		}
		ino.mu.Unlock()
	}
	fs.mu.Lock()
	f.next, f.listed = fs.files, true
	if fs.files != nil {
		fs.files.prev = f
	}
	fs.files = f
	fs.mu.Unlock()
	return f
}

// unlistLocked takes f off the filesystem's list of open files.
//
// Preconditions: f.fs.mu is held.
func (f *fileHandle) unlistLocked() {
	if !f.listed {
		return
	}
	if f.prev != nil {
		f.prev.next = f.next
	} else {
		f.fs.files = f.next
	}
	if f.next != nil {
		f.next.prev = f.prev
	}
	f.prev, f.next, f.listed = nil, nil, false
}

// ctx returns a context whose requests carry the opener's credentials.
func (f *fileHandle) ctx(ctx context.Context) context.Context {
	return withCreds(ctx, &f.creds) // f.creds never changes: no copy to box
}

// writeback reports whether writes to f are buffered.
func (f *fileHandle) writeback() bool { return f.fs.writeback && !f.direct }

// flushDirty writes back the inode's dirty pages (inode.flushDirty, whose
// WRITEs carry a writer's credentials). Only a filesystem with writeback
// has any: without it this returns at once instead of taking four locks
// to find none, on every direct read and every close.
func (f *fileHandle) flushDirty(ctx context.Context) error {
	if !f.fs.writeback {
		return nil
	}
	return f.ino.flushDirty(ctx)
}

// Read implements vfs.FileDescriptionImpl.Read: through the page cache,
// or straight to the server for direct I/O (Linux fuse_file_read_iter).
// In CacheAuto, expired attributes are refreshed first, so that a change
// on the host drops the cached data (FUSE_AUTO_INVAL_DATA).
func (f *fileHandle) Read(ctx context.Context, dst []byte, off int64) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	if f.direct {
		// Direct reads must see what was written through the cache.
		if err := f.flushDirty(ctx); err != nil {
			return 0, err
		}
		return f.readDirect(ctx, dst, off)
	}
	if f.fs.opts.Cache == CacheAuto {
		// getattr answers from the cache while it is valid.
		if _, err := f.ino.getattr(ctx, nil, f, false); err != nil {
			return 0, err
		}
	}
	// readCached adds the credentials if it sends a READ.
	return f.ino.readCached(ctx, f, dst, off)
}

// readDirect reads straight into dst, with READs of at most max_pages,
// several in flight; it stops at a short one (Linux fuse_direct_io). The
// READs carry the opener's credentials.
func (f *fileHandle) readDirect(ctx context.Context, dst []byte, off int64) (int, error) {
	size, count := splitIO(len(dst), f.fs.params.MaxPages*pageSize)
	if count == 1 {
		// No closure: one READ allocates nothing here.
		f.fs.reads.Add(1)
		return f.fs.conn.read(ctx, &f.creds, f.ino.nodeid, ReadIn{Fh: f.fh, Offset: uint64(off), Flags: uint32(f.flags)}, dst)
	}
	read := func(i int) (int, error) {
		chunk := dst[i*size : min((i+1)*size, len(dst))]
		f.fs.reads.Add(1)
		return f.fs.conn.read(ctx, &f.creds, f.ino.nodeid, ReadIn{Fh: f.fh, Offset: uint64(off) + uint64(i*size), Flags: uint32(f.flags)}, chunk)
	}
	ns := make([]int, count)
	errs := make([]error, count)
	pipeline(count, func(i int) bool {
		ns[i], errs[i] = read(i)
		return errs[i] == nil && ns[i] == min(size, len(dst)-i*size)
	})
	done := 0
	for i := range count {
		if errs[i] != nil {
			if done > 0 {
				return done, nil // the error comes again with the next read
			}
			return 0, errs[i]
		}
		done += ns[i]
		if ns[i] < min(size, len(dst)-i*size) {
			break // end of file; later chunks, if any, are ignored
		}
	}
	return done, nil
}

// Write implements vfs.FileDescriptionImpl.Write (Linux
// fuse_file_write_iter). With writeback the data becomes dirty pages;
// otherwise it is written through in WRITEs of at most max_write bytes
// and copied into the cached pages. O_APPEND writes at the size from
// fresh attributes (or the local size with writeback); the server, which
// opened the file O_APPEND, appends in any case.
func (f *fileHandle) Write(ctx context.Context, src []byte, off int64, appending bool) (int, int64, error) {
	ino := f.ino
	if appending {
		a, err := ino.getattr(ctx, nil, f, !f.writeback())
		if err != nil {
			return 0, 0, err
		}
		off = int64(a.Size)
	}
	if len(src) == 0 {
		return 0, off, nil
	}
	if off > math.MaxInt64-int64(len(src)) {
		return 0, 0, syscall.EFBIG
	}
	if !f.wrote.Load() {
		f.wrote.Store(true)
	}
	if f.writeback() {
		ctx = f.ctx(ctx)
		if !appending {
			// The local size starts from the server's.
			ino.mu.Lock()
			known := ino.wb.size >= 0 || ino.attrValidLocked()
			ino.mu.Unlock()
			if !known {
				if _, err := ino.getattr(ctx, nil, f, false); err != nil {
					return 0, 0, err
				}
			}
		}
		if err := ino.bufferWrite(ctx, src, off); err != nil {
			return 0, 0, err
		}
		f.fs.balanceDirty(ctx)
		return len(src), off + int64(len(src)), nil
	}
	done, err := f.writeThrough(ctx, src, off, appending)
	end := off + int64(done)
	ino.mu.Lock()
	if done > 0 && uint64(end) > ino.attr.Size {
		ino.attr.Size = uint64(end) // Linux fuse_write_update_attr
	}
	ino.invalidateAttrLocked()
	ino.mu.Unlock()
	if done > 0 {
		return done, end, nil
	}
	if err == nil {
		err = syscall.EIO // the server wrote nothing and said nothing
	}
	return 0, off, err
}

// writeThrough sends src written at off to the server in WRITEs of at
// most max_write bytes and copies what the server took into the cached
// pages (or drops them, for direct I/O). It returns how many bytes from
// the start of src the server wrote, and the error that stopped it
// there, if any. The WRITEs of a large write are in flight several at
// once, except for O_APPEND, where the server appends each WRITE where
// the file ends and so must get them in order. If a WRITE fails or comes
// up short, later WRITEs may still have been done: the cached pages are
// dropped then, since the server's data past the count is not known.
func (f *fileHandle) writeThrough(ctx context.Context, src []byte, off int64, appending bool) (int, error) {
	ino := f.ino
	size, count := splitIO(len(src), int(f.fs.params.MaxWrite))
	if count == 1 {
		// One WRITE: no slices of results nor closures to allocate.
		f.fs.writes.Add(1)
		n, err := f.fs.conn.write(ctx, &f.creds, ino.nodeid, WriteIn{Fh: f.fh, Offset: uint64(off), Flags: uint32(f.flags)}, src)
		f.wroteThrough(src, off, n, true)
		return n, err
	}
	chunk := func(i int) []byte { return src[i*size : min((i+1)*size, len(src))] }
	write := func(i int) (int, error) {
		f.fs.writes.Add(1)
		return f.fs.conn.write(ctx, &f.creds, ino.nodeid, WriteIn{Fh: f.fh, Offset: uint64(off) + uint64(i*size), Flags: uint32(f.flags)}, chunk(i))
	}
	ns := make([]int, count)
	errs := make([]error, count)
	if appending || count == 1 {
		for i := range count {
			ns[i], errs[i] = write(i)
			if errs[i] != nil || ns[i] < len(chunk(i)) {
				break
			}
		}
	} else {
		pipeline(count, func(i int) bool {
			ns[i], errs[i] = write(i)
			return errs[i] == nil && ns[i] == len(chunk(i))
		})
	}
	done := 0
	var err error
	complete := true
	for i := range count {
		done += ns[i]
		if errs[i] != nil || ns[i] < len(chunk(i)) {
			err = errs[i]
			for _, n := range ns[i+1:] {
				complete = complete && n == 0
			}
			break
		}
	}
	f.wroteThrough(src, off, done, complete)
	return done, err
}

// wroteThrough updates the page cache after writeThrough wrote done bytes
// of src at off; complete is false if a WRITE after a short or failed one
// may have landed.
func (f *fileHandle) wroteThrough(src []byte, off int64, done int, complete bool) {
	ino := f.ino
	ino.mu.Lock()
	switch {
	case f.direct || !complete:
		ino.cache.invalidateLocked()
	case done > 0:
		ino.cache.writeLocked(off, src[:done])
	}
	ino.mu.Unlock()
}

// Seek implements vfs.FileDescriptionImpl.Seek (Linux fuse_file_llseek
// and fuse_lseek): SEEK_END from the size, SEEK_DATA and SEEK_HOLE through
// LSEEK after writing back dirty data, or without LSEEK the whole file as
// data.
func (f *fileHandle) Seek(ctx context.Context, offset int64, whence int) (int64, error) {
	ctx = f.ctx(ctx)
	switch whence {
	case unix.SEEK_END:
		a, err := f.ino.getattr(ctx, nil, f, false)
		if err != nil {
			return 0, err
		}
		n := int64(a.Size) + offset
		if offset > 0 && n < 0 {
			return 0, syscall.EOVERFLOW
		}
		return n, nil
	case unix.SEEK_DATA, unix.SEEK_HOLE:
		if offset < 0 {
			return 0, syscall.ENXIO
		}
		if err := f.flushDirty(ctx); err != nil {
			return 0, err
		}
		if !f.fs.noLseek.Load() {
			n, err := f.fs.conn.Lseek(ctx, f.ino.nodeid, f.fh, uint64(offset), uint32(whence))
			if err != syscall.ENOSYS {
				return int64(n), err
			}
			f.fs.noLseek.Store(true)
		}
		a, err := f.ino.getattr(ctx, nil, f, false)
		if err != nil {
			return 0, err
		}
		if offset >= int64(a.Size) {
			return 0, syscall.ENXIO
		}
		if whence == unix.SEEK_DATA {
			return offset, nil
		}
		return int64(a.Size), nil
	}
	return 0, syscall.EINVAL
}

// Stat implements vfs.FileDescriptionImpl.Stat (FUSE GETATTR with the
// handle, or the attribute cache).
func (f *fileHandle) Stat(ctx context.Context) (vfs.Statx, error) {
	a, err := f.ino.getattr(ctx, nil, f, false)
	if err != nil {
		return vfs.Statx{}, err
	}
	return statx(&a), nil
}

// SetStat implements vfs.FileDescriptionImpl.SetStat (FUSE SETATTR with
// the handle).
func (f *fileHandle) SetStat(ctx context.Context, opts *vfs.SetStatOptions) (vfs.Statx, error) {
	return f.ino.setattr(ctx, nil, f, opts)
}

// Sync implements vfs.FileDescriptionImpl.Sync: writeback, then FSYNC or
// FSYNCDIR (Linux fuse_fsync_common); a server without them is taken to
// have nothing to sync.
func (f *fileHandle) Sync(ctx context.Context, dataOnly bool) error {
	ctx = f.ctx(ctx)
	var flags uint32
	if dataOnly {
		flags = FsyncFdatasync
	}
	if f.dir {
		if f.fs.noFsyncdir.Load() {
			return nil
		}
		err := f.fs.conn.Fsyncdir(ctx, f.ino.nodeid, f.fh, flags)
		if err == syscall.ENOSYS {
			f.fs.noFsyncdir.Store(true)
			return nil
		}
		return err
	}
	if err := f.flushDirty(ctx); err != nil {
		return err
	}
	if f.fs.noFsync.Load() {
		return nil
	}
	err := f.fs.conn.Fsync(ctx, f.ino.nodeid, f.fh, flags)
	if err == syscall.ENOSYS {
		f.fs.noFsync.Store(true)
		return nil
	}
	return err
}

// lkIn builds a lock request for this handle (Linux fuse_lk_fill).
func (f *fileHandle) lkIn(lk vfs.LockRequest) (LkIn, error) {
	in := LkIn{Fh: f.fh, Owner: f.owner}
	switch lk.Type {
	case unix.F_RDLCK:
		in.Lk.Type = LockRead
	case unix.F_WRLCK:
		in.Lk.Type = LockWrite
	case unix.F_UNLCK:
		in.Lk.Type = LockUnlock
	default:
		return LkIn{}, syscall.EINVAL
	}
	if lk.Type != unix.F_UNLCK {
		in.Lk.PID = pid
	}
	if lk.Flock {
		in.LkFlags = LkFlock
		in.Lk.Start, in.Lk.End = 0, math.MaxInt64
		return in, nil
	}
	start, n := lk.Start, lk.Len
	if n < 0 {
		start, n = start+n, -n
	}
	if start < 0 {
		return LkIn{}, syscall.EINVAL
	}
	in.Lk.Start = uint64(start)
	if n == 0 || start > math.MaxInt64-n {
		in.Lk.End = math.MaxInt64
	} else {
		in.Lk.End = uint64(start + n - 1)
	}
	return in, nil
}

// lockSupported reports whether the server takes locks of this kind.
func (f *fileHandle) lockSupported(flock bool) bool {
	if flock {
		return f.fs.params.Has(InitFlockLocks)
	}
	return f.fs.params.Has(InitPosixLocks)
}

// Lock implements vfs.FileDescriptionImpl.Lock (FUSE SETLK, SETLKW; flock
// with FUSE_LK_FLOCK). The owner is the handle, so POSIX locks behave as
// open file description locks.
//
// Errors: ENOLCK if the server did not negotiate the kind of lock
// (FUSE_POSIX_LOCKS, FUSE_FLOCK_LOCKS); EAGAIN; EDEADLK; ctx.Err().
func (f *fileHandle) Lock(ctx context.Context, lk vfs.LockRequest, wait bool) error {
	if !f.lockSupported(lk.Flock) {
		return syscall.ENOLCK
	}
	in, err := f.lkIn(lk)
	if err != nil {
		return err
	}
	ctx = f.ctx(ctx)
	if lk.Flock {
		f.flockUsed.Store(true)
	} else {
		f.posixUsed.Store(true)
	}
	if wait && lk.Type != unix.F_UNLCK && !f.fs.noSetlkw.Load() {
		err = f.fs.conn.Setlkw(ctx, f.ino.nodeid, in)
		if err != syscall.EOPNOTSUPP && err != syscall.ENOSYS {
			return err
		}
		// virtiofsd (7.2) refuses to block in a lock request.
		f.fs.noSetlkw.Store(true)
	}
	if wait && lk.Type != unix.F_UNLCK {
		return f.waitLock(ctx, in)
	}
	err = f.fs.conn.Setlk(ctx, f.ino.nodeid, in)
	if err == syscall.ENOSYS {
		return syscall.ENOLCK
	}
	return err
}

// waitLock emulates SETLKW for a server that will not block: SETLK again
// after a growing pause (1 ms to 100 ms) until the lock is granted, fails
// otherwise than with EAGAIN, or ctx ends.
func (f *fileHandle) waitLock(ctx context.Context, in LkIn) error {
	pause := time.Millisecond
	for {
		err := f.fs.conn.Setlk(ctx, f.ino.nodeid, in)
		switch err {
		case syscall.EAGAIN:
		case syscall.ENOSYS:
			return syscall.ENOLCK
		default:
			return err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// GetLock tests for a POSIX lock conflicting with lk (fcntl F_GETLK, FUSE
// GETLK). It returns the conflicting lock with Type F_UNLCK if there is
// none.
//
// Errors: ENOLCK without FUSE_POSIX_LOCKS; the GETLK's.
func (f *fileHandle) GetLock(ctx context.Context, lk vfs.LockRequest) (vfs.LockRequest, error) {
	if !f.lockSupported(false) {
		return vfs.LockRequest{}, syscall.ENOLCK
	}
	in, err := f.lkIn(lk)
	if err != nil {
		return vfs.LockRequest{}, err
	}
	in.Lk.PID = 0 // virtiofsd tests with F_OFD_GETLK, which wants l_pid 0
	out, err := f.fs.conn.Getlk(f.ctx(ctx), f.ino.nodeid, in)
	if err != nil {
		return vfs.LockRequest{}, err
	}
	res := vfs.LockRequest{Start: int64(out.Start)}
	switch out.Type {
	case LockRead:
		res.Type = unix.F_RDLCK
	case LockWrite:
		res.Type = unix.F_WRLCK
	default:
		return vfs.LockRequest{Type: unix.F_UNLCK}, nil
	}
	if out.End != math.MaxInt64 {
		res.Len = int64(out.End-out.Start) + 1
	}
	return res, nil
}

// Flush implements vfs.FileDescriptionImpl.Flush: writeback of the
// inode's dirty data, then FUSE FLUSH with the lock owner so that the
// server drops the handle's POSIX locks and flushes what was written
// through it (Linux fuse_flush). A handle through which nothing was
// written and no POSIX lock was requested sends no FLUSH: the server
// would drop no lock and flush nothing for it (virtiofsd's FLUSH is a
// close of a duplicate of its descriptor). The first error is returned:
// nothing written is lost silently on close.
func (f *fileHandle) Flush(ctx context.Context) error {
	if f.dir {
		return nil
	}
	err := f.flushDirty(ctx)
	if f.openFlags&OpenNoFlush != 0 || f.fs.noFlush.Load() || !f.wrote.Load() && !f.posixUsed.Load() {
		return err
	}
	ferr := f.fs.conn.flush(ctx, &f.creds, f.ino.nodeid, f.fh, f.owner)
	if ferr == syscall.ENOSYS {
		f.fs.noFlush.Store(true)
		ferr = nil
	}
	if err == nil {
		err = ferr
	}
	return err
}

// Release implements vfs.FileDescriptionImpl.Release: FUSE RELEASE or
// RELEASEDIR, with FUSE_RELEASE_FLOCK_UNLOCK if flock was used. As in
// Linux fuse_file_put, the request goes out in the background and the
// caller does not wait for it; the inode is held until the reply, so that
// its FORGET follows the RELEASE, and Filesystem.Close waits for every
// RELEASE before DESTROY. A handle that took a flock(2) lock is released
// synchronously, so that the lock is gone when Release returns. Errors
// are logged: the handle is gone from the client's side either way.
func (f *fileHandle) Release(ctx context.Context) {
	if !f.released.CompareAndSwap(false, true) {
		return
	}
	fs, ino := f.fs, f.ino
	if !f.dir && f.flags&unix.O_ACCMODE != unix.O_RDONLY {
		// Leave writers under flushMu: no writeback is using f.fh.
		ino.flushMu.Lock()
		ino.mu.Lock()
		if i := slices.Index(ino.writers, f); i >= 0 {
			ino.writers = slices.Delete(ino.writers, i, i+1)
		}
		last := len(ino.writers) == 0
		ino.mu.Unlock()
		ino.flushMu.Unlock()
		if last {
			// A failed writeback leaves dirty data nobody can write.
			f.flushDirty(ctx)
		}
	}
	in := ReleaseIn{Fh: f.fh, Flags: uint32(f.flags)}
	wait := f.flockUsed.Load()
	if wait {
		in.ReleaseFlags |= ReleaseFlockUnlock
		in.LockOwner = f.owner
	}
	if ctx.Done() != nil { // vfs hands over a context without cancellation already
		ctx = context.WithoutCancel(ctx)
	}
	fs.mu.Lock()
	f.unlistLocked()
	held := !ino.dead
	if held {
		ino.refs++ // given back when the RELEASE is done
	}
	fs.mu.Unlock()
	fs.releases.add()
	if wait {
		var err error
		if f.dir {
			err = fs.conn.Releasedir(f.ctx(ctx), ino.nodeid, in)
		} else {
			err = fs.conn.Release(f.ctx(ctx), ino.nodeid, in)
		}
		f.releaseDone(err, held)
		return
	}
	op := OpRelease
	if f.dir {
		op = OpReleasedir
	}
	f.releaseHeld = held
	fs.conn.releaseBackground(ctx, &f.creds, op, ino.nodeid, in, f)
}

// backgroundDone implements backgroundWaiter: the background RELEASE of
// Release is done.
func (f *fileHandle) backgroundDone(err error) { f.releaseDone(err, f.releaseHeld) }

// releaseDone ends the RELEASE of Release: it logs a failure and drops the
// inode reference the RELEASE held. For a background RELEASE it runs on
// the Sender's goroutine, holding no lock.
func (f *fileHandle) releaseDone(err error, held bool) {
	fs, ino := f.fs, f.ino
	defer fs.releases.done()
	if err != nil && err != syscall.ENOTCONN {
		fs.log.Warn("fuse: RELEASE failed", "nodeid", ino.nodeid, "fh", f.fh, "err", err)
	}
	if held {
		fs.Release(ino)
	}
}
