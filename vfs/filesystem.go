package vfs

import (
	"context"
	"time"
)

// Inode is a filesystem's node as vfs holds it: an opaque, comparable value
// (in practice a pointer to the filesystem's inode object, such as the FUSE
// client's inode keyed by nodeid). While vfs holds a reference, the same
// node must be represented by the same value, so that vfs can tell with ==
// whether a revalidation found the node it has cached.
type Inode any

// FilesystemImpl is the node-level half of a filesystem; vfs owns the path
// walk, the dentry cache and mounts, and calls these methods one node at a
// time (as Linux fs/namei.c calls inode_operations). The FUSE client
// filesystem implements it; vfstest has an in-memory one.
//
// Reference contract. Every Entry with a non-nil Inode returned by Lookup,
// Revalidate, Create, Mknod, Mkdir, Symlink, Link or carried in a Dirent
// transfers one reference to vfs. vfs calls Release exactly once for each
// such reference, and for no other inode: when the dentry caching it is
// evicted from the LRU, invalidated, unlinked or unmounted, or at once when
// vfs does not keep it (a duplicate from a racing lookup, or a revalidation
// that found the node already cached). The root Inode passed to New is the
// caller's: vfs never releases it. Hence, after VirtualFilesystem.Close and
// the Close of every FileDescription, references handed out == Release
// calls, per inode. A FUSE client counts each reference in the inode's
// nlookup and queues FORGET (batched) when the last one is released.
//
// Methods taking a dir Inode are only called with dir a directory.
// Blocking: every method except Release may block on a FUSE request. vfs
// holds no lock across these calls except the directory locks documented
// on each method (Linux holds the parent's i_rwsem the same way).
//
// Errors are syscall.Errno values; vfs passes them through unchanged.
type FilesystemImpl interface {
	// Lookup finds name in dir (Linux fuse_lookup, FUSE LOOKUP).
	//
	// A missing name is either an Entry with a nil Inode (a negative entry,
	// cached for Entry.Valid) or the error ENOENT (not cached).
	//
	// Errors: ENOENT, ENOTDIR, EACCES, EIO, ENOTCONN, ...
	// Preconditions: dir is a directory; name is a single component, not
	// "", "." or "..", at most 255 bytes. The directory lock of dir is held
	// shared (or exclusively, when the lookup is part of a create).
	// Postconditions: a non-nil Entry.Inode is a reference owned by vfs.
	Lookup(ctx context.Context, creds *Credentials, dir Inode, name string) (Entry, error)

	// Revalidate checks a cached positive dentry whose validity expired
	// (Linux fuse_dentry_revalidate: a LOOKUP of the same name). It returns
	// the entry now at name exactly as Lookup would, reference included.
	// If the returned Inode == cached and the file type is unchanged, vfs
	// keeps its dentry with the new validity and releases the returned
	// reference at once; otherwise it drops the dentry (releasing it) and
	// caches the returned entry instead. A filesystem may refresh an
	// expired entry without a request if it knows better, still returning
	// a reference.
	//
	// Errors: as Lookup. ENOENT drops the dentry; other errors fail the
	// walk and keep the dentry.
	// Preconditions: as Lookup; cached is the inode of the dentry.
	Revalidate(ctx context.Context, creds *Credentials, dir Inode, name string, cached Inode) (Entry, error)

	// Release gives back one reference obtained from an Entry (see the
	// reference contract). It must not block on a request: a FUSE client
	// decrements the reference count and, at zero, queues a FORGET of the
	// inode's nlookup for its forget batcher (Linux fuse_queue_forget).
	//
	// Preconditions: inode came from an Entry and this reference has not
	// been released. vfs may call it with no context and from any
	// goroutine.
	Release(inode Inode)

	// Getattr returns the attributes of inode (Linux fuse_getattr,
	// FUSE GETATTR; the filesystem may answer from its attribute cache).
	//
	// Errors: EIO, ENOTCONN, ESTALE, ...
	Getattr(ctx context.Context, creds *Credentials, inode Inode) (Statx, error)

	// Setattr changes attributes (Linux fuse_setattr, FUSE SETATTR) and
	// returns the attributes after the change.
	//
	// Errors: EPERM, EACCES, EINVAL, EFBIG, EROFS, ...
	// Preconditions: vfs already rejected SetSize on a directory (EISDIR)
	// and on non-regular files (EINVAL).
	Setattr(ctx context.Context, creds *Credentials, inode Inode, opts *SetStatOptions) (Statx, error)

	// Readlink returns a symlink's target (Linux fuse_get_link, FUSE
	// READLINK). vfs calls it for every symlink it follows, so a
	// filesystem may cache targets.
	//
	// Errors: EINVAL if inode is not a symlink, EIO, ...
	Readlink(ctx context.Context, creds *Credentials, inode Inode) (string, error)

	// Create atomically creates and opens a regular file (Linux
	// fuse_atomic_open, FUSE CREATE; a filesystem without CREATE may do
	// MKNOD then OPEN). flags are the open flags (O_ACCMODE, O_APPEND,
	// O_TRUNC, O_EXCL...); mode has S_IFREG set and is not masked by vfs.
	//
	// Errors: EEXIST (when flags has O_EXCL and the name appeared), EACCES,
	// ENOSPC, EDQUOT, ...
	// Preconditions: name is a valid component that vfs found negative,
	// or has no dentry for (then flags has O_EXCL, and EEXIST makes vfs
	// look the name up); the directory lock of dir is held exclusively.
	// Postconditions: the Entry's reference is owned by vfs; the returned
	// FileDescriptionImpl is owned by vfs, which calls its Release once.
	Create(ctx context.Context, creds *Credentials, dir Inode, name string, flags int, mode uint32) (Entry, FileDescriptionImpl, error)

	// Mknod creates a non-directory node: regular, FIFO, socket, device
	// (Linux fuse_mknod, FUSE MKNOD). mode includes the file type.
	//
	// Errors: EEXIST, EPERM, EACCES, ENOSPC, ...
	// Preconditions: as Create.
	// Postconditions: a non-nil Entry.Inode is owned by vfs. A filesystem
	// may return a negative Entry; vfs then forgets the name.
	Mknod(ctx context.Context, creds *Credentials, dir Inode, name string, mode uint32, rdev uint32) (Entry, error)

	// Mkdir creates a directory (Linux fuse_mkdir, FUSE MKDIR). mode
	// holds permission bits only.
	//
	// Errors, Preconditions, Postconditions: as Mknod.
	Mkdir(ctx context.Context, creds *Credentials, dir Inode, name string, mode uint32) (Entry, error)

	// Symlink creates a symbolic link to target (Linux fuse_symlink,
	// FUSE SYMLINK).
	//
	// Errors, Preconditions, Postconditions: as Mknod; target is non-empty.
	Symlink(ctx context.Context, creds *Credentials, dir Inode, name string, target string) (Entry, error)

	// Link creates a hard link to inode (Linux fuse_link, FUSE LINK).
	//
	// Errors: EMLINK, EPERM, EEXIST, ...
	// Preconditions: as Mknod; inode is not a directory and lives in the
	// same mount as dir.
	// Postconditions: as Mknod.
	Link(ctx context.Context, creds *Credentials, inode Inode, dir Inode, name string) (Entry, error)

	// Unlink removes a non-directory name (Linux fuse_unlink, FUSE
	// UNLINK). child is the inode vfs found at name, so the filesystem
	// can update its nlink and invalidate its attributes.
	//
	// Errors: EACCES, EPERM, EBUSY, ...
	// Preconditions: child is cached at name and is not a directory or a
	// mount point; the directory lock of dir is held exclusively.
	Unlink(ctx context.Context, creds *Credentials, dir Inode, name string, child Inode) error

	// Rmdir removes a directory (Linux fuse_rmdir, FUSE RMDIR).
	//
	// Errors: ENOTEMPTY, EACCES, EBUSY, ...
	// Preconditions: as Unlink, with child a directory.
	Rmdir(ctx context.Context, creds *Credentials, dir Inode, name string, child Inode) error

	// Rename renames oldName in oldDir to newName in newDir (Linux
	// fuse_rename2, FUSE RENAME2 or RENAME). flags are RENAME_NOREPLACE,
	// RENAME_EXCHANGE or RENAME_WHITEOUT, passed through. child is the
	// inode at oldName; replaced is the inode at newName, or nil.
	//
	// Errors: ENOTEMPTY, EEXIST, EINVAL (flags unsupported), EXDEV, ...
	// Preconditions: vfs has done the checks of Linux do_renameat2 and
	// vfs_rename (same mount, no mount points, not into itself, type
	// compatibility); both directory locks are held exclusively, with the
	// rename lock.
	Rename(ctx context.Context, creds *Credentials, oldDir Inode, oldName string, newDir Inode, newName string, flags uint32, child, replaced Inode) error

	// Open opens an existing node (Linux fuse_open/fuse_dir_open, FUSE
	// OPEN or OPENDIR). flags are the open flags without O_CREAT/O_EXCL;
	// when O_TRUNC is set on a regular file the filesystem truncates it
	// (FUSE atomic_o_trunc, or a SETATTR of size 0).
	//
	// Errors: EACCES, ENXIO, ...
	// Preconditions: vfs has rejected writes to directories (EISDIR) and
	// opening a symlink (ELOOP).
	// Postconditions: the FileDescriptionImpl is owned by vfs, which calls
	// its Release once.
	Open(ctx context.Context, creds *Credentials, inode Inode, flags int) (FileDescriptionImpl, error)

	// Statfs describes the filesystem holding inode (FUSE STATFS).
	Statfs(ctx context.Context, creds *Credentials, inode Inode) (Statfs, error)

	// Getxattr returns an extended attribute's value (FUSE GETXATTR; the
	// filesystem does the size probe).
	//
	// Errors: ENODATA (no such attribute), ENOTSUP, ERANGE, ...
	Getxattr(ctx context.Context, creds *Credentials, inode Inode, name string) ([]byte, error)

	// Setxattr sets an extended attribute (FUSE SETXATTR); flags are
	// XATTR_CREATE or XATTR_REPLACE.
	//
	// Errors: EEXIST, ENODATA, ENOTSUP, E2BIG, ENOSPC, ...
	Setxattr(ctx context.Context, creds *Credentials, inode Inode, name string, value []byte, flags int) error

	// Listxattr lists extended attribute names (FUSE LISTXATTR).
	Listxattr(ctx context.Context, creds *Credentials, inode Inode) ([]string, error)

	// Removexattr removes an extended attribute (FUSE REMOVEXATTR).
	//
	// Errors: ENODATA, ENOTSUP, ...
	Removexattr(ctx context.Context, creds *Credentials, inode Inode, name string) error

	// Sync writes back everything cached for the filesystem (Linux
	// syncfs: writeback of dirty pages, then FUSE SYNCFS where supported).
	Sync(ctx context.Context) error
}

// AttrCache is implemented by a FilesystemImpl that caches attributes, so
// that a stat whose path and attributes are all cached costs no
// reference-counted call and one clock reading (Linux vfs_getattr on a
// FUSE inode whose attributes are still valid: fuse_update_get_attr
// without a request). vfs asks it before Getattr.
type AttrCache interface {
	// CachedGetattr returns inode's attributes if its cache holds them
	// and they are valid at now, or false (then vfs calls Getattr). now
	// is a reading of the clock given to vfs in Options.Now, which the
	// filesystem must share. (The attributes are returned, not stored
	// through a pointer: a pointer passed to an interface method escapes,
	// which would make every cached stat allocate.)
	//
	// Preconditions: VirtualFilesystem.mu is held (the one filesystem
	// call made under it), so the method must not block, send a request
	// or call into vfs: it may take leaf locks only. inode is the inode
	// of a cached positive dentry.
	CachedGetattr(inode Inode, now time.Time) (Statx, bool)
}
