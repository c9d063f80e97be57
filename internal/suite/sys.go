package suite

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs"
)

// Sys is the part of the govirtiofs.FS API that package os has too, so that one test body runs
// against both: [Ours] and [OS] implement it below a directory.
type Sys interface {
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	Mkdir(name string, perm fs.FileMode) error
	MkdirAll(name string, perm fs.FileMode) error
	Remove(name string) error
	RemoveAll(name string) error
	Rename(oldname, newname string) error
	Stat(name string) (fs.FileInfo, error)
	Lstat(name string) (fs.FileInfo, error)
	ReadDir(name string) ([]fs.DirEntry, error)
	ReadFile(name string) ([]byte, error)
	WriteFile(name string, data []byte, perm fs.FileMode) error
	Symlink(oldname, newname string) error
	Readlink(name string) (string, error)
	Link(oldname, newname string) error
	Chmod(name string, mode fs.FileMode) error
	Chown(name string, uid, gid int) error
	Lchown(name string, uid, gid int) error
	Chtimes(name string, atime, mtime time.Time) error
	Truncate(name string, size int64) error
	Getxattr(name, attr string) ([]byte, error)
	Setxattr(name, attr string, data []byte, flags int) error
	Listxattr(name string) ([]string, error)
	Removexattr(name, attr string) error
}

// File is the part of the *govirtiofs.File API that *os.File has too.
type File interface {
	io.ReadWriteSeeker
	io.ReaderAt
	io.WriterAt
	io.Closer
	io.StringWriter
	Name() string
	Stat() (fs.FileInfo, error)
	ReadDir(n int) ([]fs.DirEntry, error)
	Readdirnames(n int) ([]string, error)
	Truncate(size int64) error
	Sync() error
	Chmod(mode fs.FileMode) error
	Chown(uid, gid int) error
}

// join is dir/name, or name alone when dir is empty (the share's root).
func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// Ours returns a Sys that runs its calls on f below dir ("" is the share's root).
func Ours(f *govirtiofs.FS, dir string) Sys { return ourSys{fs: f, dir: dir} }

// ourSys runs Sys calls on an FS below dir.
type ourSys struct {
	fs  *govirtiofs.FS
	dir string
}

func (s ourSys) p(name string) string { return join(s.dir, name) }

func (s ourSys) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := s.fs.OpenFile(s.p(name), flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}
func (s ourSys) Mkdir(name string, perm fs.FileMode) error    { return s.fs.Mkdir(s.p(name), perm) }
func (s ourSys) MkdirAll(name string, perm fs.FileMode) error { return s.fs.MkdirAll(s.p(name), perm) }
func (s ourSys) Remove(name string) error                     { return s.fs.Remove(s.p(name)) }
func (s ourSys) RemoveAll(name string) error                  { return s.fs.RemoveAll(s.p(name)) }
func (s ourSys) Rename(o, n string) error                     { return s.fs.Rename(s.p(o), s.p(n)) }
func (s ourSys) Stat(name string) (fs.FileInfo, error)        { return s.fs.Stat(s.p(name)) }
func (s ourSys) Lstat(name string) (fs.FileInfo, error)       { return s.fs.Lstat(s.p(name)) }
func (s ourSys) ReadDir(name string) ([]fs.DirEntry, error)   { return s.fs.ReadDir(s.p(name)) }
func (s ourSys) ReadFile(name string) ([]byte, error)         { return s.fs.ReadFile(s.p(name)) }
func (s ourSys) WriteFile(name string, data []byte, perm fs.FileMode) error {
	return s.fs.WriteFile(s.p(name), data, perm)
}

