package suite

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/govirtiofs/govirtiofs"
)

// WriteTree writes a tree of directories, files and symlinks at the root of s and returns the
// names fstest.TestFS should find, relative to that root:
//
//	d0/ d1/ d2/   each with f0.txt..f3.txt and sub/deep (70000 zero bytes)
//	empty/        top  "top\n"
//	link -> top   dirlink -> d1   d2/rel -> ../d0/f0.txt
//
// Errors: the first failing call's.
func WriteTree(s Sys) ([]string, error) {
	var want []string
	var errs []error
	must := func(err error) { errs = append(errs, err) }
	for i := range 3 {
		d := fmt.Sprintf("d%d", i)
		must(s.Mkdir(d, 0o755))
		for j := range 4 {
			name := fmt.Sprintf("%s/f%d.txt", d, j)
			must(s.WriteFile(name, []byte(fmt.Sprintf("file %s\n", name)), 0o644))
			want = append(want, name)
		}
		must(s.Mkdir(d+"/sub", 0o700))
		must(s.WriteFile(d+"/sub/deep", make([]byte, 70000), 0o600))
		want = append(want, d+"/sub/deep")
	}
	must(s.Mkdir("empty", 0o755))
	must(s.WriteFile("top", []byte("top\n"), 0o644))
	must(s.Symlink("top", "link"))
	must(s.Symlink("d1", "dirlink"))
	must(s.Symlink("../d0/f0.txt", "d2/rel"))
	want = append(want, "top", "link", "dirlink", "empty", "d2/rel")
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return want, nil
}

// sub is fs.Sub of f's io/fs view at dir, or the view itself for the share's root.
func sub(t *testing.T, f *govirtiofs.FS, dir string) fs.FS {
	t.Helper()
	if dir == "" {
		return f.IOFS()
	}
	s, err := fs.Sub(f.IOFS(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// IOFS writes the [WriteTree] tree to base/iofs through f and runs fstest.TestFS on it through
// fs.Sub, then on base's view (which should hold nothing else) for two of its names.
func IOFS(t *testing.T, f *govirtiofs.FS, base string) {
	dir := join(base, "iofs")
	if err := f.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	want, err := WriteTree(Ours(f, dir))
	if err != nil {
		t.Fatal(err)
	}
	CheckTree(t, f, dir, want)
	if err := fstest.TestFS(sub(t, f, base), "iofs/top", "iofs/d0/f1.txt"); err != nil {
		t.Error(err)
	}
}

// CheckTree runs fstest.TestFS on the tree at dir (as [WriteTree] wrote it, through f or by the
// host), expecting the names want.
func CheckTree(t *testing.T, f *govirtiofs.FS, dir string, want []string) {
	if err := fstest.TestFS(sub(t, f, dir), want...); err != nil {
		t.Error(err)
	}
}

// IOFSInvalid checks that io/fs names are validated, and that errors name the path as the caller
// gave it, relative to a Sub. It works in base/inv.
func IOFSInvalid(t *testing.T, f *govirtiofs.FS, base string) {
	fsys := sub(t, f, base)
	for _, name := range []string{"/top", "a/../b", "", "a/", "./a", "a//b"} {
		check := func(op string, err error) {
			t.Helper()
			var pe *fs.PathError
			if !errors.As(err, &pe) || !errors.Is(err, fs.ErrInvalid) || pe.Path != name {
				t.Errorf("%s(%q) = %v, want a PathError for %q with fs.ErrInvalid", op, name, err, name)
			}
		}
		_, err := fsys.Open(name)
		check("Open", err)
		_, err = fs.Stat(fsys, name)
		check("Stat", err)
		_, err = fs.ReadDir(fsys, name)
		check("ReadDir", err)
		_, err = fs.ReadFile(fsys, name)
		check("ReadFile", err)
		_, err = fs.ReadLink(fsys, name)
		check("ReadLink", err)
		_, err = fs.Lstat(fsys, name)
		check("Lstat", err)
		_, err = fs.Sub(fsys, name)
		check("Sub", err)
	}
	if err := f.MkdirAll(join(base, "inv/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	inv, err := fs.Sub(fsys, "inv")
	if err != nil {
		t.Fatal(err)
	}
	_, err = fs.ReadFile(inv, "sub/missing")
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != "sub/missing" || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile(sub/missing) in Sub = %v, want a not-exist PathError for sub/missing", err)
	}
	_, err = fs.ReadLink(inv, "sub")
	if !errors.As(err, &pe) || pe.Path != "sub" || pe.Op != "readlink" {
		t.Errorf("ReadLink(sub) in Sub = %v, want a readlink PathError for sub", err)
	}
}
