package vfs

import (
	"context"
	"syscall"

	"golang.org/x/sys/unix"
)

// Limits on extended attributes (Linux XATTR_NAME_MAX, XATTR_SIZE_MAX).
const (
	maxXattrName = 255
	maxXattrSize = 65536
)

func (v *VirtualFilesystem) walker(ctx context.Context, creds *Credentials) *walker {
	return &walker{v: v, ctx: ctx, creds: creds}
}

// getDentry resolves path from the share root and returns its dentry with
// a reference.
func (v *VirtualFilesystem) getDentry(ctx context.Context, creds *Credentials, path string, follow bool) (*Dentry, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	w := walker{v: v, ctx: ctx, creds: creds}
	if d, _, err, ok := w.fastResolve(path); ok {
		return d, err
	}
	root, err := v.rootRef()
	if err != nil {
		return nil, err
	}
	defer v.decRef(root)
	return w.resolve(root, path, follow, false)
}

// GetDentry resolves path from the share root, following a final symlink
// if follow, and returns its dentry with a reference that the caller must
// give back with PutDentry.
//
// Errors: ENOENT, ENOTDIR, ENAMETOOLONG, ELOOP, ENOTCONN, and the
// filesystem's.
func (v *VirtualFilesystem) GetDentry(ctx context.Context, creds *Credentials, path string, follow bool) (*Dentry, error) {
	return v.getDentry(ctx, creds, path, follow)
}

// PutDentry drops a reference obtained from GetDentry.
func (v *VirtualFilesystem) PutDentry(d *Dentry) { v.decRef(d) }

// parentDir resolves all but the last component of path.
func (v *VirtualFilesystem) parentDir(w *walker, path string) (*Dentry, string, bool, error) {
	if err := checkPath(path); err != nil {
		return nil, "", false, err
	}
	root, err := v.rootRef()
	if err != nil {
		return nil, "", false, err
	}
	defer v.decRef(root)
	return w.parentOf(root, path)
}

func isDots(name string) bool { return name == "" || name == "." || name == ".." }

// Open opens path (Linux openat(2) from the share root, do_filp_open).
// flags are unix.O_* flags; mode (permission bits) applies when O_CREAT
// creates the file and is not masked by vfs. The caller owns the returned
// FileDescription and must Close it.
//
// Linux rules: O_CREAT follows a final symlink (creating a dangling
// symlink's target) unless O_EXCL, which fails with EEXIST on any existing
// name; O_NOFOLLOW fails with ELOOP on a final symlink (a trailing slash
// still follows); O_CREAT of a name with a trailing slash, or of a
// directory, is EISDIR; opening a directory for writing or with O_TRUNC is
// EISDIR; O_DIRECTORY or a trailing slash on a non-directory is ENOTDIR.
//
// Errors: ENOENT, EEXIST, EISDIR, ENOTDIR, ELOOP, ENAMETOOLONG, EINVAL
// (O_CREAT with O_DIRECTORY, or a bad access mode), ENOTCONN, and the
// filesystem's.
func (v *VirtualFilesystem) Open(ctx context.Context, creds *Credentials, path string, flags int, mode uint32) (*FileDescription, error) {
	if flags&unix.O_ACCMODE == unix.O_ACCMODE {
		return nil, syscall.EINVAL
	}
	if flags&unix.O_CREAT != 0 && flags&unix.O_DIRECTORY != 0 {
		return nil, syscall.EINVAL
	}
	if err := checkPath(path); err != nil {
		return nil, err
	}
	creating := flags&unix.O_CREAT != 0
	excl := creating && flags&unix.O_EXCL != 0
	follow := flags&unix.O_NOFOLLOW == 0 && !excl
	w := v.walker(ctx, creds)
	if !creating {
		if d, trailing, err, ok := w.fastResolve(path); ok {
			if err != nil {
				return nil, err
			}
			return v.openDentry(ctx, creds, d, flags, trailing)
		}
	}
	start, err := v.rootRef()
	if err != nil {
		return nil, err
	}
	defer func() { v.decRef(start) }()
	p := path
	for {
		dir, last, trailing, err := w.parentOf(start, p)
		if err != nil {
			return nil, err
		}
		if isDots(last) {
			d := dir
			if last == ".." {
				d = w.dotdot(dir)
			}
			if creating {
				v.decRef(d)
				return nil, syscall.EISDIR
			}
			return v.openDentry(ctx, creds, d, flags, true)
		}
		if creating && trailing {
			v.decRef(dir)
			return nil, syscall.EISDIR
		}
		var c *Dentry
		if creating {
			dir.dirMu.Lock()
			if !v.hasChild(dir, last) {
				// A name vfs knows nothing of is most likely new: create
				// it exclusively at once, and look it up only if it
				// exists (one round trip fewer than Linux
				// fuse_atomic_open's LOOKUP, then CREATE).
				fd, err := v.create(ctx, creds, dir, last, flags|unix.O_EXCL, mode)
				if err != syscall.EEXIST || excl {
					dir.dirMu.Unlock()
					v.decRef(dir)
					return fd, err
				}
			}
			c, err = w.lookupChild(dir, last, true, true)
			if err == nil && c == nil {
				fd, err := v.create(ctx, creds, dir, last, flags, mode)
				dir.dirMu.Unlock()
				v.decRef(dir)
				return fd, err
			}
			dir.dirMu.Unlock()
			if err == nil && excl {
				v.decRef(c)
				err = syscall.EEXIST
			}
		} else {
			c, err = w.lookupChild(dir, last, true, false)
			if err == nil && c == nil {
				err = syscall.ENOENT
			}
		}
		if err != nil {
			v.decRef(dir)
			return nil, err
		}
		if c.isSymlink() {
			if !follow && !trailing {
				v.decRef(c)
				v.decRef(dir)
				return nil, syscall.ELOOP
			}
			t, err := w.readlink(c)
			v.decRef(c)
			if err == nil && trailing {
				t += "/"
			}
			if err == nil {
				err = checkPath(t)
			}
			if err != nil {
				v.decRef(dir)
				return nil, err
			}
			v.decRef(start)
			start, p = dir, t
			continue
		}
		v.decRef(dir)
		return v.openDentry(ctx, creds, c, flags, trailing)
	}
}

