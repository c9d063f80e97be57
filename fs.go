package govirtiofs

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/driver"
	"github.com/govirtiofs/govirtiofs/vfs"
)

// fuseSuperMagic is the f_type Linux reports for a FUSE mount (virtio-fs
// included), FUSE_SUPER_MAGIC in include/uapi/linux/magic.h.
const fuseSuperMagic = 0x65735546

// FS is a virtio-fs share, used like package os: names are slash-separated
// paths from the share's root (a leading "/" changes nothing; there is no
// working directory), and errors are *fs.PathError (*os.LinkError for
// Rename, Link and Symlink) holding a syscall.Errno, so that
// errors.Is(err, fs.ErrNotExist) works. Dial (host) and Open (guest) return
// one. An FS is safe for concurrent use.
type FS struct {
	vfs   *vfs.VirtualFilesystem // immutable
	creds vfs.Credentials        // immutable
	umask uint32                 // immutable
	log   *slog.Logger           // immutable
	tag   string                 // immutable
	dev   *driver.Device         // immutable

	// shutdown tears down the layers below vfs (FUSE session, device,
	// memory) once vfs is closed. Immutable; called once, under mu.
	shutdown func(ctx context.Context) error

	// mu guards closed, files and the list links of every File. No file
	// operation takes it except Open and Close of a File; it is not held
	// across a request.
	mu     sync.Mutex
	closed bool
	// files are the open files, closed by FS.Close: a list linked
	// through File.prev and next (a few stores per open and close, where
	// a map costs an insert and a delete).
	files *File
}

// newFS wraps a VirtualFilesystem. shutdown, if non-nil, is called by Close
// after the VirtualFilesystem is closed.
func newFS(v *vfs.VirtualFilesystem, tag string, opts *Options, shutdown func(context.Context) error) *FS {
	umask := uint32(0)
	if opts.Umask != nil {
		umask = *opts.Umask & 0o7777
	} else {
		umask = processUmask()
	}
	return &FS{
		vfs:      v,
		creds:    vfs.Credentials{UID: opts.UID, GID: opts.GID},
		umask:    umask,
		log:      opts.logger(),
		tag:      tag,
		shutdown: shutdown,
	}
}

// ctx is the context of every operation: the facade mirrors package os,
// whose calls take none. Cancellation comes from Close (ENOTCONN).
func (f *FS) ctx() context.Context { return context.Background() }

// Tag returns the share's virtio-fs tag.
func (f *FS) Tag() string { return f.tag }

// Stats are counters of an FS's traffic with its device.
type Stats struct {
	// ZeroCopyRequests is how many requests had their data read, or
	// their reply's data written, by the device in place: in the
	// caller's or the page cache's buffer (Options.ZeroCopy).
	ZeroCopyRequests uint64
}

// Stats returns the FS's counters so far.
func (f *FS) Stats() Stats {
	if f.dev == nil {
		return Stats{}
	}
	return Stats{ZeroCopyRequests: f.dev.ZeroCopyRequests()}
}

// Open opens the named file or directory for reading (os.Open).
func (f *FS) Open(name string) (*File, error) {
	return f.OpenFile(name, O_RDONLY, 0)
}

// Create creates or truncates the named file, opened for reading and writing
// with mode 0666 before the umask (os.Create).
func (f *FS) Create(name string) (*File, error) {
	return f.OpenFile(name, O_RDWR|O_CREATE|O_TRUNC, 0o666)
}

// Flags for OpenFile, the same as package os's.
const (
	O_RDONLY = unix.O_RDONLY
	O_WRONLY = unix.O_WRONLY
	O_RDWR   = unix.O_RDWR
	O_APPEND = unix.O_APPEND
	O_CREATE = unix.O_CREAT
	O_EXCL   = unix.O_EXCL
	O_SYNC   = unix.O_SYNC
	O_TRUNC  = unix.O_TRUNC
)

