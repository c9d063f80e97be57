package main

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
)

// demoShare is the example directory the demo shares (copied, so the repository stays clean).
//
//go:embed demo/share
var demoShare embed.FS

// demoPkg is the demo program's package directory, relative to the module root.
const demoPkg = "cmd/govirtiofs/demo"

// demoWrittenFile is the file the demo program writes into the share (demo.WrittenFile).
const demoWrittenFile = "written-by-guest.txt"

// demoSubmount is the directory of the copied share on which a tmpfs is mounted, so that the
// guest sees a submount (virtiofsd -o announce_submounts).
const demoSubmount = "mnt"

// prepareDemoShare copies the example into a fresh temporary directory, adds what embed cannot
// carry (a symlink, the submount) and returns the directory and a cleanup function that unmounts
// and removes it. A failed mount (not root) only loses the submount.
func prepareDemoShare(log *slog.Logger) (string, func(), error) {
	dir, err := os.MkdirTemp("", "govirtiofs-demo-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	sub, err := fs.Sub(demoShare, "demo/share")
	if err == nil {
		err = os.CopyFS(dir, sub)
	}
	if err == nil {
		err = os.Symlink("docs/readme.md", filepath.Join(dir, "readme-link"))
	}
	mnt := filepath.Join(dir, demoSubmount)
	if err == nil {
		err = os.Mkdir(mnt, 0o755)
	}
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("preparing demo share: %w", err)
	}
	if err := syscall.Mount("govirtiofs-demo", mnt, "tmpfs", 0, "size=4m,mode=0755"); err != nil {
		log.Warn("no submount in the demo share: mounting a tmpfs failed", "dir", mnt, "err", err)
		return dir, cleanup, nil
	}
	cleanup = func() {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			log.Warn("unmounting demo submount", "dir", mnt, "err", err)
		}
		os.RemoveAll(dir)
	}
	if err := os.WriteFile(filepath.Join(mnt, "on-tmpfs.txt"), []byte("this file is on a host tmpfs mounted inside the share\n"), 0o644); err != nil {
		cleanup()
		return "", nil, err
	}
	return dir, cleanup, nil
}
