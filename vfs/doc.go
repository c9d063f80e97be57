// Package vfs is the filesystem core of govirtiofs, modelled on gVisor's
// pkg/sentry/vfs and sized for one process and one share: a
// VirtualFilesystem with a mount table (the share's root mount and the
// submounts the server announces), a dentry cache with negative entries
// and a bounded LRU of unreferenced dentries, path resolution from the
// share root, and FileDescription, an open file with its offset.
//
// vfs owns the walk and the cache; a filesystem supplies node operations
// through FilesystemImpl and open files through FileDescriptionImpl. The
// FUSE client (package fuse) implements them; vfstest has an in-memory
// implementation with real semantics for tests. The public facade
// (package govirtiofs) calls the VirtualFilesystem methods, which mirror
// Linux system calls and return syscall.Errno errors, and wraps those into
// *fs.PathError.
//
// Path resolution follows Linux fs/namei.c: paths are slash-separated and
// relative to the share root (a leading "/" changes nothing); "." and ".."
// work and never go above the share root; ".." at a submount's root goes
// to the parent of its mount point; symlinks are followed (absolute
// targets from the share root) with ELOOP after 40; a trailing slash
// requires a directory; components longer than 255 bytes are
// ENAMETOOLONG. vfs checks no permissions: the server does, as for a FUSE
// mount without default_permissions.
//
// Dentry validity follows Linux fuse_dentry_revalidate: each dentry, and
// each negative dentry, carries a deadline from Entry.Valid; a walk that
// meets an expired one asks FilesystemImpl.Revalidate. With cache=none the
// filesystem returns Valid 0 and every walk revalidates.
//
// Inode references: see FilesystemImpl. Every inode reference the
// filesystem hands to vfs in an Entry is released exactly once.
//
// Lock order:
//
//	FileDescription.posMu (a ReadDir emit callback may call into vfs)
//	  VirtualFilesystem.renameMu
//	    Dentry.dirMu (of a parent directory; two of them only under renameMu)
//	      VirtualFilesystem.mu
//	        the filesystem's attribute-cache leaf lock (AttrCache)
//
// VirtualFilesystem.mu is never held across a call into the filesystem
// other than AttrCache.CachedGetattr, which never blocks.
// renameMu, dirMu and FileDescription.posMu are held across blocking
// filesystem calls, as Linux holds s_vfs_rename_mutex, i_rwsem and
// f_pos_lock across FUSE requests; nothing else is.
package vfs
