package govirtiofs

import (
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/govirtiofs/govirtiofs/vfs"
)

// fileInfo is the fs.FileInfo of a node, built as package os builds it from
// a struct stat (os/stat_linux.go fillFileStatFromSys). It holds the
// struct stat only (every method derives from it), so that it fits in a
// 160-byte allocation: a stat answered from the caches allocates nothing
// else.
type fileInfo struct {
	name string
	sys  syscall.Stat_t
}

// fillStat converts st into a struct stat.
func fillStat(sys *syscall.Stat_t, st *vfs.Statx) {
	*sys = syscall.Stat_t{
		Dev:     st.Dev,
		Ino:     st.Ino,
		Nlink:   uint64(st.Nlink),
		Mode:    st.Mode,
		Uid:     st.UID,
		Gid:     st.GID,
		Rdev:    st.Rdev,
		Size:    int64(st.Size),
		Blksize: int64(st.Blksize),
		Blocks:  int64(st.Blocks),
		Atim:    timespec(st.Atime),
		Mtim:    timespec(st.Mtime),
		Ctim:    timespec(st.Ctime),
	}
}

// reuseFileInfo returns the fileInfo of name with attributes st: the one
// kept in slot if it says the same (a stat of an unchanged node, which
// then allocates nothing: an allocation is among the dearest steps of a
// cached stat under TCG), else a new one, kept there for the next stat.
// A fileInfo is never changed once made, so handing it out twice is as
// good as making two (Sys's *syscall.Stat_t is for reading, as package
// os means it).
func reuseFileInfo(slot *vfs.InfoSlot, name string, st *vfs.Statx) *fileInfo {
	var sys syscall.Stat_t
	fillStat(&sys, st)
	if fi, _ := slot.Load().(*fileInfo); fi != nil && fi.sys == sys && fi.name == name {
		return fi
	}
	fi := &fileInfo{name: name, sys: sys}
	slot.Store(fi)
	return fi
}

// timespec converts a time to a struct timespec; the zero time is zero.
func timespec(t time.Time) syscall.Timespec {
	if t.IsZero() {
		return syscall.Timespec{}
	}
	return syscall.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

// fileMode converts a Linux st_mode into an fs.FileMode.
func fileMode(mode uint32) fs.FileMode {
	m := fs.FileMode(mode & 0o777)
	switch mode & vfs.S_IFMT {
	case vfs.S_IFBLK:
		m |= fs.ModeDevice
	case vfs.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case vfs.S_IFDIR:
		m |= fs.ModeDir
	case vfs.S_IFIFO:
		m |= fs.ModeNamedPipe
	case vfs.S_IFLNK:
		m |= fs.ModeSymlink
	case vfs.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// syscallMode converts an fs.FileMode's permission and special bits into
// Linux mode bits, as package os does for open and mkdir.
func syscallMode(m fs.FileMode) uint32 {
	o := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		o |= syscall.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		o |= syscall.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		o |= syscall.S_ISVTX
	}
	return o
}

// typeMode converts a d_type into the type bits of an fs.FileMode.
func typeMode(dt uint8) fs.FileMode {
	switch dt {
	case vfs.DT_DIR:
		return fs.ModeDir
	case vfs.DT_LNK:
		return fs.ModeSymlink
	case vfs.DT_FIFO:
		return fs.ModeNamedPipe
	case vfs.DT_SOCK:
		return fs.ModeSocket
	case vfs.DT_CHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case vfs.DT_BLK:
		return fs.ModeDevice
	}
	return 0
}

func (fi *fileInfo) Name() string      { return fi.name }
func (fi *fileInfo) Size() int64       { return fi.sys.Size }
func (fi *fileInfo) Mode() fs.FileMode { return fileMode(fi.sys.Mode) }
func (fi *fileInfo) IsDir() bool       { return fi.sys.Mode&vfs.S_IFMT == vfs.S_IFDIR }

// ModTime returns the modification time, as os does from st_mtim.
func (fi *fileInfo) ModTime() time.Time { return time.Unix(fi.sys.Mtim.Sec, fi.sys.Mtim.Nsec) }

// Sys returns a *syscall.Stat_t, as package os does on Linux.
func (fi *fileInfo) Sys() any { return &fi.sys }

// SameFile reports whether fi1 and fi2 describe the same file: the same
// device and inode number (os.SameFile for FileInfos from this package).
func SameFile(fi1, fi2 fs.FileInfo) bool {
	a, ok1 := fi1.(*fileInfo)
	b, ok2 := fi2.(*fileInfo)
	if !ok1 || !ok2 {
		return os.SameFile(fi1, fi2)
	}
	return a.sys.Dev == b.sys.Dev && a.sys.Ino == b.sys.Ino
}

// dirEntry is an fs.DirEntry from a directory listing. Info stats the name
// when called, as os's does on Linux.
type dirEntry struct {
	dir    *listedDir
	name   string
	typ    fs.FileMode
	lstatd *fileInfo // set when the type had to be found by Lstat
}

// listedDir is the directory that a listing's entries share.
type listedDir struct {
	fs   *FS
	path string // the directory's path as given to the FS
}

func (d *dirEntry) Name() string      { return d.name }
func (d *dirEntry) IsDir() bool       { return d.typ.IsDir() }
func (d *dirEntry) Type() fs.FileMode { return d.typ }
func (d *dirEntry) Info() (fs.FileInfo, error) {
	if d.lstatd != nil {
		return d.lstatd, nil
	}
	return d.dir.fs.Lstat(joinName(d.dir.path, d.name))
}
func (d *dirEntry) String() string { return fs.FormatDirEntry(d) }

// joinName appends name to the directory path dir as the caller wrote it
// (os joins with a slash the same way for DirEntry.Info).
func joinName(dir, name string) string {
	if dir == "" || strings.HasSuffix(dir, "/") {
		return dir + name
	}
	return dir + "/" + name
}

// processUmask reads this process's umask from /proc/self/status (Linux
// 4.7+); 022 when it cannot be read. Reading it with umask(2) would change
// it for a moment under the other goroutines' feet.
func processUmask() uint32 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0o022
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			u, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				return 0o022
			}
			return uint32(u)
		}
	}
	return 0o022
}