// hasChild reports whether dir has a dentry for name, positive or
// negative, valid or not.
func (v *VirtualFilesystem) hasChild(dir *Dentry, name string) bool {
	v.mu.Lock()
	_, ok := dir.children[name]
	v.mu.Unlock()
	return ok
}

// create creates and opens last in dir.
//
// Preconditions: dir.dirMu is held exclusively; last is negative in dir.
func (v *VirtualFilesystem) create(ctx context.Context, creds *Credentials, dir *Dentry, last string, flags int, mode uint32) (*FileDescription, error) {
	e, impl, err := dir.mount.fs.Create(ctx, creds, dir.inode, last, flags&^unix.O_NOFOLLOW, S_IFREG|mode&0o7777)
	if err != nil {
		return nil, err
	}
	if e.Inode == nil {
		impl.Release(context.WithoutCancel(ctx))
		return nil, syscall.EIO
	}
	now := v.now()
	v.mu.Lock()
	d := v.insertLocked(dir, last, &e, now)
	v.unlock()
	return v.newFD(d, impl, creds, flags), nil
}

// openDentry opens d, taking over the caller's reference on it.
func (v *VirtualFilesystem) openDentry(ctx context.Context, creds *Credentials, d *Dentry, flags int, mustDir bool) (*FileDescription, error) {
	err := func() error {
		isDir := d.IsDir()
		switch {
		case (mustDir || flags&unix.O_DIRECTORY != 0) && !isDir:
			return syscall.ENOTDIR
		case isDir && (flags&(unix.O_CREAT|unix.O_TRUNC) != 0 || flags&unix.O_ACCMODE != unix.O_RDONLY):
			return syscall.EISDIR
		case d.isSymlink():
			return syscall.ELOOP
		}
		return nil
	}()
	if err != nil {
		v.decRef(d)
		return nil, err
	}
	oflags := flags &^ (unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW)
	if d.mode&S_IFMT != S_IFREG {
		oflags &^= unix.O_TRUNC
	}
	impl, err := d.mount.fs.Open(ctx, creds, d.inode, oflags)
	if err != nil {
		v.decRef(d)
		return nil, err
	}
	return v.newFD(d, impl, creds, flags), nil
}

// newFD makes a FileDescription holding the caller's reference on d.
func (v *VirtualFilesystem) newFD(d *Dentry, impl FileDescriptionImpl, creds *Credentials, flags int) *FileDescription {
	fd := &FileDescription{d: d, impl: impl, creds: *creds, isDir: d.IsDir(),
		flags: flags &^ (unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_NOFOLLOW)}
	fd.refs.Store(1)
	return fd
}

// Stat returns the attributes of the node path names, following a final
// symlink (stat(2)). Dev is the mount's device number.
//
// Errors: ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG, ENOTCONN, the filesystem's.
func (v *VirtualFilesystem) Stat(ctx context.Context, creds *Credentials, path string) (Statx, error) {
	var st Statx
	_, err := v.stat(ctx, creds, path, true, &st)
	return st, err
}