// OpenFile opens the named file with flag (O_RDONLY etc., and the unix.O_*
// flags O_DIRECTORY, O_NOFOLLOW) and, when O_CREATE creates it, with perm
// less the umask (os.OpenFile).
//
// Errors: *fs.PathError with op "open": ENOENT, EEXIST, EISDIR, ENOTDIR,
// ELOOP, ENAMETOOLONG, EINVAL, EACCES, ENOTCONN, ...
func (f *FS) OpenFile(name string, flag int, perm fs.FileMode) (*File, error) {
	return f.openFile(name, name, flag, perm)
}

// openFile opens p, reporting errors and naming the File as name.
func (f *FS) openFile(p, name string, flag int, perm fs.FileMode) (*File, error) {
	fd, err := f.vfs.Open(f.ctx(), &f.creds, p, flag|unix.O_LARGEFILE, syscallMode(perm)&^f.umask)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	file := &File{fs: f, fd: fd, name: name, path: p, append: flag&O_APPEND != 0}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		fd.Close(f.ctx())
		return nil, pathErr("open", name, syscall.ENOTCONN)
	}
	file.next, file.listed = f.files, true
	if f.files != nil {
		f.files.prev = file
	}
	f.files = file
	f.mu.Unlock()
	return file, nil
}

// forgetFile drops a closed file from the list Close closes.
func (f *FS) forgetFile(file *File) {
	f.mu.Lock()
	if file.listed {
		if file.prev != nil {
			file.prev.next = file.next
		} else {
			f.files = file.next
		}
		if file.next != nil {
			file.next.prev = file.prev
		}
		file.prev, file.next, file.listed = nil, nil, false
	}
	f.mu.Unlock()
}

// Mkdir creates a directory with perm less the umask (os.Mkdir).
//
// Errors: *fs.PathError with op "mkdir": EEXIST, ENOENT, ENOTDIR, ...
func (f *FS) Mkdir(name string, perm fs.FileMode) error {
	return pathErr("mkdir", name, f.vfs.Mkdir(f.ctx(), &f.creds, name, syscallMode(perm)&^f.umask))
}

// MkdirAll creates a directory and any missing parents, with perm less the
// umask (os.MkdirAll). It does nothing if name is already a directory.
//
// Errors: *fs.PathError from Mkdir, or with ENOTDIR when name or a parent
// exists and is not a directory.
func (f *FS) MkdirAll(name string, perm fs.FileMode) error {
	if fi, err := f.Stat(name); err == nil {
		if fi.IsDir() {
			return nil
		}
		return &fs.PathError{Op: "mkdir", Path: name, Err: syscall.ENOTDIR}
	}
	// Make the parent first, as os.MkdirAll: skip trailing slashes, then
	// the last element.
	i := len(name)
	for i > 0 && name[i-1] == '/' {
		i--
	}
	j := i
	for j > 0 && name[j-1] != '/' {
		j--
	}
	if j > 1 {
		if err := f.MkdirAll(name[:j-1], perm); err != nil {
			return err
		}
	}
	err := f.Mkdir(name, perm)
	if err != nil {
		// Another caller may have made it, or name may be "." or "..".
		if fi, lerr := f.Lstat(name); lerr == nil && fi.IsDir() {
			return nil
		}
		return err
	}
	return nil
}

// Remove removes the named file or empty directory (os.Remove: unlink, then
// rmdir).
//
// Errors: *fs.PathError with op "remove": ENOENT, ENOTEMPTY, EBUSY, ...
func (f *FS) Remove(name string) error {
	ctx := f.ctx()
	e := f.vfs.Unlink(ctx, &f.creds, name)
	if e == nil {
		return nil
	}
	e1 := f.vfs.Rmdir(ctx, &f.creds, name)
	if e1 == nil {
		return nil
	}
	// As os.Remove: both failed; rmdir of a non-directory is ENOTDIR, in
	// which case unlink's error is the real one.
	if errnoOf(e1) != syscall.ENOTDIR {
		e = e1
	}
	return pathErr("remove", name, e)
}

// RemoveAll removes name and everything below it (os.RemoveAll). A name that
// does not exist is not an error.
//
// Errors: *fs.PathError: EINVAL for a name ending in ".", or the first error
// met removing something.
func (f *FS) RemoveAll(name string) error {
	if name == "" {
		return nil
	}
	if hasSuffixDot(name) {
		return &fs.PathError{Op: "RemoveAll", Path: name, Err: syscall.EINVAL}
	}
	return f.removeAll(name)
}

