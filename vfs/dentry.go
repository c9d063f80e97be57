package vfs

import (
	"sync"
	"sync/atomic"
)

// Dentry is a cached name in a directory of one mount: positive (it holds
// an inode reference) or negative (the name does not exist, until its
// deadline). Dentries form a tree per mount; each child holds a reference
// on its parent, a mount on its root and on its mount point, and a
// FileDescription on its dentry. Unreferenced dentries stay cached on an
// LRU list of bounded length (Linux dcache with dput and the dentry LRU).
type Dentry struct {
	// Immutable.
	vfs   *VirtualFilesystem
	mount *Mount
	inode Inode  // nil for a negative dentry
	mode  uint32 // file type and permissions at lookup time

	// dirMu is the directory lock (Linux i_rwsem of a directory): held
	// shared across FilesystemImpl.Lookup/Revalidate in this directory and
	// exclusively across operations that add or remove names in it, so
	// that a lookup reply cannot re-cache a name that a concurrent unlink
	// removed. It is held across blocking filesystem calls.
	dirMu sync.RWMutex

	// Guarded by vfs.mu.
	parent   *Dentry // nil for a mount root
	name     string
	children map[string]*Dentry // hashed children, positive and negative
	refs     int
	deadline int64 // entry validity, in vfs.now() units
	hashed   bool  // present in parent.children
	dead     bool  // unhashed: invalidated, unlinked or unmounted
	gone     bool  // destroyed: counted out and inode released
	// removals counts names removed from this directory (unlink, rmdir,
	// rename, invalidation of a child), so that a READDIRPLUS listing
	// that raced with one does not re-cache a stale name.
	removals uint64
	mounted  *Mount
	// LRU links, valid while onLRU.
	lruPrev, lruNext *Dentry
	onLRU            bool

	// info is the caller's slot (see StatInfo).
	info InfoSlot
}

// InfoSlot is where the layer above vfs keeps a value derived from a
// node's attributes with the node's dentry, so that a stat of an
// unchanged node can hand it out again instead of building it anew (the
// facade keeps its last fs.FileInfo there). vfs never reads it. Safe for
// concurrent use; the value must be of one concrete type.
type InfoSlot = atomic.Value

// Inode returns the dentry's inode, nil for a negative dentry.
func (d *Dentry) Inode() Inode { return d.inode }

// Mount returns the mount the dentry belongs to.
func (d *Dentry) Mount() *Mount { return d.mount }

// Mode returns the file type and permissions the node had when looked up.
func (d *Dentry) Mode() uint32 { return d.mode }

// IsDir reports whether the dentry is a directory.
func (d *Dentry) IsDir() bool { return d.inode != nil && d.mode&S_IFMT == S_IFDIR }

func (d *Dentry) isSymlink() bool { return d.inode != nil && d.mode&S_IFMT == S_IFLNK }

// ownsRef reports whether the dentry holds an inode reference to release:
// positive dentries other than mount roots (the share root is the
// caller's; a submount root shares its mount point's reference).
func (d *Dentry) ownsRef() bool { return d.inode != nil && d.parent != nil }

// incRefLocked takes a reference.
//
// Preconditions: vfs.mu is held; d is not destroyed.
func (v *VirtualFilesystem) incRefLocked(d *Dentry) {
	if d.refs == 0 && d.onLRU {
		v.lruRemoveLocked(d)
	}
	d.refs++
}

// decRef drops a reference taken outside mu.
func (v *VirtualFilesystem) decRef(d *Dentry) {
	v.mu.Lock()
	v.decRefLocked(d)
	v.unlock()
}

// decRefLocked drops a reference (Linux dput). At zero, a hashed dentry of
// an attached mount goes on the LRU list; any other is destroyed, which
// drops its reference on its parent, and so on up.
//
// Preconditions: vfs.mu is held.
func (v *VirtualFilesystem) decRefLocked(d *Dentry) {
	for d != nil {
		if d.refs <= 0 || d.gone {
			return // a reference-counting bug; never underflow
		}
		d.refs--
		if d.refs > 0 {
			return
		}
		if !d.dead && d.hashed && d.mount.attached {
			v.lruPushLocked(d)
			v.evictLocked()
			return
		}
		d = v.destroyLocked(d)
	}
}

// destroyLocked frees an unreferenced dentry: unhashes it, queues its
// inode release, and returns the dentry whose reference it held (its
// parent, or for a mount root the mount point), or nil.
//
// Preconditions: vfs.mu is held; d.refs == 0.
func (v *VirtualFilesystem) destroyLocked(d *Dentry) *Dentry {
	if d.gone {
		return nil
	}
	if d.onLRU {
		v.lruRemoveLocked(d)
	}
	v.unhashLocked(d)
	d.dead = true
	d.gone = true
	v.dentries--
	if d.inode == nil {
		v.negatives--
	}
	if d.ownsRef() {
		v.pending = append(v.pending, d.inode)
	}
	if d.parent != nil {
		return d.parent
	}
	m := d.mount
	mp := m.mountpoint
	m.mountpoint = nil
	return mp
}

// unhashLocked removes d from its parent's children.
//
// Preconditions: vfs.mu is held.
func (v *VirtualFilesystem) unhashLocked(d *Dentry) {
	if d.hashed {
		if d.parent.children[d.name] == d {
			delete(d.parent.children, d.name)
		}
		d.hashed = false
		d.parent.removals++
	}
}

// removals returns dir's removal count.
func (v *VirtualFilesystem) removals(dir *Dentry) uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return dir.removals
}

