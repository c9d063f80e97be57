package vfstest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/vfs"
)

// Inode is a node of the in-memory tree. Its fields are guarded by FS.mu.
type Inode struct {
	ino      uint64
	mode     uint32
	uid, gid uint32
	rdev     uint64
	nlink    uint32 // links from directories (non-directories)
	data     []byte
	target   string
	children map[string]*Inode
	xattrs   map[string][]byte
	submount bool
	atime    time.Time
	mtime    time.Time
	ctime    time.Time
	// locks maps a lock owner (an open file) to its lock type.
	locks map[*File]int16
}

// Ino returns the inode number.
func (n *Inode) Ino() uint64 { return n.ino }

// Options configure an FS.
type Options struct {
	// EntryValid is the validity of positive entries (0: revalidate on
	// every walk, like cache=none).
	EntryValid time.Duration
	// NegativeValid is the validity of negative entries; 0 makes Lookup
	// of a missing name return ENOENT instead.
	NegativeValid time.Duration
	// ReaddirPlus makes ReadDir return an Entry with each dirent.
	ReaddirPlus bool
}

// FS is an in-memory filesystem implementing vfs.FilesystemImpl.
type FS struct {
	// mu guards every field below and every Inode.
	mu         sync.Mutex
	root       *Inode
	nextIno    uint64
	opts       Options
	refs       map[*Inode]int // references held by vfs
	handedOut  int
	released   int
	calls      map[string]int
	violations []string
	// lockChanged is closed and replaced whenever a lock is released.
	lockChanged chan struct{}
	// LookupHook, if set, is called (without mu) at the start of every
	// Lookup and Revalidate; tests use it to block or count.
	lookupHook func(name string)
}

// New returns an FS whose root is an empty directory (mode 0755).
func New(opts Options) *FS {
	f := &FS{opts: opts, nextIno: 1, refs: make(map[*Inode]int), calls: make(map[string]int), lockChanged: make(chan struct{})}
	f.root = f.newInodeLocked(vfs.S_IFDIR | 0o755)
	return f
}

// Root returns the root directory, to pass to vfs.New.
func (f *FS) Root() vfs.Inode { return f.root }

// SetOptions changes the options for later replies.
func (f *FS) SetOptions(opts Options) {
	f.mu.Lock()
	f.opts = opts
	f.mu.Unlock()
}

// SetLookupHook installs a function called at the start of each Lookup and
// Revalidate, without FS.mu held.
func (f *FS) SetLookupHook(h func(name string)) {
	f.mu.Lock()
	f.lookupHook = h
	f.mu.Unlock()
}

// Outstanding returns how many inode references vfs holds.
func (f *FS) Outstanding() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.handedOut - f.released
}

// HandedOut returns how many inode references were handed to vfs in all.
func (f *FS) HandedOut() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.handedOut
}

// Calls returns how many times op ("Lookup", "Revalidate", "Getattr",
// "Readlink", ...) was called.
func (f *FS) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// Violations lists breaches of the vfs contract seen so far.
func (f *FS) Violations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.violations...)
}

func (f *FS) violate(format string, args ...any) {
	f.violations = append(f.violations, fmt.Sprintf(format, args...))
}

func (f *FS) newInodeLocked(mode uint32) *Inode {
	now := time.Unix(1700000000, 0)
	n := &Inode{ino: f.nextIno, mode: mode, nlink: 1, atime: now, mtime: now, ctime: now}
	f.nextIno++
	if mode&vfs.S_IFMT == vfs.S_IFDIR {
		n.children = make(map[string]*Inode)
	}
	return n
}

func isDir(n *Inode) bool { return n.mode&vfs.S_IFMT == vfs.S_IFDIR }

// inode converts a vfs.Inode, recording a violation for a foreign value.
func (f *FS) inode(op string, i vfs.Inode) (*Inode, error) {
	n, ok := i.(*Inode)
	if !ok || n == nil {
		f.violate("%s: foreign inode %T", op, i)
		return nil, syscall.EIO
	}
	if n != f.root && f.refs[n] == 0 {
		f.violate("%s: inode %d used without a reference", op, n.ino)
	}
	return n, nil
}

func (f *FS) dir(op string, i vfs.Inode) (*Inode, error) {
	n, err := f.inode(op, i)
	if err != nil {
		return nil, err
	}
	if !isDir(n) {
		f.violate("%s: inode %d is not a directory", op, n.ino)
		return nil, syscall.ENOTDIR
	}
	return n, nil
}

