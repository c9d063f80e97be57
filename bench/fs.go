package bench

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/govirtiofs/govirtiofs"
)

// FS is what a workload needs from a file system client. Names are slash-separated paths from the
// shared directory's root.
type FS interface {
	// Stat returns the named file's attributes, following symlinks (os.Stat).
	//
	// Errors: *fs.PathError.
	Stat(name string) (fs.FileInfo, error)
	// Open opens the named file for reading (os.Open). The caller closes it.
	//
	// Errors: *fs.PathError.
	Open(name string) (File, error)
	// Create creates or truncates the named file for reading and writing (os.Create). The caller
	// closes it.
	//
	// Errors: *fs.PathError.
	Create(name string) (File, error)
	// Remove removes the named file or empty directory (os.Remove).
	//
	// Errors: *fs.PathError.
	Remove(name string) error
	// Mkdir creates a directory (os.Mkdir).
	//
	// Errors: *fs.PathError.
	Mkdir(name string, perm fs.FileMode) error
	// ReadDir returns the named directory's entries sorted by name (os.ReadDir).
	//
	// Errors: *fs.PathError; the entries read so far come with it.
	ReadDir(name string) ([]fs.DirEntry, error)
}

// File is an open file of an [FS].
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Closer
	// Stat returns the open file's attributes (fstat, os.File.Stat).
	//
	// Errors: *fs.PathError.
	Stat() (fs.FileInfo, error)
}

// OS is an [FS] over package os, rooted at a directory: a kernel client's mount point in the
// guest, or the shared directory itself on the host.
type OS struct {
	// Root is the directory that names are relative to. Immutable.
	Root string
}

func (o OS) path(name string) string { return filepath.Join(o.Root, filepath.FromSlash(name)) }

func (o OS) Stat(name string) (fs.FileInfo, error) { return os.Stat(o.path(name)) }

func (o OS) Open(name string) (File, error) {
	f, err := os.Open(o.path(name))
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (o OS) Create(name string) (File, error) {
	f, err := os.Create(o.path(name))
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (o OS) Remove(name string) error                   { return os.Remove(o.path(name)) }
func (o OS) Mkdir(name string, perm fs.FileMode) error  { return os.Mkdir(o.path(name), perm) }
func (o OS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(o.path(name)) }

// Govirtiofs is an [FS] over a *govirtiofs.FS.
type Govirtiofs struct {
	// FS is the share. Immutable; the owner closes it.
	FS *govirtiofs.FS
	// RT, if set, collects FS's GETATTR round trips (FS was opened with RT.Observe as its
	// Options.OnRoundTrip) for the getattr workload. Immutable.
	RT *RoundTrips
}

func (g Govirtiofs) roundTrips() *RoundTrips { return g.RT }

func (g Govirtiofs) Stat(name string) (fs.FileInfo, error) { return g.FS.Stat(name) }

func (g Govirtiofs) Open(name string) (File, error) {
	f, err := g.FS.Open(name)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (g Govirtiofs) Create(name string) (File, error) {
	f, err := g.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (g Govirtiofs) Remove(name string) error                   { return g.FS.Remove(name) }
func (g Govirtiofs) Mkdir(name string, perm fs.FileMode) error  { return g.FS.Mkdir(name, perm) }
func (g Govirtiofs) ReadDir(name string) ([]fs.DirEntry, error) { return g.FS.ReadDir(name) }

// Interface checks.
var (
	_ FS = OS{}
	_ FS = Govirtiofs{}
)