// invalidateLocked unhashes d and everything below it (Linux
// d_invalidate): mounts on them are detached, unreferenced ones are
// destroyed, referenced ones live on, unreachable, until their last
// reference goes.
//
// Preconditions: vfs.mu is held.
func (v *VirtualFilesystem) invalidateLocked(d *Dentry) {
	if d.dead {
		return
	}
	v.unhashLocked(d)
	d.dead = true
	if m := d.mounted; m != nil {
		v.detachLocked(m)
	}
	if d.refs == 0 {
		// Unreferenced, so it has no children.
		v.decRefChainLocked(v.destroyLocked(d))
		return
	}
	for _, c := range d.children {
		v.invalidateLocked(c)
	}
}

// decRefChainLocked drops the reference that a destroyed dentry held.
//
// Preconditions: vfs.mu is held.
func (v *VirtualFilesystem) decRefChainLocked(d *Dentry) {
	if d != nil {
		v.decRefLocked(d)
	}
}

// lruPushLocked puts an unreferenced dentry at the most-recent end.
//
// Preconditions: vfs.mu is held; d is not on the list.
func (v *VirtualFilesystem) lruPushLocked(d *Dentry) {
	d.onLRU = true
	d.lruPrev = nil
	d.lruNext = v.lruHead
	if v.lruHead != nil {
		v.lruHead.lruPrev = d
	} else {
		v.lruTail = d
	}
	v.lruHead = d
	v.lruLen++
}

// lruRemoveLocked takes d off the list.
//
// Preconditions: vfs.mu is held; d is on the list.
func (v *VirtualFilesystem) lruRemoveLocked(d *Dentry) {
	if d.lruPrev != nil {
		d.lruPrev.lruNext = d.lruNext
	} else {
		v.lruHead = d.lruNext
	}
	if d.lruNext != nil {
		d.lruNext.lruPrev = d.lruPrev
	} else {
		v.lruTail = d.lruPrev
	}
	d.lruPrev, d.lruNext, d.onLRU = nil, nil, false
	v.lruLen--
}

// lruTouchLocked marks an unreferenced dentry as recently used.
//
// Preconditions: vfs.mu is held.
func (v *VirtualFilesystem) lruTouchLocked(d *Dentry) {
	if d.onLRU && v.lruHead != d {
		v.lruRemoveLocked(d)
		v.lruPushLocked(d)
	}
}

// evictLocked destroys least recently used dentries until the list fits
// (Linux prune_dcache_sb). Evicting a leaf may put its parent on the list,
// which the loop then considers too.
//
// Preconditions: vfs.mu is held.
func (v *VirtualFilesystem) evictLocked() {
	if v.evicting {
		return // an outer call is already looping
	}
	v.evicting = true
	for v.lruLen > v.maxCached {
		v.decRefChainLocked(v.destroyLocked(v.lruTail))
	}
	v.evicting = false
}

// newChildLocked creates a dentry for e under parent with one reference for
// the caller (a negative dentry gets none and goes on the LRU list). It is
// hashed unless parent is dead. A submount entry gets its mount attached.
//
// Preconditions: vfs.mu is held; parent has no hashed child called name.
func (v *VirtualFilesystem) newChildLocked(parent *Dentry, name string, e *Entry, now int64) *Dentry {
	d := &Dentry{vfs: v, mount: parent.mount, inode: e.Inode, mode: e.Mode, parent: parent, name: name, deadline: deadline(now, e.Valid)}
	v.dentries++
	parent.refs++ // cannot be 0: the caller holds one
	if parent.dead {
		d.dead = true
	} else {
		if parent.children == nil {
			parent.children = make(map[string]*Dentry)
		}
		parent.children[name] = d
		d.hashed = true
	}
	if e.Inode == nil {
		v.negatives++
		if d.dead {
			v.decRefChainLocked(v.destroyLocked(d))
			return nil
		}
		v.lruPushLocked(d)
		v.evictLocked()
		return nil
	}
	d.refs = 1
	if e.Submount && d.IsDir() && !d.dead {
		v.newMountLocked(parent.mount, d, e.Inode, e.Mode)
	}
	return d
}

// insertLocked caches a lookup result for name under parent and returns
// the positive dentry with a reference for the caller, or nil for a
// negative result. A cached dentry for the same node is kept and refreshed
// (the new reference is released); a different one is invalidated.
// Negative results are cached only when e.Valid > 0.
//
// Preconditions: vfs.mu is held; the caller holds a reference on parent.
func (v *VirtualFilesystem) insertLocked(parent *Dentry, name string, e *Entry, now int64) *Dentry {
	if c := parent.children[name]; c != nil {
		if e.Inode != nil && c.inode == e.Inode && c.mode&S_IFMT == e.Mode&S_IFMT {
			c.deadline = deadline(now, e.Valid)
			v.pending = append(v.pending, e.Inode)
			v.incRefLocked(c)
			return c
		}
		v.invalidateLocked(c)
	}
	if e.Inode == nil && e.Valid <= 0 {
		return nil
	}
	return v.newChildLocked(parent, name, e, now)
}

// cacheDirent caches (or releases) the entry a READDIRPLUS dirent carried
// (Linux fuse_direntplus_link).
//
// gen is dir.removals when the listing started.
func (v *VirtualFilesystem) cacheDirent(dir *Dentry, de *Dirent, gen uint64) {
	now := v.now()
	v.mu.Lock()
	if isDots(de.Name) || len(de.Name) > maxNameLen || hasSlash(de.Name) || dir.dead || v.closed || dir.removals != gen {
		v.pending = append(v.pending, de.Entry.Inode)
	} else if c := v.insertLocked(dir, de.Name, de.Entry, now); c != nil {
		v.decRefLocked(c)
	}
	v.unlock()
}

func hasSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' || s[i] == 0 {
			return true
		}
	}
	return false
}