func (f *FS) checkName(op, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > 255 {
		f.violate("%s: bad name %q", op, name)
		return syscall.EINVAL
	}
	return nil
}

// entryLocked hands out a reference to n.
func (f *FS) entryLocked(n *Inode) vfs.Entry {
	f.refs[n]++
	f.handedOut++
	return vfs.Entry{Inode: n, Mode: n.mode, Valid: f.opts.EntryValid, Submount: n.submount}
}

func (f *FS) begin(op string) {
	f.mu.Lock()
	f.calls[op]++
}

func (f *FS) lookup(op string, dir vfs.Inode, name string) (vfs.Entry, error) {
	f.mu.Lock()
	h := f.lookupHook
	f.mu.Unlock()
	if h != nil {
		h(name)
	}
	f.begin(op)
	defer f.mu.Unlock()
	d, err := f.dir(op, dir)
	if err != nil {
		return vfs.Entry{}, err
	}
	if err := f.checkName(op, name); err != nil {
		return vfs.Entry{}, err
	}
	c := d.children[name]
	if c == nil {
		if f.opts.NegativeValid > 0 {
			return vfs.Entry{Valid: f.opts.NegativeValid}, nil
		}
		return vfs.Entry{}, syscall.ENOENT
	}
	return f.entryLocked(c), nil
}

// Lookup implements vfs.FilesystemImpl.Lookup.
func (f *FS) Lookup(ctx context.Context, creds *vfs.Credentials, dir vfs.Inode, name string) (vfs.Entry, error) {
	return f.lookup("Lookup", dir, name)
}

// Revalidate implements vfs.FilesystemImpl.Revalidate as a fresh lookup.
func (f *FS) Revalidate(ctx context.Context, creds *vfs.Credentials, dir vfs.Inode, name string, cached vfs.Inode) (vfs.Entry, error) {
	return f.lookup("Revalidate", dir, name)
}

// Release implements vfs.FilesystemImpl.Release.
func (f *FS) Release(i vfs.Inode) {
	f.begin("Release")
	defer f.mu.Unlock()
	n, ok := i.(*Inode)
	if !ok || n == nil {
		f.violate("Release: foreign inode %T", i)
		return
	}
	if f.refs[n] <= 0 {
		f.violate("Release: inode %d released more often than handed out", n.ino)
		return
	}
	f.refs[n]--
	if f.refs[n] == 0 {
		delete(f.refs, n)
	}
	f.released++
}

func statLocked(n *Inode) vfs.Statx {
	st := vfs.Statx{Ino: n.ino, Mode: n.mode, Nlink: n.nlink, UID: n.uid, GID: n.gid, Rdev: n.rdev,
		Blksize: 4096, Atime: n.atime, Mtime: n.mtime, Ctime: n.ctime}
	switch n.mode & vfs.S_IFMT {
	case vfs.S_IFDIR:
		st.Nlink = 2
		for _, c := range n.children {
			if isDir(c) {
				st.Nlink++
			}
		}
		st.Size = 4096
	case vfs.S_IFLNK:
		st.Size = uint64(len(n.target))
	default:
		st.Size = uint64(len(n.data))
	}
	st.Blocks = (st.Size + 511) / 512
	return st
}

// Getattr implements vfs.FilesystemImpl.Getattr.
func (f *FS) Getattr(ctx context.Context, creds *vfs.Credentials, i vfs.Inode) (vfs.Statx, error) {
	f.begin("Getattr")
	defer f.mu.Unlock()
	n, err := f.inode("Getattr", i)
	if err != nil {
		return vfs.Statx{}, err
	}
	st := statLocked(n)
	st.Dev = 0xdead // vfs must overwrite it
	return st, nil
}

func setattrLocked(n *Inode, o *vfs.SetStatOptions) (vfs.Statx, error) {
	now := time.Now()
	if o.Mask&vfs.SetSize != 0 {
		if n.mode&vfs.S_IFMT != vfs.S_IFREG {
			return vfs.Statx{}, syscall.EINVAL
		}
		if o.Size > 1<<40 {
			return vfs.Statx{}, syscall.EFBIG
		}
		resize(n, int(o.Size))
		n.mtime = now
	}
	if o.Mask&vfs.SetMode != 0 {
		n.mode = n.mode&vfs.S_IFMT | o.Mode&0o7777
	}
	if o.Mask&vfs.SetUID != 0 {
		n.uid = o.UID
	}
	if o.Mask&vfs.SetGID != 0 {
		n.gid = o.GID
	}
	if o.Mask&vfs.SetAtime != 0 {
		n.atime = o.Atime
	}
	if o.Mask&vfs.SetMtime != 0 {
		n.mtime = o.Mtime
	}
	if o.Mask&vfs.SetAtimeNow != 0 {
		n.atime = now
	}
	if o.Mask&vfs.SetMtimeNow != 0 {
		n.mtime = now
	}
	n.ctime = now
	return statLocked(n), nil
}

