package fuse

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/govirtiofs/govirtiofs/vfs"
)

// inode is the client's view of one server node: its nodeid and
// generation, the lookups the client holds on it, its cached attributes,
// and its page cache and dirty pages (Linux struct fuse_inode). It is the
// vfs.Inode that vfs holds; one object per (nodeid, generation, file type)
// while referenced, so that vfs can compare inodes with ==.
type inode struct {
	fs         *Filesystem // immutable
	nodeid     uint64      // immutable
	generation uint64      // immutable
	ftype      uint32      // immutable: the S_IFMT bits

	// Guarded by fs.mu. refs counts the references vfs holds (one per
	// Entry handed out, plus the root's pin); nlookup counts the lookups
	// the server counted for this object, all forgotten at once when refs
	// drops to zero, when dead is set.
	refs    int64
	nlookup uint64
	dead    bool

	// advisePlus is set by a LOOKUP in this directory: the next listing
	// request uses READDIRPLUS (Linux FUSE_I_ADVISE_RDPLUS).
	advisePlus atomic.Bool

	// flushMu serialises writebacks of this inode. It is held across the
	// WRITE requests of one writeback (Linux waits on page writeback the
	// same way in fuse_sync_writes), and by Release of a writable file
	// while it leaves writers, so that no writeback uses a handle being
	// released.
	flushMu sync.Mutex

	// mu guards the fields below. It is never held across a request.
	mu sync.Mutex
	// attr is the last attributes seen; attrDeadline is when they stop
	// being valid (zero: invalid). attrVersion counts local changes that
	// make an in-flight GETATTR reply stale (Linux fi->attr_version).
	attr         Attr
	attrDeadline time.Time
	attrVersion  uint64
	// target is the cached symlink target, or "".
	target string
	// cache is the clean page cache.
	cache pageCache
	// wb is the writeback state: dirty pages and the local size.
	wb writebackState
	// writers are the open writable handles; writeback uses the first.
	// It starts in firstWriter: one writer at a time, the common case,
	// costs no allocation.
	writers     []*fileHandle
	firstWriter [1]*fileHandle
}

// newInode returns an inode with one lookup and no vfs reference yet.
func (fs *Filesystem) newInode(nodeid, gen uint64, a *Attr, valid time.Duration) *inode {
	ino := &inode{fs: fs, nodeid: nodeid, generation: gen, ftype: a.Mode & ModeType}
	ino.attr = *a
	if v := fs.attrValid(valid); v > 0 {
		ino.attrDeadline = fs.now().Add(v)
	}
	// Only a regular file has pages: the maps cost two allocations, which
	// every other inode (and every inode without writeback, or before its
	// first read) does without. fillLocked makes the page map on first use.
	ino.cache.eof = -1
	ino.cache.ino, ino.cache.pool = ino, &fs.pages
	ino.wb.size = -1
	if fs.writeback && ino.ftype == ModeReg {
		ino.wb.init()
	}
	return ino
}

// attrValid is how long attributes may be used.
func (fs *Filesystem) attrValid(d time.Duration) time.Duration {
	if fs.opts.Cache == CacheNone {
		return 0
	}
	return d
}

// iget returns the inode for a reply carrying a nodeid, with one more
// reference and lookup (Linux fuse_iget). The same nodeid with another
// generation or file type is a new inode: the old one stays valid for the
// references vfs still holds and forgets its own lookups when they go
// (Linux fuse_iget's fuse_stale_inode and "fuse: verify attributes").
func (fs *Filesystem) iget(en *Entry) *inode {
	fs.lookups.Add(1)
	fs.mu.Lock()
	ino := fs.inodes[en.NodeID]
	if ino != nil && ino.generation == en.Generation && ino.ftype == en.Attr.Mode&ModeType {
		ino.refs++
		ino.nlookup++
		fs.mu.Unlock()
		ino.mu.Lock()
		ino.setAttrLocked(&en.Attr, en.AttrValid)
		ino.mu.Unlock()
		return ino
	}
	if ino != nil {
		if en.NodeID == RootID {
			// decodeLookup guarantees the root stays a directory of
			// generation 0, so this cannot happen; keep the pinned root.
			ino.refs++
			ino.nlookup++
			fs.mu.Unlock()
			return ino
		}
		fs.log.Warn("fuse: nodeid came back as another inode", "nodeid", en.NodeID,
			"generation", en.Generation, "old_generation", ino.generation,
			"mode", fmt.Sprintf("%#o", en.Attr.Mode), "old_type", fmt.Sprintf("%#o", ino.ftype))
		fs.stale[ino] = struct{}{}
	}
	ino = fs.newInode(en.NodeID, en.Generation, &en.Attr, en.AttrValid)
	ino.refs, ino.nlookup = 1, 1
	fs.inodes[en.NodeID] = ino
	fs.mu.Unlock()
	return ino
}

