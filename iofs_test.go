package govirtiofs

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
	"testing/fstest"
)

// makeTree writes a tree of directories, files and symlinks below dir and
// returns the names fstest.TestFS should find, relative to dir.
func makeTree(t *testing.T, f *FS, dir string) []string {
	t.Helper()
	var want []string
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.MkdirAll(dir, 0o755))
	for i := range 3 {
		d := fmt.Sprintf("d%d", i)
		must(f.Mkdir(dir+"/"+d, 0o755))
		for j := range 4 {
			name := fmt.Sprintf("%s/f%d.txt", d, j)
			must(f.WriteFile(dir+"/"+name, []byte(fmt.Sprintf("file %s\n", name)), 0o644))
			want = append(want, name)
		}
		must(f.Mkdir(dir+"/"+d+"/sub", 0o700))
		must(f.WriteFile(dir+"/"+d+"/sub/deep", make([]byte, 70000), 0o600))
		want = append(want, d+"/sub/deep")
	}
	must(f.Mkdir(dir+"/empty", 0o755))
	must(f.WriteFile(dir+"/top", []byte("top\n"), 0o644))
	must(f.Symlink("top", dir+"/link"))
	must(f.Symlink("d1", dir+"/dirlink"))
	must(f.Symlink("../d0/f0.txt", dir+"/d2/rel"))
	want = append(want, "top", "link", "dirlink", "empty", "d2/rel")
	return want
}

// testIOFS runs fstest.TestFS on IOFS and on a Sub of it.
func testIOFS(t *testing.T, f *FS) {
	want := makeTree(t, f, "iofs")
	sub, err := fs.Sub(f.IOFS(), "iofs")
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(sub, want...); err != nil {
		t.Error(err)
	}
	if err := fstest.TestFS(f.IOFS(), "iofs/top", "iofs/d0/f1.txt"); err != nil {
		t.Error(err)
	}
}

// testIOFSInvalid checks that io/fs names are validated.
func testIOFSInvalid(t *testing.T, f *FS) {
	fsys := f.IOFS()
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
	// Errors name the path as the caller gave it, relative to a Sub.
	if err := f.MkdirAll("inv/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	sub, err := fs.Sub(fsys, "inv")
	if err != nil {
		t.Fatal(err)
	}
	_, err = fs.ReadFile(sub, "sub/missing")
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != "sub/missing" || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile(sub/missing) in Sub = %v, want a not-exist PathError for sub/missing", err)
	}
	_, err = fs.ReadLink(sub, "sub")
	if !errors.As(err, &pe) || pe.Path != "sub" || pe.Op != "readlink" {
		t.Errorf("ReadLink(sub) in Sub = %v, want a readlink PathError for sub", err)
	}
}

func TestIOFSMem(t *testing.T)        { testIOFS(t, newMemFS(t)) }
func TestIOFSInvalidMem(t *testing.T) { testIOFSInvalid(t, newMemFS(t)) }