func resize(n *Inode, size int) {
	if size <= len(n.data) {
		n.data = n.data[:size]
		return
	}
	n.data = append(n.data, make([]byte, size-len(n.data))...)
}

// Setattr implements vfs.FilesystemImpl.Setattr.
func (f *FS) Setattr(ctx context.Context, creds *vfs.Credentials, i vfs.Inode, o *vfs.SetStatOptions) (vfs.Statx, error) {
	f.begin("Setattr")
	defer f.mu.Unlock()
	n, err := f.inode("Setattr", i)
	if err != nil {
		return vfs.Statx{}, err
	}
	return setattrLocked(n, o)
}

// Readlink implements vfs.FilesystemImpl.Readlink.
func (f *FS) Readlink(ctx context.Context, creds *vfs.Credentials, i vfs.Inode) (string, error) {
	f.begin("Readlink")
	defer f.mu.Unlock()
	n, err := f.inode("Readlink", i)
	if err != nil {
		return "", err
	}
	if n.mode&vfs.S_IFMT != vfs.S_IFLNK {
		return "", syscall.EINVAL
	}
	return n.target, nil
}

// mknodLocked adds a new node called name to d.
func (f *FS) mknodLocked(op string, d *Inode, name string, mode uint32, creds *vfs.Credentials) (*Inode, error) {
	if err := f.checkName(op, name); err != nil {
		return nil, err
	}
	if d.children[name] != nil {
		return nil, syscall.EEXIST
	}
	n := f.newInodeLocked(mode)
	n.uid, n.gid = creds.UID, creds.GID
	d.children[name] = n
	d.mtime = time.Now()
	return n, nil
}

// Create implements vfs.FilesystemImpl.Create.
func (f *FS) Create(ctx context.Context, creds *vfs.Credentials, dir vfs.Inode, name string, flags int, mode uint32) (vfs.Entry, vfs.FileDescriptionImpl, error) {
	f.begin("Create")
	defer f.mu.Unlock()
	d, err := f.dir("Create", dir)
	if err != nil {
		return vfs.Entry{}, nil, err
	}
	if mode&vfs.S_IFMT != vfs.S_IFREG {
		f.violate("Create: mode %o is not regular", mode)
	}
	n := d.children[name]
	if n != nil && flags&unix.O_EXCL != 0 {
		return vfs.Entry{}, nil, syscall.EEXIST
	}
	if n == nil {
		if n, err = f.mknodLocked("Create", d, name, mode, creds); err != nil {
			return vfs.Entry{}, nil, err
		}
	} else if flags&unix.O_TRUNC != 0 && n.mode&vfs.S_IFMT == vfs.S_IFREG {
		n.data = nil
	}
	return f.entryLocked(n), &File{fs: f, n: n, flags: flags}, nil
}

// Mknod implements vfs.FilesystemImpl.Mknod.
func (f *FS) Mknod(ctx context.Context, creds *vfs.Credentials, dir vfs.Inode, name string, mode uint32, rdev uint32) (vfs.Entry, error) {
	f.begin("Mknod")
	defer f.mu.Unlock()
	d, err := f.dir("Mknod", dir)
	if err != nil {
		return vfs.Entry{}, err
	}
	n, err := f.mknodLocked("Mknod", d, name, mode, creds)
	if err != nil {
		return vfs.Entry{}, err
	}
	n.rdev = uint64(rdev)
	return f.entryLocked(n), nil
}

// Mkdir implements vfs.FilesystemImpl.Mkdir.
func (f *FS) Mkdir(ctx context.Context, creds *vfs.Credentials, dir vfs.Inode, name string, mode uint32) (vfs.Entry, error) {
	f.begin("Mkdir")
	defer f.mu.Unlock()
	d, err := f.dir("Mkdir", dir)
	if err != nil {
		return vfs.Entry{}, err
	}
	n, err := f.mknodLocked("Mkdir", d, name, vfs.S_IFDIR|mode&0o7777, creds)
	if err != nil {
		return vfs.Entry{}, err
	}
	return f.entryLocked(n), nil
}

