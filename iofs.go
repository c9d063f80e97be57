package govirtiofs

import (
	"errors"
	"io/fs"
	"path"
)

// IOFS returns the share as an fs.FS rooted at the share's root. It also
// implements fs.StatFS, fs.ReadDirFS, fs.ReadFileFS, fs.ReadLinkFS and
// fs.SubFS. Names are unrooted io/fs names ("a/b", "." for the root),
// checked with fs.ValidPath: others fail with fs.ErrInvalid. Opened files
// are *File. Symlinks are followed as by FS, absolute targets from the
// share's root even in a Sub tree.
func (f *FS) IOFS() fs.FS { return &ioFS{fs: f, root: "."} }

// ioFS is an io/fs view of an FS below root (a valid io/fs name).
type ioFS struct {
	fs   *FS    // immutable
	root string // immutable
}

// resolve checks name and returns its path from the share root.
func (i *ioFS) resolve(op, name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	return path.Join(i.root, name), nil
}

// rename makes the path of a *fs.PathError from the FS the io/fs name the
// caller gave (relative to the Sub root).
func rename(err error, name string) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		pe.Path = name
	}
	return err
}

// Open implements fs.FS. The *File it returns is named name.
func (i *ioFS) Open(name string) (fs.File, error) {
	p, err := i.resolve("open", name)
	if err != nil {
		return nil, err
	}
	file, err := i.fs.openFile(p, name, O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	return file, nil
}

// Stat implements fs.StatFS.
func (i *ioFS) Stat(name string) (fs.FileInfo, error) {
	p, err := i.resolve("stat", name)
	if err != nil {
		return nil, err
	}
	return i.fs.stat(p, name, true)
}

// Lstat implements fs.ReadLinkFS.
func (i *ioFS) Lstat(name string) (fs.FileInfo, error) {
	p, err := i.resolve("lstat", name)
	if err != nil {
		return nil, err
	}
	return i.fs.stat(p, name, false)
}

// ReadLink implements fs.ReadLinkFS.
func (i *ioFS) ReadLink(name string) (string, error) {
	p, err := i.resolve("readlink", name)
	if err != nil {
		return "", err
	}
	t, err := i.fs.Readlink(p)
	return t, rename(err, name)
}

// ReadDir implements fs.ReadDirFS: the entries sorted by name.
func (i *ioFS) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := i.resolve("readdir", name)
	if err != nil {
		return nil, err
	}
	ents, err := i.fs.readDir(p, name)
	return ents, rename(err, name)
}

// ReadFile implements fs.ReadFileFS.
func (i *ioFS) ReadFile(name string) ([]byte, error) {
	p, err := i.resolve("readfile", name)
	if err != nil {
		return nil, err
	}
	return i.fs.readFile(p, name)
}

// Sub implements fs.SubFS: the tree below dir. As with os.DirFS, dir is not
// checked here; operations below a dir that is missing or not a directory
// fail.
func (i *ioFS) Sub(dir string) (fs.FS, error) {
	p, err := i.resolve("sub", dir)
	if err != nil {
		return nil, err
	}
	if dir == "." {
		return i, nil
	}
	return &ioFS{fs: i.fs, root: p}, nil
}

// Interface checks.
var (
	_ fs.StatFS     = (*ioFS)(nil)
	_ fs.ReadDirFS  = (*ioFS)(nil)
	_ fs.ReadFileFS = (*ioFS)(nil)
	_ fs.ReadLinkFS = (*ioFS)(nil)
	_ fs.SubFS      = (*ioFS)(nil)
)