// setAttrLocked records attributes from the server (Linux
// fuse_change_attributes). For a regular file with a page cache it drops
// the cached data when the size or mtime changed under it: in CacheAuto
// any change (FUSE_AUTO_INVAL_DATA), in CacheAlways a change of size only
// (Linux truncate_pagecache on a size change). With dirty pages the local
// size wins over the server's, as with Linux writeback_cache.
//
// Preconditions: ino.mu is held.
func (ino *inode) setAttrLocked(a *Attr, valid time.Duration) {
	// Only what the cache checks below is kept from the old attributes,
	// not a copy of them all.
	known := ino.attr.Ino != 0
	oldSize, oldMtime := ino.attr.Size, ino.attr.Mtime
	ino.attr = *a
	ino.attrDeadline = time.Time{}
	if v := ino.fs.attrValid(valid); v > 0 {
		ino.attrDeadline = ino.fs.now().Add(v)
	}
	if ino.ftype != ModeReg || !known {
		return
	}
	switch ino.fs.opts.Cache {
	case CacheAuto:
		if oldSize != a.Size || !oldMtime.Equal(a.Mtime) {
			ino.cache.invalidateLocked()
		}
	case CacheAlways:
		if oldSize != a.Size {
			ino.cache.invalidateLocked()
		}
	}
}

// attrValidLocked reports whether the cached attributes may be used.
//
// Preconditions: ino.mu is held.
func (ino *inode) attrValidLocked() bool {
	return !ino.attrDeadline.IsZero() && ino.fs.now().Before(ino.attrDeadline)
}

var _ vfs.AttrCache = (*Filesystem)(nil)

// CachedGetattr implements vfs.AttrCache: the attributes, as Getattr
// would return them, while they are valid at now; never a request. They
// go straight from the inode into the result, without an Attr copy
// between.
func (fs *Filesystem) CachedGetattr(i vfs.Inode, now time.Time) (st vfs.Statx, ok bool) {
	ino, ok := i.(*inode)
	if !ok || ino == nil || ino.fs != fs {
		return st, false
	}
	ino.mu.Lock()
	if ino.attrDeadline.IsZero() || !now.Before(ino.attrDeadline) {
		ino.mu.Unlock()
		return st, false
	}
	fillStatx(&st, &ino.attr)
	if ino.wb.size >= 0 {
		st.Size = uint64(ino.wb.size) // as attrLocked
	}
	ino.mu.Unlock()
	return st, true
}

// cachedAttr returns the attributes as attrLocked does if they are valid.
func (ino *inode) cachedAttr() (Attr, bool) {
	ino.mu.Lock()
	defer ino.mu.Unlock()
	if !ino.attrValidLocked() {
		return Attr{}, false
	}
	return ino.attrLocked(), true
}

// attrLocked returns the attributes as the client sees them: with
// writeback, the local size of dirty data.
//
// Preconditions: ino.mu is held.
func (ino *inode) attrLocked() Attr {
	a := ino.attr
	if ino.wb.size >= 0 {
		a.Size = uint64(ino.wb.size)
	}
	return a
}

// invalidateAttr makes the next getattr ask the server, and makes a
// GETATTR already in flight not update the cache (Linux
// fuse_invalidate_attr with an attr_version bump).
func (ino *inode) invalidateAttr() {
	ino.mu.Lock()
	ino.invalidateAttrLocked()
	ino.mu.Unlock()
}

// invalidateAttrLocked is invalidateAttr with ino.mu held.
func (ino *inode) invalidateAttrLocked() {
	ino.attrDeadline = time.Time{}
	ino.attrVersion++
}

// dropNlink records that a name of the inode went away (Linux
// drop_nlink in fuse_unlink) and invalidates its attributes.
func (ino *inode) dropNlink() {
	ino.mu.Lock()
	if ino.attr.Nlink > 0 {
		ino.attr.Nlink--
	}
	ino.invalidateAttrLocked()
	ino.mu.Unlock()
}

// getattr returns the attributes, from the cache while valid unless force
// (Linux fuse_update_get_attr). f, if not nil, is an open file whose
// handle and opener's credentials the GETATTR carries; otherwise it
// carries creds, if not nil.
//
// Errors: the GETATTR's; EIO if the server reports another file type.
func (ino *inode) getattr(ctx context.Context, creds *vfs.Credentials, f *fileHandle, force bool) (Attr, error) {
	ino.mu.Lock()
	if !force && ino.attrValidLocked() {
		a := ino.attrLocked()
		ino.mu.Unlock()
		return a, nil
	}
	v := ino.attrVersion
	ino.mu.Unlock()
	var flags uint32
	var fh uint64
	if f != nil {
		creds = &f.creds
		if !f.dir {
			flags, fh = GetattrFh, f.fh
		}
	}
	out, err := ino.fs.conn.getattr(ctx, creds, ino.nodeid, flags, fh)
	if err != nil {
		return Attr{}, err
	}
	return ino.applyAttr(&out, v)
}