// Symlink implements vfs.FilesystemImpl.Symlink.
func (f *FS) Symlink(ctx context.Context, creds *vfs.Credentials, dir vfs.Inode, name string, target string) (vfs.Entry, error) {
	f.begin("Symlink")
	defer f.mu.Unlock()
	d, err := f.dir("Symlink", dir)
	if err != nil {
		return vfs.Entry{}, err
	}
	n, err := f.mknodLocked("Symlink", d, name, vfs.S_IFLNK|0o777, creds)
	if err != nil {
		return vfs.Entry{}, err
	}
	n.target = target
	return f.entryLocked(n), nil
}

// Link implements vfs.FilesystemImpl.Link.
func (f *FS) Link(ctx context.Context, creds *vfs.Credentials, i vfs.Inode, dir vfs.Inode, name string) (vfs.Entry, error) {
	f.begin("Link")
	defer f.mu.Unlock()
	d, err := f.dir("Link", dir)
	if err != nil {
		return vfs.Entry{}, err
	}
	n, err := f.inode("Link", i)
	if err != nil {
		return vfs.Entry{}, err
	}
	if isDir(n) {
		f.violate("Link: inode %d is a directory", n.ino)
		return vfs.Entry{}, syscall.EPERM
	}
	if err := f.checkName("Link", name); err != nil {
		return vfs.Entry{}, err
	}
	if d.children[name] != nil {
		return vfs.Entry{}, syscall.EEXIST
	}
	d.children[name] = n
	n.nlink++
	n.ctime = time.Now()
	return f.entryLocked(n), nil
}

func (f *FS) removeLocked(op string, dir vfs.Inode, name string, child vfs.Inode, wantDir bool) error {
	d, err := f.dir(op, dir)
	if err != nil {
		return err
	}
	n := d.children[name]
	if n == nil {
		return syscall.ENOENT
	}
	// Like a FUSE server, act on the name even if child is stale.
	if isDir(n) != wantDir {
		if wantDir {
			return syscall.ENOTDIR
		}
		return syscall.EISDIR
	}
	if wantDir && len(n.children) > 0 {
		return syscall.ENOTEMPTY
	}
	delete(d.children, name)
	if n.nlink > 0 {
		n.nlink--
	}
	return nil
}

// Unlink implements vfs.FilesystemImpl.Unlink.
func (f *FS) Unlink(ctx context.Context, creds *vfs.Credentials, dir vfs.Inode, name string, child vfs.Inode) error {
	f.begin("Unlink")
	defer f.mu.Unlock()
	return f.removeLocked("Unlink", dir, name, child, false)
}

// Rmdir implements vfs.FilesystemImpl.Rmdir.
func (f *FS) Rmdir(ctx context.Context, creds *vfs.Credentials, dir vfs.Inode, name string, child vfs.Inode) error {
	f.begin("Rmdir")
	defer f.mu.Unlock()
	return f.removeLocked("Rmdir", dir, name, child, true)
}

// Rename implements vfs.FilesystemImpl.Rename (RENAME_WHITEOUT is EINVAL).
func (f *FS) Rename(ctx context.Context, creds *vfs.Credentials, oldDir vfs.Inode, oldName string, newDir vfs.Inode, newName string, flags uint32, child, replaced vfs.Inode) error {
	f.begin("Rename")
	defer f.mu.Unlock()
	od, err := f.dir("Rename", oldDir)
	if err != nil {
		return err
	}
	nd, err := f.dir("Rename", newDir)
	if err != nil {
		return err
	}
	if flags&unix.RENAME_WHITEOUT != 0 {
		return syscall.EINVAL
	}
	src := od.children[oldName]
	if src == nil {
		return syscall.ENOENT
	}
	dst := nd.children[newName]
	switch {
	case flags&unix.RENAME_EXCHANGE != 0:
		if dst == nil {
			return syscall.ENOENT
		}
		od.children[oldName], nd.children[newName] = dst, src
		return nil
	case dst != nil && flags&unix.RENAME_NOREPLACE != 0:
		return syscall.EEXIST
	case dst == src:
		return nil
	case dst != nil && isDir(dst):
		if !isDir(src) {
			return syscall.EISDIR
		}
		if len(dst.children) > 0 {
			return syscall.ENOTEMPTY
		}
	case dst != nil && isDir(src):
		return syscall.ENOTDIR
	}
	if dst != nil && dst.nlink > 0 {
		dst.nlink--
	}
	delete(od.children, oldName)
	nd.children[newName] = src
	return nil
}

