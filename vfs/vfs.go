package vfs

import (
	"context"
	"math"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Options configure a VirtualFilesystem.
type Options struct {
	// MaxCachedDentries bounds the LRU list of unreferenced dentries,
	// negative ones included (Linux keeps them until memory pressure; a
	// userspace driver bounds them so that FORGETs flow). 0 means 1024;
	// negative means cache no unreferenced dentry at all.
	MaxCachedDentries int
	// Dev is the device number of the root mount; submounts get Dev+1,
	// Dev+2, ... in the order they are first crossed. 0 means
	// unix.Mkdev(0, 0x80), an anonymous device number.
	Dev uint64
	// Now is the clock for entry validity; nil means time.Now. Tests set
	// it to a fake clock.
	Now func() time.Time
}

// VirtualFilesystem is one share as a tree of mounts: the root mount and the
// submounts the filesystem announces below it. It owns the dentry cache and
// resolves paths from the share root (Linux fs/namei.c with one namespace
// and no cwd). Its methods mirror Linux system calls and return
// syscall.Errno errors. It is safe for concurrent use.
type VirtualFilesystem struct {
	// renameMu serialises renames, like Linux s_vfs_rename_mutex, so that
	// the ancestor checks stay true while the request is in flight. It is
	// held across FilesystemImpl.Rename.
	renameMu sync.Mutex

	// mu guards the dentry tree (parent, name, children, refs, deadline,
	// mounted, LRU links of every Dentry), the mount table (parent,
	// mountpoint, attached of every Mount) and the fields below. It is
	// never held across a FilesystemImpl or FileDescriptionImpl call.
	mu sync.Mutex
	// root is the root mount.
	root *Mount
	// lruHead is the most recently used unreferenced dentry, lruTail the
	// least; lruLen counts them.
	lruHead, lruTail *Dentry
	lruLen           int
	evicting         bool
	dentries         int
	negatives        int
	mounts           int
	nextDev          uint64
	closed           bool
	// pending are inode references to release once mu is dropped. Its
	// array is kept from one locked section to the next (see unlock).
	pending []Inode

	// Immutable.
	fs        FilesystemImpl
	attrCache AttrCache // fs, if it implements AttrCache; or nil
	maxCached int
	clock     func() time.Time
	epoch     time.Time
}

// New returns a VirtualFilesystem whose root mount is fs with root as its
// root directory. root stays the caller's reference: vfs never releases it.
func New(fs FilesystemImpl, root Inode, opts Options) *VirtualFilesystem {
	v := &VirtualFilesystem{fs: fs, maxCached: opts.MaxCachedDentries, clock: opts.Now}
	v.attrCache, _ = fs.(AttrCache)
	if v.maxCached == 0 {
		v.maxCached = 1024
	} else if v.maxCached < 0 {
		v.maxCached = 0
	}
	if v.clock == nil {
		v.clock = time.Now
	}
	v.epoch = v.clock()
	v.nextDev = opts.Dev
	if v.nextDev == 0 {
		v.nextDev = unix.Mkdev(0, 0x80)
	}
	m := v.newMountLocked(nil, nil, root, S_IFDIR|0o755)
	v.root = m
	return v
}

// now returns the current time in nanoseconds since v was created.
func (v *VirtualFilesystem) now() int64 { return int64(v.clock().Sub(v.epoch)) }

// deadline returns now+valid without overflow.
func deadline(now int64, valid time.Duration) int64 {
	if valid <= 0 {
		return now
	}
	if now > math.MaxInt64-int64(valid) {
		return math.MaxInt64
	}
	return now + int64(valid)
}

// unlock drops mu and then releases the inode references that the locked
// section dropped, so that Release never runs under mu. A few references
// (a lookup that found its dentry cached hands back one) are copied out
// to the stack, and pending keeps its array: a fresh slice per locked
// section was an allocation per LOOKUP in cache none.
func (v *VirtualFilesystem) unlock() {
	if len(v.pending) == 0 {
		v.mu.Unlock()
		return
	}
	var buf [4]Inode
	var p []Inode
	if len(v.pending) <= len(buf) {
		p = buf[:copy(buf[:], v.pending)]
		clear(v.pending)
		v.pending = v.pending[:0]
	} else {
		p = v.pending
		v.pending = nil
	}
	v.mu.Unlock()
	for _, ino := range p {
		v.fs.Release(ino)
	}
}

// RootMount returns the root mount.
func (v *VirtualFilesystem) RootMount() *Mount { return v.root }

// CacheStats reports the size of the dentry cache.
func (v *VirtualFilesystem) CacheStats() CacheStats {
	v.mu.Lock()
	defer v.mu.Unlock()
	return CacheStats{Dentries: v.dentries, Unreferenced: v.lruLen, Negative: v.negatives, Mounts: v.mounts}
}

// Close unmounts the share: it detaches every mount and releases every
// cached dentry. Open file descriptions keep their dentries until they are
// closed; later path operations fail with ENOTCONN.
//
// Errors: ENOTCONN if already closed.
func (v *VirtualFilesystem) Close(ctx context.Context) error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return syscall.ENOTCONN
	}
	v.closed = true
	v.detachLocked(v.root)
	v.unlock()
	return nil
}

// rootRef returns the root dentry with a new reference.
//
// Errors: ENOTCONN after Close.
func (v *VirtualFilesystem) rootRef() (*Dentry, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil, syscall.ENOTCONN
	}
	d := v.root.root
	v.incRefLocked(d)
	return d, nil
}