// hasSuffixDot reports whether name is "." or ends in "/.", which rmdir
// refuses and so os.RemoveAll refuses too.
func hasSuffixDot(name string) bool {
	n := len(name)
	return name == "." || n >= 2 && name[n-1] == '.' && name[n-2] == '/'
}

func (f *FS) removeAll(name string) error {
	err := f.Remove(name)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	fi, serr := f.Lstat(name)
	if serr != nil {
		if errors.Is(serr, fs.ErrNotExist) {
			return nil
		}
		return serr
	}
	if !fi.IsDir() {
		return err
	}
	for {
		d, oerr := f.openFile(name, name, O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		if oerr != nil {
			if errors.Is(oerr, fs.ErrNotExist) {
				return nil
			}
			return oerr
		}
		names, rerr := d.Readdirnames(1024)
		d.Close()
		if rerr != nil && rerr != io.EOF {
			return rerr
		}
		for _, n := range names {
			if err := f.removeAll(joinName(name, n)); err != nil {
				return err
			}
		}
		if len(names) < 1024 {
			break
		}
	}
	err = f.Remove(name)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Rename renames (moves) oldname to newname, replacing newname if it exists
// and is not a directory (os.Rename: an existing directory as newname is
// EEXIST, even an empty one).
//
// Errors: *os.LinkError with op "rename": ENOENT, EEXIST, ENOTEMPTY,
// EISDIR, ENOTDIR, EINVAL, EXDEV, EBUSY, ...
func (f *FS) Rename(oldname, newname string) error {
	if fi, err := f.Lstat(newname); err == nil && fi.IsDir() {
		ofi, err := f.Lstat(oldname)
		if err != nil {
			return linkErr("rename", oldname, newname, err)
		}
		if newname == oldname || !SameFile(fi, ofi) {
			return linkErr("rename", oldname, newname, syscall.EEXIST)
		}
	}
	return linkErr("rename", oldname, newname, f.vfs.Rename(f.ctx(), &f.creds, oldname, newname, 0))
}

// Stat returns the FileInfo of the named file, following symlinks (os.Stat).
// Its Sys is a *syscall.Stat_t.
//
// Errors: *fs.PathError with op "stat".
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	return f.stat(name, name, true)
}

// Lstat is Stat without following a final symlink (os.Lstat).
//
// Errors: *fs.PathError with op "lstat".
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	return f.stat(name, name, false)
}

func (f *FS) stat(p, name string, follow bool) (fs.FileInfo, error) {
	var st vfs.Statx
	slot, err := f.vfs.StatInfo(f.ctx(), &f.creds, p, follow, &st)
	if err != nil {
		op := "stat"
		if !follow {
			op = "lstat"
		}
		return nil, pathErr(op, name, err)
	}
	return reuseFileInfo(slot, basename(name), &st), nil
}

// basename returns the last element of name, trailing slashes removed, as
// the Name of os's FileInfo ("/" for the root written as "/").
func basename(name string) string {
	i := len(name) - 1
	for ; i > 0 && name[i] == '/'; i-- {
		name = name[:i]
	}
	for i--; i >= 0; i-- {
		if name[i] == '/' {
			return name[i+1:]
		}
	}
	return name
}

// ReadFile returns the named file's contents (os.ReadFile).
//
// Errors: *fs.PathError with op "open" or "read".
func (f *FS) ReadFile(name string) ([]byte, error) {
	return f.readFile(name, name)
}

func (f *FS) readFile(p, name string) ([]byte, error) {
	file, err := f.openFile(p, name, O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	size := 512
	if fi, err := file.Stat(); err == nil && fi.Size() > 0 && fi.Size() < 1<<30 {
		size = int(fi.Size()) + 1
	}
	data := make([]byte, 0, size)
	for {
		n, err := file.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return data, err
		}
		if len(data) == cap(data) {
			data = slices.Grow(data, len(data))
		}
	}
}