// Lstat is Stat without following a final symlink (lstat(2)).
func (v *VirtualFilesystem) Lstat(ctx context.Context, creds *Credentials, path string) (Statx, error) {
	var st Statx
	_, err := v.stat(ctx, creds, path, false, &st)
	return st, err
}

// StatInfo is Stat, or Lstat without follow, that stores the attributes
// in *st and also returns the InfoSlot of the node's dentry. The slot
// stays usable after the dentry leaves the cache (it is then simply never
// returned again).
//
// Errors: as Stat.
func (v *VirtualFilesystem) StatInfo(ctx context.Context, creds *Credentials, path string, follow bool, st *Statx) (*InfoSlot, error) {
	return v.stat(ctx, creds, path, follow, st)
}

// stat stores the attributes of the node path names in *st and returns
// its dentry's slot; *st is unspecified on error.
func (v *VirtualFilesystem) stat(ctx context.Context, creds *Credentials, path string, follow bool, st *Statx) (*InfoSlot, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	w := walker{v: v, ctx: ctx, creds: creds}
	w.now()
	v.mu.Lock()
	d, _, err, ok := w.fastWalkLocked(path)
	if ok && err == nil {
		if v.attrCache != nil {
			// Path and attributes all cached: no reference, whose
			// taking and release would only have moved d to the
			// LRU's recent end.
			var cached bool
			if *st, cached = v.attrCache.CachedGetattr(d.inode, w.startTime); cached {
				v.lruTouchLocked(d)
				st.Dev = d.mount.dev
				v.mu.Unlock()
				return &d.info, nil
			}
		}
		v.incRefLocked(d)
	}
	v.mu.Unlock()
	if !ok {
		var root *Dentry
		if root, err = v.rootRef(); err != nil {
			return nil, err
		}
		d, err = w.resolve(root, path, follow, false)
		v.decRef(root)
	}
	if err != nil {
		return nil, err
	}
	defer v.decRef(d)
	switch {
	case w.fresh == d:
		// The walk's own lookup of d carried the attributes.
		*st = w.freshAttr
	default:
		if *st, err = d.mount.fs.Getattr(ctx, creds, d.inode); err != nil {
			return nil, err
		}
	}
	st.Dev = d.mount.dev
	return &d.info, nil
}

// createAt is the common part of mkdir, mknod, symlink and link (Linux
// filename_create): it resolves the parent, requires the last component
// to be a new name, and calls mk with the directory locked.
func (v *VirtualFilesystem) createAt(ctx context.Context, creds *Credentials, path string, isMkdir bool, mk func(dir *Dentry, name string) (Entry, error)) error {
	w := v.walker(ctx, creds)
	dir, last, trailing, err := v.parentDir(w, path)
	if err != nil {
		return err
	}
	defer v.decRef(dir)
	if isDots(last) {
		return syscall.EEXIST
	}
	dir.dirMu.Lock()
	defer dir.dirMu.Unlock()
	c, err := w.lookupChild(dir, last, false, true)
	if err != nil {
		return err
	}
	if c != nil {
		v.decRef(c)
		return syscall.EEXIST
	}
	if trailing && !isMkdir {
		return syscall.ENOENT
	}
	now := v.now()
	e, err := mk(dir, last)
	if err != nil {
		return err
	}
	v.mu.Lock()
	if d := v.insertLocked(dir, last, &e, now); d != nil {
		v.decRefLocked(d)
	}
	v.unlock()
	return nil
}

// Mkdir creates a directory (mkdir(2)); mode holds permission bits.
//
// Errors: EEXIST (also for "." and ".."), ENOENT, ENOTDIR, ENAMETOOLONG,
// ELOOP, and the filesystem's.
func (v *VirtualFilesystem) Mkdir(ctx context.Context, creds *Credentials, path string, mode uint32) error {
	return v.createAt(ctx, creds, path, true, func(dir *Dentry, name string) (Entry, error) {
		return dir.mount.fs.Mkdir(ctx, creds, dir.inode, name, mode&0o7777)
	})
}

// Mknod creates a regular file, FIFO, socket or device node (mknod(2));
// a file type of 0 means regular.
//
// Errors: EPERM for S_IFDIR, EINVAL for other types; as Mkdir, with ENOENT
// for a trailing slash on a new name.
func (v *VirtualFilesystem) Mknod(ctx context.Context, creds *Credentials, path string, mode uint32, rdev uint32) error {
	switch mode & S_IFMT {
	case 0:
		mode |= S_IFREG
	case S_IFREG, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK:
	case S_IFDIR:
		return syscall.EPERM
	default:
		return syscall.EINVAL
	}
	return v.createAt(ctx, creds, path, false, func(dir *Dentry, name string) (Entry, error) {
		return dir.mount.fs.Mknod(ctx, creds, dir.inode, name, mode&(S_IFMT|0o7777), rdev)
	})
}