// Open implements vfs.FilesystemImpl.Open.
func (f *FS) Open(ctx context.Context, creds *vfs.Credentials, i vfs.Inode, flags int) (vfs.FileDescriptionImpl, error) {
	f.begin("Open")
	defer f.mu.Unlock()
	n, err := f.inode("Open", i)
	if err != nil {
		return nil, err
	}
	if flags&(unix.O_CREAT|unix.O_EXCL) != 0 {
		f.violate("Open: flags %#x include O_CREAT or O_EXCL", flags)
	}
	if isDir(n) && flags&unix.O_ACCMODE != unix.O_RDONLY {
		f.violate("Open: directory %d opened for writing", n.ino)
		return nil, syscall.EISDIR
	}
	if flags&unix.O_TRUNC != 0 && n.mode&vfs.S_IFMT == vfs.S_IFREG {
		n.data = nil
	}
	return &File{fs: f, n: n, flags: flags}, nil
}

// Statfs implements vfs.FilesystemImpl.Statfs.
func (f *FS) Statfs(ctx context.Context, creds *vfs.Credentials, i vfs.Inode) (vfs.Statfs, error) {
	f.begin("Statfs")
	defer f.mu.Unlock()
	if _, err := f.inode("Statfs", i); err != nil {
		return vfs.Statfs{}, err
	}
	return vfs.Statfs{Blocks: 1 << 20, Bfree: 1 << 19, Bavail: 1 << 19, Files: 1 << 16, Ffree: 1 << 15, Bsize: 4096, Namelen: 255, Frsize: 4096}, nil
}

// Getxattr implements vfs.FilesystemImpl.Getxattr.
func (f *FS) Getxattr(ctx context.Context, creds *vfs.Credentials, i vfs.Inode, name string) ([]byte, error) {
	f.begin("Getxattr")
	defer f.mu.Unlock()
	n, err := f.inode("Getxattr", i)
	if err != nil {
		return nil, err
	}
	v, ok := n.xattrs[name]
	if !ok {
		return nil, syscall.ENODATA
	}
	return append([]byte{}, v...), nil
}

// Setxattr implements vfs.FilesystemImpl.Setxattr.
func (f *FS) Setxattr(ctx context.Context, creds *vfs.Credentials, i vfs.Inode, name string, value []byte, flags int) error {
	f.begin("Setxattr")
	defer f.mu.Unlock()
	n, err := f.inode("Setxattr", i)
	if err != nil {
		return err
	}
	_, exists := n.xattrs[name]
	switch {
	case flags&unix.XATTR_CREATE != 0 && exists:
		return syscall.EEXIST
	case flags&unix.XATTR_REPLACE != 0 && !exists:
		return syscall.ENODATA
	}
	if n.xattrs == nil {
		n.xattrs = make(map[string][]byte)
	}
	n.xattrs[name] = append([]byte{}, value...)
	return nil
}

// Listxattr implements vfs.FilesystemImpl.Listxattr, sorted by name.
func (f *FS) Listxattr(ctx context.Context, creds *vfs.Credentials, i vfs.Inode) ([]string, error) {
	f.begin("Listxattr")
	defer f.mu.Unlock()
	n, err := f.inode("Listxattr", i)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(n.xattrs))
	for k := range n.xattrs {
		names = append(names, k)
	}
	sort.Strings(names)
	return names, nil
}

// Removexattr implements vfs.FilesystemImpl.Removexattr.
func (f *FS) Removexattr(ctx context.Context, creds *vfs.Credentials, i vfs.Inode, name string) error {
	f.begin("Removexattr")
	defer f.mu.Unlock()
	n, err := f.inode("Removexattr", i)
	if err != nil {
		return err
	}
	if _, ok := n.xattrs[name]; !ok {
		return syscall.ENODATA
	}
	delete(n.xattrs, name)
	return nil
}

// Sync implements vfs.FilesystemImpl.Sync.
func (f *FS) Sync(ctx context.Context) error {
	f.begin("Sync")
	f.mu.Unlock()
	return nil
}