// WriteFile writes data to the named file, creating it with perm (less the
// umask) if needed and truncating it otherwise (os.WriteFile).
//
// Errors: *fs.PathError with op "open", "write" or "close".
func (f *FS) WriteFile(name string, data []byte, perm fs.FileMode) error {
	file, err := f.OpenFile(name, O_WRONLY|O_CREATE|O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = file.Write(data)
	if err1 := file.Close(); err == nil {
		err = err1
	}
	return err
}

// Symlink creates newname as a symbolic link to oldname (os.Symlink). An
// absolute oldname is resolved from the share's root.
//
// Errors: *os.LinkError with op "symlink": EEXIST, ENOENT, ...
func (f *FS) Symlink(oldname, newname string) error {
	return linkErr("symlink", oldname, newname, f.vfs.Symlink(f.ctx(), &f.creds, oldname, newname))
}

// Readlink returns the target of the named symbolic link (os.Readlink).
//
// Errors: *fs.PathError with op "readlink": EINVAL (not a symlink), ENOENT,
// ...
func (f *FS) Readlink(name string) (string, error) {
	t, err := f.vfs.Readlink(f.ctx(), &f.creds, name)
	return t, pathErr("readlink", name, err)
}

// Link creates newname as a hard link to oldname (os.Link).
//
// Errors: *os.LinkError with op "link": EEXIST, ENOENT, EPERM (a
// directory), EXDEV, ...
func (f *FS) Link(oldname, newname string) error {
	return linkErr("link", oldname, newname, f.vfs.Link(f.ctx(), &f.creds, oldname, newname))
}

// Chmod changes the mode of the named file, following symlinks (os.Chmod).
//
// Errors: *fs.PathError with op "chmod".
func (f *FS) Chmod(name string, mode fs.FileMode) error {
	opts := vfs.SetStatOptions{Mask: vfs.SetMode, Mode: syscallMode(mode)}
	return pathErr("chmod", name, f.vfs.SetStat(f.ctx(), &f.creds, name, &opts, true))
}

// chownOptions builds a chown request; -1 leaves an ID unchanged.
func chownOptions(uid, gid int) vfs.SetStatOptions {
	var opts vfs.SetStatOptions
	if uid != -1 {
		opts.Mask |= vfs.SetUID
		opts.UID = uint32(uid)
	}
	if gid != -1 {
		opts.Mask |= vfs.SetGID
		opts.GID = uint32(gid)
	}
	return opts
}

// Chown changes the owner and group of the named file, following symlinks;
// -1 leaves one unchanged (os.Chown).
//
// Errors: *fs.PathError with op "chown".
func (f *FS) Chown(name string, uid, gid int) error {
	opts := chownOptions(uid, gid)
	return pathErr("chown", name, f.vfs.SetStat(f.ctx(), &f.creds, name, &opts, true))
}

// Lchown is Chown without following a final symlink (os.Lchown).
//
// Errors: *fs.PathError with op "lchown".
func (f *FS) Lchown(name string, uid, gid int) error {
	opts := chownOptions(uid, gid)
	return pathErr("lchown", name, f.vfs.SetStat(f.ctx(), &f.creds, name, &opts, false))
}

// Chtimes changes the access and modification times of the named file,
// following symlinks; a zero time.Time leaves that time unchanged
// (os.Chtimes).
//
// Errors: *fs.PathError with op "chtimes".
func (f *FS) Chtimes(name string, atime, mtime time.Time) error {
	var opts vfs.SetStatOptions
	if !atime.IsZero() {
		opts.Mask |= vfs.SetAtime
		opts.Atime = atime
	}
	if !mtime.IsZero() {
		opts.Mask |= vfs.SetMtime
		opts.Mtime = mtime
	}
	return pathErr("chtimes", name, f.vfs.SetStat(f.ctx(), &f.creds, name, &opts, true))
}

// Truncate changes the size of the named file, following symlinks
// (os.Truncate).
//
// Errors: *fs.PathError with op "truncate": EINVAL (negative size, not a
// regular file), EISDIR, EFBIG, ...
func (f *FS) Truncate(name string, size int64) error {
	if size < 0 {
		return pathErr("truncate", name, syscall.EINVAL)
	}
	opts := vfs.SetStatOptions{Mask: vfs.SetSize, Size: uint64(size)}
	return pathErr("truncate", name, f.vfs.SetStat(f.ctx(), &f.creds, name, &opts, true))
}

// Statfs describes the filesystem holding the named file (statfs(2)); Type is
// FUSE_SUPER_MAGIC, as a Linux guest's virtio-fs mount reports.
//
// Errors: *fs.PathError with op "statfs".
func (f *FS) Statfs(name string) (*syscall.Statfs_t, error) {
	s, err := f.vfs.Statfs(f.ctx(), &f.creds, name)
	if err != nil {
		return nil, pathErr("statfs", name, err)
	}
	frsize := s.Frsize
	if frsize == 0 {
		frsize = s.Bsize
	}
	return &syscall.Statfs_t{
		Type:    fuseSuperMagic,
		Bsize:   int64(s.Bsize),
		Blocks:  s.Blocks,
		Bfree:   s.Bfree,
		Bavail:  s.Bavail,
		Files:   s.Files,
		Ffree:   s.Ffree,
		Namelen: int64(s.Namelen),
		Frsize:  int64(frsize),
	}, nil
}

// Getxattr returns the value of the extended attribute attr of the named
// file, following symlinks (getxattr(2)).
//
// Errors: *fs.PathError with op "getxattr": ENODATA, ENOTSUP, ERANGE, ...
func (f *FS) Getxattr(name, attr string) ([]byte, error) {
	v, err := f.vfs.Getxattr(f.ctx(), &f.creds, name, attr, true)
	return v, pathErr("getxattr", name, err)
}

// Setxattr sets the extended attribute attr of the named file, following
// symlinks (setxattr(2)); flags are 0, unix.XATTR_CREATE or
// unix.XATTR_REPLACE.
//
// Errors: *fs.PathError with op "setxattr": EEXIST, ENODATA, ENOTSUP,
// E2BIG, ...
func (f *FS) Setxattr(name, attr string, data []byte, flags int) error {
	return pathErr("setxattr", name, f.vfs.Setxattr(f.ctx(), &f.creds, name, attr, data, flags, true))
}

// Listxattr lists the extended attribute names of the named file, following
// symlinks (listxattr(2)).
//
// Errors: *fs.PathError with op "listxattr".
func (f *FS) Listxattr(name string) ([]string, error) {
	v, err := f.vfs.Listxattr(f.ctx(), &f.creds, name, true)
	return v, pathErr("listxattr", name, err)
}

// Removexattr removes the extended attribute attr of the named file,
// following symlinks (removexattr(2)).
//
// Errors: *fs.PathError with op "removexattr": ENODATA, ENOTSUP, ...
func (f *FS) Removexattr(name, attr string) error {
	return pathErr("removexattr", name, f.vfs.Removexattr(f.ctx(), &f.creds, name, attr, true))
}

// Sync writes back everything cached for the share and asks the host to
// make it stable (syncfs(2)).
//
// Errors: *fs.PathError with op "sync" and path "/".
func (f *FS) Sync() error {
	return pathErr("sync", "/", f.vfs.Sync(f.ctx()))
}

// Close closes the share: it closes the files still open (writing back their
// data), forgets every cached name, ends the FUSE session (DESTROY) and
// releases the device. Later calls fail with ENOTCONN.
//
// Errors: *fs.PathError with op "close" and path "/": fs.ErrClosed if already
// closed; otherwise the first error met while tearing down (every step is
// still taken).
func (f *FS) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: "/", Err: fs.ErrClosed}
	}
	f.closed = true
	var files []*File
	for file := f.files; file != nil; file = file.next {
		files = append(files, file)
	}
	f.mu.Unlock()
	var errs []error
	for _, file := range files {
		if err := file.Close(); err != nil && !errors.Is(err, fs.ErrClosed) {
			errs = append(errs, err)
		}
	}
	ctx := f.ctx()
	if err := f.vfs.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	if f.shutdown != nil {
		if err := f.shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	f.mu.Lock()
	if len(errs) > 0 {
		return pathErr("close", "/", errs[0])
	}
	return nil
}