// applyAttr records a GETATTR or SETATTR reply sent when attrVersion was
// v, unless a local change has happened since.
func (ino *inode) applyAttr(out *AttrOut, v uint64) (Attr, error) {
	if out.Attr.Mode&ModeType != ino.ftype {
		return Attr{}, ino.typeChanged(&out.Attr)
	}
	ino.mu.Lock()
	if ino.attrVersion == v {
		ino.setAttrLocked(&out.Attr, out.AttrValid)
	}
	// The reply's attributes as attrLocked gives them, whether or not
	// they were recorded: the client's own local size wins.
	a := out.Attr
	if ino.wb.size >= 0 {
		a.Size = uint64(ino.wb.size)
	}
	ino.mu.Unlock()
	return a, nil
}

// typeChanged reports a server that changed a node's file type under the
// same nodeid and generation: EIO, as Linux fuse_make_bad.
func (ino *inode) typeChanged(a *Attr) error {
	ino.fs.log.Warn("fuse: inode changed its file type", "nodeid", ino.nodeid,
		"mode", fmt.Sprintf("%#o", a.Mode), "type", fmt.Sprintf("%#o", ino.ftype))
	ino.invalidateAttr()
	return syscall.EIO
}

// setattr sends SETATTR (Linux fuse_do_setattr). A size change first
// writes back dirty data, then drops the cache beyond the new size. The
// requests carry the credentials of f if not nil, else creds if not nil.
func (ino *inode) setattr(ctx context.Context, creds *vfs.Credentials, f *fileHandle, opts *vfs.SetStatOptions) (vfs.Statx, error) {
	if f != nil {
		creds = &f.creds
	}
	var in SetattrIn
	m := opts.Mask
	if m&vfs.SetMode != 0 {
		in.Valid |= SetattrMode
		in.Mode = opts.Mode&0o7777 | ino.ftype
	}
	if m&vfs.SetUID != 0 {
		in.Valid |= SetattrUID
		in.UID = opts.UID
	}
	if m&vfs.SetGID != 0 {
		in.Valid |= SetattrGID
		in.GID = opts.GID
	}
	if m&vfs.SetSize != 0 {
		in.Valid |= SetattrSize
		in.Size = opts.Size
	}
	switch {
	case m&vfs.SetAtimeNow != 0:
		in.Valid |= SetattrAtime | SetattrAtimeNow
	case m&vfs.SetAtime != 0:
		in.Valid |= SetattrAtime
		in.Atime = opts.Atime
	}
	switch {
	case m&vfs.SetMtimeNow != 0:
		in.Valid |= SetattrMtime | SetattrMtimeNow
	case m&vfs.SetMtime != 0:
		in.Valid |= SetattrMtime
		in.Mtime = opts.Mtime
	}
	if f != nil && !f.dir {
		in.Valid |= SetattrFh
		in.Fh = f.fh
	}
	if in.Valid&SetattrSize != 0 {
		if err := ino.flushDirty(withCreds(ctx, creds)); err != nil {
			return vfs.Statx{}, err
		}
		if f != nil {
			in.Valid |= SetattrLockOwner
			in.LockOwner = f.owner
		}
	}
	ino.mu.Lock()
	ino.invalidateAttrLocked()
	v := ino.attrVersion
	ino.mu.Unlock()
	out, err := ino.fs.conn.setattr(ctx, creds, ino.nodeid, &in)
	if err != nil {
		return vfs.Statx{}, err
	}
	if out.Attr.Mode&ModeType != ino.ftype {
		return vfs.Statx{}, ino.typeChanged(&out.Attr)
	}
	ino.mu.Lock()
	if in.Valid&SetattrSize != 0 {
		ino.truncatedLocked(int64(in.Size))
	}
	var a Attr
	if ino.attrVersion == v {
		ino.setAttrLocked(&out.Attr, out.AttrValid)
		a = ino.attrLocked()
	} else {
		a = out.Attr
	}
	ino.mu.Unlock()
	return statx(&a), nil
}

// truncated records that the file's size is now size (an O_TRUNC open).
func (ino *inode) truncated(size int64) {
	ino.mu.Lock()
	ino.truncatedLocked(size)
	ino.invalidateAttrLocked()
	ino.mu.Unlock()
}

// truncatedLocked drops cached pages and dirty data from size on and
// records the size.
//
// Preconditions: ino.mu is held.
func (ino *inode) truncatedLocked(size int64) {
	ino.cache.truncateLocked(size)
	ino.wb.truncateLocked(ino, size)
	ino.attr.Size = uint64(size)
}
