package virtiofsdtest

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Submount creates the directory name inside dir and mounts a fresh tmpfs
// on it, so that it is a host mount point inside the share (virtiofsd with
// AnnounceSubmounts reports it with FUSE_ATTR_SUBMOUNT). The tmpfs is
// unmounted (lazily, in case virtiofsd still holds it) when the test ends.
// It returns the mount point's path. Needs root; failures are t.Fatal.
func Submount(t testing.TB, dir, name string) string {
	t.Helper()
	mnt := filepath.Join(dir, name)
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=16m,mode=0755"); err != nil {
		t.Fatalf("mount -t tmpfs tmpfs %s: %v", mnt, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("umount %s: %v", mnt, err)
		}
	})
	return mnt
}
