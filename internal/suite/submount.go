package suite

import (
	"errors"
	"syscall"
	"testing"

	"github.com/govirtiofs/govirtiofs"
)

// SubmountInner and SubmountData are the file that [Submount] expects inside the mount point, and
// its contents.
const (
	SubmountInner = "inner"
	SubmountData  = "in"
)

// Submount checks a host mount point mnt inside the share (virtiofsd with -o
// announce_submounts): it shows as another device than the share's root, as in a Linux guest,
// the file mnt/SubmountInner (holding SubmountData, made by the host) is readable through
// "mnt/../mnt", and renaming it out of the mount is EXDEV, as rename(2) between mounts.
func Submount(t *testing.T, f *govirtiofs.FS, mnt string) {
	dev := func(name string) uint64 {
		t.Helper()
		fi, err := f.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			t.Fatalf("Stat(%s).Sys() is %T", name, fi.Sys())
		}
		return st.Dev
	}
	inner := mnt + "/" + SubmountInner
	if root, m, in := dev("."), dev(mnt), dev(inner); root == m || m != in {
		t.Errorf("st_dev: root %d, %s %d, %s %d; want the mount point and its file alike and unlike the root", root, mnt, m, inner, in)
	}
	if b, err := f.ReadFile(mnt + "/../" + mnt + "/" + SubmountInner); err != nil || string(b) != SubmountData {
		t.Errorf("ReadFile(%s) = %q, %v; want %q", inner, b, err, SubmountData)
	}
	if err := f.Rename(inner, "submount-outer"); !errors.Is(err, syscall.EXDEV) {
		t.Errorf("Rename across the submount = %v, want EXDEV", err)
	}
}
