package vfstest

import (
	"strings"
	"syscall"

	"github.com/govirtiofs/govirtiofs/vfs"
)

// The Host* methods change the tree behind vfs's back, as another client
// of the shared directory would; no reference is handed out. Paths are
// slash-separated from the root and symlinks are not followed.

func (f *FS) walkLocked(path string) (*Inode, string, error) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	d := f.root
	for _, p := range parts[:len(parts)-1] {
		c := d.children[p]
		if c == nil || !isDir(c) {
			return nil, "", syscall.ENOENT
		}
		d = c
	}
	return d, parts[len(parts)-1], nil
}

func (f *FS) hostAdd(path string, mode uint32, fill func(*Inode)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, name, err := f.walkLocked(path)
	if err != nil {
		return err
	}
	if d.children[name] != nil {
		return syscall.EEXIST
	}
	n := f.newInodeLocked(mode)
	fill(n)
	d.children[name] = n
	return nil
}

// HostMkdir creates a directory; with submount it is announced as a
// submount root (FUSE_ATTR_SUBMOUNT).
func (f *FS) HostMkdir(path string, submount bool) error {
	return f.hostAdd(path, vfs.S_IFDIR|0o755, func(n *Inode) { n.submount = submount })
}

// HostWriteFile creates a regular file with data.
func (f *FS) HostWriteFile(path string, data []byte) error {
	return f.hostAdd(path, vfs.S_IFREG|0o644, func(n *Inode) { n.data = append([]byte{}, data...) })
}

// HostSymlink creates a symlink to target.
func (f *FS) HostSymlink(target, path string) error {
	return f.hostAdd(path, vfs.S_IFLNK|0o777, func(n *Inode) { n.target = target })
}

// HostRemove removes a name (a directory with everything below it).
func (f *FS) HostRemove(path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, name, err := f.walkLocked(path)
	if err != nil {
		return err
	}
	if d.children[name] == nil {
		return syscall.ENOENT
	}
	delete(d.children, name)
	return nil
}

// HostData returns a regular file's contents.
func (f *FS) HostData(path string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, name, err := f.walkLocked(path)
	if err != nil {
		return nil, err
	}
	n := d.children[name]
	if n == nil {
		return nil, syscall.ENOENT
	}
	return append([]byte{}, n.data...), nil
}
