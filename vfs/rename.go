package vfs

import (
	"context"
	"syscall"

	"golang.org/x/sys/unix"
)

// Rename renames oldPath to newPath (renameat2(2)); flags are 0 or
// unix.RENAME_NOREPLACE, unix.RENAME_EXCHANGE, unix.RENAME_WHITEOUT, passed
// to the filesystem. Neither final component is followed if a symlink.
// The cached dentry moves with the node, mounts below it included (Linux
// d_move).
//
// Linux rules (do_renameat2, vfs_rename): EINVAL for bad flag
// combinations, moving a directory into itself, or exchanging with an
// ancestor; ENOTEMPTY when the target is an ancestor of the source; EXDEV
// across mounts; EBUSY for ".", "..", the root or a mount point (EEXIST
// for those as targets with RENAME_NOREPLACE); ENOENT for a missing source
// (or target with RENAME_EXCHANGE); EEXIST for an existing target with
// RENAME_NOREPLACE; ENOTDIR / EISDIR when a directory would replace a
// non-directory or the reverse, or a trailing slash is on a
// non-directory. Renaming a name onto another name of the same node does
// nothing and succeeds.
//
// Errors: as above, and the filesystem's (ENOTEMPTY, ...).
func (v *VirtualFilesystem) Rename(ctx context.Context, creds *Credentials, oldPath, newPath string, flags uint32) error {
	const known = unix.RENAME_NOREPLACE | unix.RENAME_EXCHANGE | unix.RENAME_WHITEOUT
	exchange := flags&unix.RENAME_EXCHANGE != 0
	noreplace := flags&unix.RENAME_NOREPLACE != 0
	if flags&^known != 0 || (exchange && flags&(unix.RENAME_NOREPLACE|unix.RENAME_WHITEOUT) != 0) {
		return syscall.EINVAL
	}
	w := v.walker(ctx, creds)
	oldDir, oldName, oldSlash, err := v.parentDir(w, oldPath)
	if err != nil {
		return err
	}
	defer v.decRef(oldDir)
	newDir, newName, newSlash, err := v.parentDir(w, newPath)
	if err != nil {
		return err
	}
	defer v.decRef(newDir)
	if oldDir.mount != newDir.mount {
		return syscall.EXDEV
	}
	if isDots(oldName) {
		return syscall.EBUSY
	}
	if isDots(newName) {
		if noreplace {
			return syscall.EEXIST
		}
		return syscall.EBUSY
	}

	// Lock order: renameMu, then the directory locks (Linux lock_rename).
	// renameMu serialises every two-directory holder, so their order does
	// not matter.
	v.renameMu.Lock()
	defer v.renameMu.Unlock()
	oldDir.dirMu.Lock()
	defer oldDir.dirMu.Unlock()
	if newDir != oldDir {
		newDir.dirMu.Lock()
		defer newDir.dirMu.Unlock()
	}

	src, err := w.lookupChild(oldDir, oldName, false, true)
	if err != nil {
		return err
	}
	if src == nil {
		return syscall.ENOENT
	}
	defer v.decRef(src)
	dst, err := w.lookupChild(newDir, newName, false, true)
	if err != nil {
		return err
	}
	if dst != nil {
		defer v.decRef(dst)
	}
	switch {
	case dst != nil && noreplace:
		return syscall.EEXIST
	case dst == nil && exchange:
		return syscall.ENOENT
	}
	if !src.IsDir() {
		if oldSlash || (!exchange && newSlash) {
			return syscall.ENOTDIR
		}
	}
	if exchange && !dst.IsDir() && newSlash {
		return syscall.ENOTDIR
	}
	v.mu.Lock()
	srcAncestor := isAncestorLocked(src, newDir)
	dstAncestor := dst != nil && isAncestorLocked(dst, oldDir)
	busy := src.mounted != nil || (dst != nil && dst.mounted != nil)
	v.mu.Unlock()
	switch {
	case srcAncestor:
		return syscall.EINVAL
	case dstAncestor && exchange:
		return syscall.EINVAL
	case dstAncestor:
		return syscall.ENOTEMPTY
	}
	if dst != nil && dst.inode == src.inode {
		return nil
	}
	if dst != nil && !exchange {
		switch {
		case src.IsDir() && !dst.IsDir():
			return syscall.ENOTDIR
		case !src.IsDir() && dst.IsDir():
			return syscall.EISDIR
		}
	}
	if busy {
		return syscall.EBUSY
	}
	var replaced Inode
	if dst != nil {
		replaced = dst.inode
	}
	if err := oldDir.mount.fs.Rename(ctx, creds, oldDir.inode, oldName, newDir.inode, newName, flags, src.inode, replaced); err != nil {
		return err
	}
	v.mu.Lock()
	if exchange {
		v.moveLocked(src, newDir, newName, dst)
		v.moveLocked(dst, oldDir, oldName, nil)
	} else {
		if dst != nil {
			v.invalidateLocked(dst)
		}
		v.moveLocked(src, newDir, newName, nil)
	}
	v.unlock()
	return nil
}

// isAncestorLocked reports whether a is d or one of d's ancestors in d's
// mount.
//
// Preconditions: vfs.mu is held.
func isAncestorLocked(a, d *Dentry) bool {
	for ; d != nil; d = d.parent {
		if d == a {
			return true
		}
	}
	return false
}

// moveLocked rehashes d as name in dir (Linux d_move). Whatever is hashed
// there is invalidated, unless it is keep (the other half of an
// exchange, which moves next). A dentry that is no longer hashed is not
// moved.
//
// Preconditions: vfs.mu is held; dir is in d's mount; the caller holds
// references on d and dir.
func (v *VirtualFilesystem) moveLocked(d, dir *Dentry, name string, keep *Dentry) {
	if d.dead || dir.dead {
		v.invalidateLocked(d)
		return
	}
	if c := dir.children[name]; c != nil && c != d && c != keep {
		v.invalidateLocked(c)
	}
	old := d.parent
	if old.children[d.name] == d {
		delete(old.children, d.name)
	}
	old.removals++
	d.parent, d.name = dir, name
	if dir.children == nil {
		dir.children = make(map[string]*Dentry)
	}
	dir.children[name] = d
	if old != dir {
		dir.refs++
		v.decRefLocked(old)
	}
}