// Symlink keeps the target as given: it is data, not a name in dir.
func (s ourSys) Symlink(target, name string) error    { return s.fs.Symlink(target, s.p(name)) }
func (s ourSys) Readlink(name string) (string, error) { return s.fs.Readlink(s.p(name)) }
func (s ourSys) Link(o, n string) error               { return s.fs.Link(s.p(o), s.p(n)) }
func (s ourSys) Chmod(name string, mode fs.FileMode) error {
	return s.fs.Chmod(s.p(name), mode)
}
func (s ourSys) Chown(name string, uid, gid int) error  { return s.fs.Chown(s.p(name), uid, gid) }
func (s ourSys) Lchown(name string, uid, gid int) error { return s.fs.Lchown(s.p(name), uid, gid) }
func (s ourSys) Chtimes(name string, a, m time.Time) error {
	return s.fs.Chtimes(s.p(name), a, m)
}
func (s ourSys) Truncate(name string, size int64) error { return s.fs.Truncate(s.p(name), size) }
func (s ourSys) Getxattr(name, attr string) ([]byte, error) {
	return s.fs.Getxattr(s.p(name), attr)
}
func (s ourSys) Setxattr(name, attr string, data []byte, flags int) error {
	return s.fs.Setxattr(s.p(name), attr, data, flags)
}
func (s ourSys) Listxattr(name string) ([]string, error) { return s.fs.Listxattr(s.p(name)) }
func (s ourSys) Removexattr(name, attr string) error {
	return s.fs.Removexattr(s.p(name), attr)
}

// OS returns a Sys that runs its calls through package os (and unix for extended attributes)
// below dir.
func OS(dir string) Sys { return osSys{dir: dir} }

// osSys runs Sys calls through package os below dir.
type osSys struct{ dir string }

func (s osSys) p(name string) string { return s.dir + "/" + name }

func (s osSys) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(s.p(name), flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}
func (s osSys) Mkdir(name string, perm fs.FileMode) error    { return os.Mkdir(s.p(name), perm) }
func (s osSys) MkdirAll(name string, perm fs.FileMode) error { return os.MkdirAll(s.p(name), perm) }
func (s osSys) Remove(name string) error                     { return os.Remove(s.p(name)) }
func (s osSys) RemoveAll(name string) error                  { return os.RemoveAll(s.p(name)) }
func (s osSys) Rename(o, n string) error                     { return os.Rename(s.p(o), s.p(n)) }
func (s osSys) Stat(name string) (fs.FileInfo, error)        { return os.Stat(s.p(name)) }
func (s osSys) Lstat(name string) (fs.FileInfo, error)       { return os.Lstat(s.p(name)) }
func (s osSys) ReadDir(name string) ([]fs.DirEntry, error)   { return os.ReadDir(s.p(name)) }
func (s osSys) ReadFile(name string) ([]byte, error)         { return os.ReadFile(s.p(name)) }
func (s osSys) WriteFile(name string, data []byte, perm fs.FileMode) error {
	return os.WriteFile(s.p(name), data, perm)
}
func (s osSys) Symlink(target, name string) error    { return os.Symlink(target, s.p(name)) }
func (s osSys) Readlink(name string) (string, error) { return os.Readlink(s.p(name)) }
func (s osSys) Link(o, n string) error               { return os.Link(s.p(o), s.p(n)) }
func (s osSys) Chmod(name string, mode fs.FileMode) error {
	return os.Chmod(s.p(name), mode)
}
func (s osSys) Chown(name string, uid, gid int) error  { return os.Chown(s.p(name), uid, gid) }
func (s osSys) Lchown(name string, uid, gid int) error { return os.Lchown(s.p(name), uid, gid) }
func (s osSys) Chtimes(name string, a, m time.Time) error {
	return os.Chtimes(s.p(name), a, m)
}
func (s osSys) Truncate(name string, size int64) error { return os.Truncate(s.p(name), size) }
func (s osSys) Getxattr(name, attr string) ([]byte, error) {
	buf := make([]byte, 64<<10)
	n, err := unix.Getxattr(s.p(name), attr, buf)
	if err != nil {
		return nil, &fs.PathError{Op: "getxattr", Path: s.p(name), Err: err}
	}
	return buf[:n], nil
}
func (s osSys) Setxattr(name, attr string, data []byte, flags int) error {
	if err := unix.Setxattr(s.p(name), attr, data, flags); err != nil {
		return &fs.PathError{Op: "setxattr", Path: s.p(name), Err: err}
	}
	return nil
}
func (s osSys) Listxattr(name string) ([]string, error) {
	buf := make([]byte, 64<<10)
	n, err := unix.Listxattr(s.p(name), buf)
	if err != nil {
		return nil, &fs.PathError{Op: "listxattr", Path: s.p(name), Err: err}
	}
	var names []string
	for _, b := range strings.Split(string(buf[:n]), "\x00") {
		if b != "" {
			names = append(names, b)
		}
	}
	return names, nil
}
func (s osSys) Removexattr(name, attr string) error {
	if err := unix.Removexattr(s.p(name), attr); err != nil {
		return &fs.PathError{Op: "removexattr", Path: s.p(name), Err: err}
	}
	return nil
}