// Symlink creates linkPath as a symbolic link to target (symlink(2)).
//
// Errors: ENOENT for an empty target, ENAMETOOLONG; as Mknod.
func (v *VirtualFilesystem) Symlink(ctx context.Context, creds *Credentials, target, linkPath string) error {
	if err := checkPath(target); err != nil {
		return err
	}
	return v.createAt(ctx, creds, linkPath, false, func(dir *Dentry, name string) (Entry, error) {
		return dir.mount.fs.Symlink(ctx, creds, dir.inode, name, target)
	})
}

// Link creates newPath as a hard link to oldPath, not following a final
// symlink of oldPath (link(2)).
//
// Errors: EEXIST, ENOENT, EXDEV (different mounts), EPERM (a directory);
// as Mknod.
func (v *VirtualFilesystem) Link(ctx context.Context, creds *Credentials, oldPath, newPath string) error {
	old, err := v.getDentry(ctx, creds, oldPath, false)
	if err != nil {
		return err
	}
	defer v.decRef(old)
	return v.createAt(ctx, creds, newPath, false, func(dir *Dentry, name string) (Entry, error) {
		if dir.mount != old.mount {
			return Entry{}, syscall.EXDEV
		}
		if old.IsDir() {
			return Entry{}, syscall.EPERM
		}
		return dir.mount.fs.Link(ctx, creds, old.inode, dir.inode, name)
	})
}

// Readlink returns the target of the symlink path names (readlink(2)).
//
// Errors: EINVAL (not a symlink), ENOENT, ENOTDIR, and the filesystem's.
func (v *VirtualFilesystem) Readlink(ctx context.Context, creds *Credentials, path string) (string, error) {
	d, err := v.getDentry(ctx, creds, path, false)
	if err != nil {
		return "", err
	}
	defer v.decRef(d)
	if !d.isSymlink() {
		return "", syscall.EINVAL
	}
	return d.mount.fs.Readlink(ctx, creds, d.inode)
}

// removeAt is the common part of unlink and rmdir (Linux do_unlinkat,
// do_rmdir).
func (v *VirtualFilesystem) removeAt(ctx context.Context, creds *Credentials, path string, rmdir bool) error {
	w := v.walker(ctx, creds)
	dir, last, trailing, err := v.parentDir(w, path)
	if err != nil {
		return err
	}
	defer v.decRef(dir)
	if isDots(last) {
		switch {
		case !rmdir:
			return syscall.EISDIR
		case last == ".":
			return syscall.EINVAL
		case last == "..":
			return syscall.ENOTEMPTY
		default:
			return syscall.EBUSY
		}
	}
	dir.dirMu.Lock()
	defer dir.dirMu.Unlock()
	c, err := w.lookupChild(dir, last, false, true)
	if err != nil {
		return err
	}
	if c == nil {
		return syscall.ENOENT
	}
	defer v.decRef(c)
	fs := dir.mount.fs
	if rmdir {
		if !c.IsDir() {
			return syscall.ENOTDIR
		}
		if v.isMountpoint(c) {
			return syscall.EBUSY
		}
		err = fs.Rmdir(ctx, creds, dir.inode, last, c.inode)
	} else {
		if c.IsDir() {
			return syscall.EISDIR
		}
		if trailing {
			return syscall.ENOTDIR
		}
		err = fs.Unlink(ctx, creds, dir.inode, last, c.inode)
	}
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.invalidateLocked(c)
	v.unlock()
	return nil
}

func (v *VirtualFilesystem) isMountpoint(d *Dentry) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return d.mounted != nil
}

// Unlink removes a non-directory name (unlink(2)).
//
// Errors: EISDIR (a directory, or "." / ".."), ENOTDIR (a trailing slash on
// a non-directory), ENOENT, and the filesystem's.
func (v *VirtualFilesystem) Unlink(ctx context.Context, creds *Credentials, path string) error {
	return v.removeAt(ctx, creds, path, false)
}

// Rmdir removes a directory (rmdir(2)).
//
// Errors: ENOTDIR, ENOENT, EINVAL ("."), ENOTEMPTY ("..", or from the
// filesystem), EBUSY (the root, or a mount point), and the filesystem's.
func (v *VirtualFilesystem) Rmdir(ctx context.Context, creds *Credentials, path string) error {
	return v.removeAt(ctx, creds, path, true)
}

