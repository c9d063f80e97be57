package suite

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
	"testing"

	"github.com/govirtiofs/govirtiofs"
)

// fuseSuperMagic is FUSE_SUPER_MAGIC (include/uapi/linux/magic.h), the f_type of a FUSE mount.
const fuseSuperMagic = 0x65735546

// Names checks names with leading slashes, "." and ".." (which stops at the share's root), the
// errors' types and paths, FileInfo.Sys, Statfs and Sync. It works in base/names.
func Names(t *testing.T, f *govirtiofs.FS, base string) {
	names := join(base, "names")
	if err := f.WriteFile("/"+names+"/../top-file", []byte("x"), 0o644); err == nil {
		t.Errorf("WriteFile through a missing directory and .. succeeded")
	}
	if err := f.MkdirAll("/"+names+"/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.WriteFile("/"+names+"/sub/file", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := f.Stat(names + "/sub/file")
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.Stat("/" + names + "//sub/../sub/./file")
	if err != nil {
		t.Fatal(err)
	}
	if !govirtiofs.SameFile(a, b) {
		t.Errorf("two names of one file: SameFile false")
	}
	st, ok := a.Sys().(*syscall.Stat_t)
	if !ok || st.Ino == 0 || st.Dev == 0 {
		t.Errorf("Sys() = %#v, want a *syscall.Stat_t with Ino and Dev", a.Sys())
	}
	root, err := f.Stat("/")
	if err != nil || !root.IsDir() || root.Name() != "/" {
		t.Errorf("Stat(/) = %v, %v; want the root directory named /", root, err)
	}
	if _, err := f.Stat("../../" + names); err != nil {
		t.Errorf("Stat(../../%s): %v; .. stops at the share root", names, err)
	}
	missing := names + "/missing"
	_, err = f.Stat(missing)
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Op != "stat" || pe.Path != missing || pe.Err != syscall.ENOENT || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(%s) = %#v, want PathError{stat %s ENOENT}", missing, err, missing)
	}
	err = f.Rename(missing, names+"/x")
	var le *os.LinkError
	if !errors.As(err, &le) || le.Op != "rename" || le.Err != syscall.ENOENT {
		t.Errorf("Rename(%s) = %#v, want LinkError{rename ENOENT}", missing, err)
	}
	st2, err := f.Statfs("/" + names)
	if err != nil || st2.Type != fuseSuperMagic || st2.Bsize == 0 {
		t.Errorf("Statfs = %+v, %v; want FUSE_SUPER_MAGIC and a block size", st2, err)
	}
	if err := f.Sync(); err != nil {
		t.Errorf("Sync: %v", err)
	}
}
