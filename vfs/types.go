package vfs

import (
	"time"
)

// Credentials identify the caller of one operation. The FUSE layer copies
// them into each request's fuse_in_header (uid, gid), as Linux does from
// current_fsuid()/current_fsgid(). vfs itself checks no permissions: like a
// FUSE mount without default_permissions, the server decides.
type Credentials struct {
	UID uint32
	GID uint32
}

// Statx is a node's attributes as vfs reports them (a subset of Linux struct
// statx). Dev is always filled in by vfs from the Mount the node was reached
// through; whatever a filesystem puts there is overwritten.
type Statx struct {
	Ino     uint64
	Dev     uint64 // the mount's device number (st_dev)
	Mode    uint32 // file type (S_IFMT bits) and permissions
	Nlink   uint32
	UID     uint32
	GID     uint32
	Rdev    uint64
	Size    uint64
	Blocks  uint64 // 512-byte blocks
	Blksize uint32
	Atime   time.Time
	Mtime   time.Time
	Ctime   time.Time
}

// IsDir reports whether the attributes describe a directory.
func (s *Statx) IsDir() bool { return s.Mode&S_IFMT == S_IFDIR }

// File type bits of a mode, as in Linux include/uapi/linux/stat.h.
const (
	S_IFMT   = 0o170000
	S_IFSOCK = 0o140000
	S_IFLNK  = 0o120000
	S_IFREG  = 0o100000
	S_IFBLK  = 0o060000
	S_IFDIR  = 0o040000
	S_IFCHR  = 0o020000
	S_IFIFO  = 0o010000
)

// SetStatMask says which fields of SetStatOptions apply (the FATTR_* bits
// of a FUSE SETATTR, the ATTR_* bits of Linux struct iattr).
type SetStatMask uint32

const (
	SetMode     SetStatMask = 1 << iota // chmod
	SetUID                              // chown owner
	SetGID                              // chown group
	SetSize                             // truncate
	SetAtime                            // atime = Atime
	SetMtime                            // mtime = Mtime
	SetAtimeNow                         // atime = server's now (UTIME_NOW)
	SetMtimeNow                         // mtime = server's now (UTIME_NOW)
)

// SetStatOptions is one SetStat request (Linux notify_change).
type SetStatOptions struct {
	Mask  SetStatMask
	Mode  uint32 // permission bits only (07777)
	UID   uint32
	GID   uint32
	Size  uint64
	Atime time.Time
	Mtime time.Time
}

// Statfs describes a filesystem (Linux struct kstatfs, FUSE fuse_kstatfs).
type Statfs struct {
	Blocks  uint64 // total, in Frsize units
	Bfree   uint64
	Bavail  uint64
	Files   uint64
	Ffree   uint64
	Bsize   uint32
	Namelen uint32
	Frsize  uint32
}

// Directory entry types (d_type), as in Linux include/linux/fs_types.h.
const (
	DT_UNKNOWN = 0
	DT_FIFO    = 1
	DT_CHR     = 2
	DT_DIR     = 4
	DT_BLK     = 6
	DT_REG     = 8
	DT_LNK     = 10
	DT_SOCK    = 12
)

// DirentType converts a mode's file type into a d_type value.
func DirentType(mode uint32) uint8 { return uint8((mode & S_IFMT) >> 12) }

// Dirent is one directory entry produced by FileDescriptionImpl.ReadDir.
type Dirent struct {
	Name string
	Ino  uint64
	Type uint8 // DT_*
	// Next is the cookie that continues the listing after this entry (the
	// FUSE dirent "off"); it becomes the file description's offset once
	// the entry has been consumed.
	Next int64
	// Entry, if not nil and its Inode is non-nil, is a lookup result that
	// came with the entry (READDIRPLUS). Its reference passes to vfs,
	// which caches it as a dentry under the directory or releases it,
	// exactly once, and clears Entry before the Dirent goes further.
	// Entries for "." and ".." are always released, never cached. A
	// pointer, so that a Dirent is small enough to pass in registers: a
	// listing hands every entry through two callbacks.
	Entry *Entry
}

// Entry is the result of a lookup: the node a name refers to and how long
// vfs may trust that without asking again (a FUSE fuse_entry_out).
type Entry struct {
	// Inode is the node, or nil for a negative entry (the name does not
	// exist). A non-nil Inode carries one reference that passes to vfs;
	// vfs gives it back with exactly one FilesystemImpl.Release.
	Inode Inode
	// Mode is the node's file type and permission bits; vfs uses the type
	// bits (directory, symlink) to walk. Ignored for negative entries.
	Mode uint32
	// Valid is how long vfs may use this entry (positive or negative)
	// without calling Revalidate: FUSE entry_valid. Zero means every later
	// walk through it revalidates (cache=none); a negative entry with
	// Valid zero is not cached at all.
	Valid time.Duration
	// Submount says the node is the root of a submount
	// (FUSE_ATTR_SUBMOUNT): vfs mounts it with its own device number and
	// walks cross into it. Only meaningful for directories.
	Submount bool
	// HasAttr says Attr holds the node's attributes as the lookup reply
	// carried them (FUSE fuse_entry_out.attr). A stat whose walk just
	// made this lookup answers with them instead of calling Getattr,
	// which could say nothing newer (Dev is filled in by vfs). A
	// filesystem whose Getattr is answered from a cache anyway may leave
	// it unset. Attr is a value, not a pointer, so that a lookup reply
	// costs no allocation for it.
	HasAttr bool
	Attr    Statx
}

// LockRequest is a byte-range or whole-file lock request (FUSE
// SETLK/SETLKW, Linux struct file_lock).
type LockRequest struct {
	// Type is unix.F_RDLCK, unix.F_WRLCK or unix.F_UNLCK.
	Type int16
	// Start and Len select bytes [Start, Start+Len); Len 0 means to the
	// end of the file. Ignored when Flock is set.
	Start int64
	Len   int64
	// Flock asks for BSD flock(2) semantics on the whole file
	// (FUSE_LK_FLOCK) instead of a POSIX record lock.
	Flock bool
}

// CacheStats reports the dentry cache, for tests and diagnostics.
type CacheStats struct {
	Dentries     int // live dentries, referenced or not, including mount roots
	Unreferenced int // dentries on the LRU list
	Negative     int // negative dentries (all are on the LRU list)
	Mounts       int // attached mounts, the root mount included
}