// SetStat changes attributes of the node path names (chmod, chown,
// truncate, utimensat), following a final symlink if follow.
//
// Errors: EISDIR (SetSize on a directory), EINVAL (SetSize on a
// non-regular file or beyond 2^63-1), ENOENT, ENOTDIR, ELOOP, and the
// filesystem's.
func (v *VirtualFilesystem) SetStat(ctx context.Context, creds *Credentials, path string, opts *SetStatOptions, follow bool) error {
	d, err := v.getDentry(ctx, creds, path, follow)
	if err != nil {
		return err
	}
	defer v.decRef(d)
	if opts.Mask&SetSize != 0 {
		switch {
		case d.IsDir():
			return syscall.EISDIR
		case d.mode&S_IFMT != S_IFREG, int64(opts.Size) < 0:
			return syscall.EINVAL
		}
	}
	o := *opts
	o.Mode &= 0o7777
	_, err = d.mount.fs.Setattr(ctx, creds, d.inode, &o)
	return err
}

// Statfs describes the filesystem holding path (statfs(2)).
func (v *VirtualFilesystem) Statfs(ctx context.Context, creds *Credentials, path string) (Statfs, error) {
	d, err := v.getDentry(ctx, creds, path, true)
	if err != nil {
		return Statfs{}, err
	}
	defer v.decRef(d)
	return d.mount.fs.Statfs(ctx, creds, d.inode)
}

func checkXattrName(name string) error {
	if name == "" || len(name) > maxXattrName {
		return syscall.ERANGE
	}
	return nil
}

// Getxattr returns an extended attribute (getxattr(2), lgetxattr without
// follow).
//
// Errors: ERANGE (bad name), ENODATA, ENOTSUP, and path errors.
func (v *VirtualFilesystem) Getxattr(ctx context.Context, creds *Credentials, path, name string, follow bool) ([]byte, error) {
	if err := checkXattrName(name); err != nil {
		return nil, err
	}
	d, err := v.getDentry(ctx, creds, path, follow)
	if err != nil {
		return nil, err
	}
	defer v.decRef(d)
	return d.mount.fs.Getxattr(ctx, creds, d.inode, name)
}

// Setxattr sets an extended attribute (setxattr(2)); flags are 0,
// unix.XATTR_CREATE or unix.XATTR_REPLACE.
//
// Errors: ERANGE (bad name), E2BIG (value over 64 KiB), EINVAL (flags),
// EEXIST, ENODATA, ENOTSUP, and path errors.
func (v *VirtualFilesystem) Setxattr(ctx context.Context, creds *Credentials, path, name string, value []byte, flags int, follow bool) error {
	if flags&^(unix.XATTR_CREATE|unix.XATTR_REPLACE) != 0 {
		return syscall.EINVAL
	}
	if err := checkXattrName(name); err != nil {
		return err
	}
	if len(value) > maxXattrSize {
		return syscall.E2BIG
	}
	d, err := v.getDentry(ctx, creds, path, follow)
	if err != nil {
		return err
	}
	defer v.decRef(d)
	return d.mount.fs.Setxattr(ctx, creds, d.inode, name, value, flags)
}

// Listxattr lists extended attribute names (listxattr(2)).
func (v *VirtualFilesystem) Listxattr(ctx context.Context, creds *Credentials, path string, follow bool) ([]string, error) {
	d, err := v.getDentry(ctx, creds, path, follow)
	if err != nil {
		return nil, err
	}
	defer v.decRef(d)
	return d.mount.fs.Listxattr(ctx, creds, d.inode)
}

// Removexattr removes an extended attribute (removexattr(2)).
//
// Errors: ERANGE (bad name), ENODATA, ENOTSUP, and path errors.
func (v *VirtualFilesystem) Removexattr(ctx context.Context, creds *Credentials, path, name string, follow bool) error {
	if err := checkXattrName(name); err != nil {
		return err
	}
	d, err := v.getDentry(ctx, creds, path, follow)
	if err != nil {
		return err
	}
	defer v.decRef(d)
	return d.mount.fs.Removexattr(ctx, creds, d.inode, name)
}

// Sync writes back the share (syncfs(2)).
//
// Errors: ENOTCONN after Close, and the filesystem's.
func (v *VirtualFilesystem) Sync(ctx context.Context) error {
	v.mu.Lock()
	closed := v.closed
	v.mu.Unlock()
	if closed {
		return syscall.ENOTCONN
	}
	return v.fs.Sync(ctx)
}
