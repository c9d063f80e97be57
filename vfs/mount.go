package vfs

// Mount is a filesystem tree attached to the share: the root mount, or a
// submount on a directory that the filesystem announced as one
// (FUSE_ATTR_SUBMOUNT, as Linux fuse_dentry_automount creates a submount
// superblock). Each mount has its own device number. Walks cross from the
// mount point into the mount root, and ".." from the mount root returns to
// the mount point's parent.
type Mount struct {
	// Immutable.
	vfs  *VirtualFilesystem
	fs   FilesystemImpl
	dev  uint64
	root *Dentry

	// Guarded by vfs.mu. parent and mountpoint are nil for the root
	// mount. A mount holds a reference on its mountpoint until it is
	// destroyed, and one on its root while attached.
	parent     *Mount
	mountpoint *Dentry
	attached   bool
}

// Dev returns the mount's device number (st_dev of every file in it).
func (m *Mount) Dev() uint64 { return m.dev }

// Filesystem returns the mount's filesystem.
func (m *Mount) Filesystem() FilesystemImpl { return m.fs }

// newMountLocked creates and attaches a mount whose root dentry holds
// rootInode. For a submount, mp is the mount point, which gains a
// reference; the root dentry shares mp's inode reference rather than
// owning one, so that each lookup result is released exactly once.
//
// Preconditions: vfs.mu is held, or v is under construction.
func (v *VirtualFilesystem) newMountLocked(parent *Mount, mp *Dentry, rootInode Inode, mode uint32) *Mount {
	m := &Mount{vfs: v, fs: v.fs, dev: v.nextDev, parent: parent, mountpoint: mp, attached: true}
	v.nextDev++
	m.root = &Dentry{vfs: v, mount: m, inode: rootInode, mode: mode, refs: 1, deadline: 1<<63 - 1}
	v.dentries++
	v.mounts++
	if mp != nil {
		mp.mounted = m
		mp.refs++
	}
	return m
}

// detachLocked detaches m and every mount below it, drops their
// unreferenced dentries, and drops the mount's reference on its root. The
// mount itself is destroyed (and its mount point reference dropped) when
// the last dentry in it goes (Linux umount with MNT_DETACH).
//
// Preconditions: vfs.mu is held.
func (v *VirtualFilesystem) detachLocked(m *Mount) {
	if !m.attached {
		return
	}
	m.attached = false
	v.mounts--
	if m.mountpoint != nil && m.mountpoint.mounted == m {
		m.mountpoint.mounted = nil
	}
	m.parent = nil
	r := m.root
	v.invalidateLocked(r)
	v.decRefLocked(r)
}