// DescribeErr renders an error for comparison: its type, op, path (with the prefix strip
// removed) and errno.
func DescribeErr(err error, strip string) string {
	var (
		pe *fs.PathError
		le *os.LinkError
		e  syscall.Errno
	)
	switch {
	case err == nil:
		return "ok"
	case err == io.EOF:
		return "EOF"
	case errors.As(err, &pe):
		return fmt.Sprintf("PathError(%s %s: %s)", pe.Op, strings.TrimPrefix(pe.Path, strip), DescribeErr(pe.Err, strip))
	case errors.As(err, &le):
		return fmt.Sprintf("LinkError(%s %s %s: %s)", le.Op, strings.TrimPrefix(le.Old, strip), strings.TrimPrefix(le.New, strip), DescribeErr(le.Err, strip))
	case errors.As(err, &e):
		return unix.ErrnoName(e)
	case errors.Is(err, fs.ErrClosed), err.Error() == "use of closed file":
		// os.File.ReadDir on a closed file returns internal/poll's
		// ErrFileClosing unconverted; the FS returns fs.ErrClosed.
		return "ErrClosed"
	case strings.Contains(err.Error(), "invalid use of WriteAt"):
		return "WriteAtInAppendMode"
	case strings.Contains(err.Error(), "negative offset"):
		return "negative offset"
	}
	return "other: " + err.Error()
}

// DescribeInfo renders the portable parts of a FileInfo: name, mode, size (not of
// directories), link count (not of directories), owner and group.
func DescribeInfo(fi fs.FileInfo) string {
	size := fi.Size()
	if fi.IsDir() {
		size = -1 // directory sizes differ between filesystems
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Sprintf("%s %v size=%d (Sys is %T)", fi.Name(), fi.Mode(), size, fi.Sys())
	}
	return fmt.Sprintf("%s %v size=%d nlink=%d uid=%d gid=%d", fi.Name(), fi.Mode(), size, nlinkOf(fi, st), st.Uid, st.Gid)
}

// nlinkOf is st_nlink, but not for directories, whose link count depends on the filesystem
// (btrfs reports 1).
func nlinkOf(fi fs.FileInfo, st *syscall.Stat_t) uint64 {
	if fi.IsDir() {
		return 0
	}
	return st.Nlink
}

// DescribeEntries renders directory entries sorted by name.
func DescribeEntries(ents []fs.DirEntry) string {
	var parts []string
	for _, e := range ents {
		parts = append(parts, fmt.Sprintf("%s:%v", e.Name(), e.Type()))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// recorder collects a test body's observations as lines.
type recorder struct {
	lines []string
	strip string
}

func (r *recorder) add(format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

// err records what a call returned.
func (r *recorder) err(what string, err error) {
	r.add("%s: %s", what, DescribeErr(err, r.strip))
}
