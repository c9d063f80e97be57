package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// LoadModules loads kernel modules (.ko files) in order, as insmod does. A module already loaded
// is not an error.
//
// Errors: the first module that cannot be read or loaded.
func LoadModules(paths []string) error {
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && err != unix.EEXIST {
			return fmt.Errorf("bench: loading module %s: %w", p, err)
		}
	}
	return nil
}

// DropCaches writes back dirty data and drops the kernel's page, dentry and inode caches
// (echo 3 > /proc/sys/vm/drop_caches).
//
// Errors: the write to /proc fails (not root, no procfs).
func DropCaches() error {
	unix.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
}

// kernelClient mounts source at dir with fstype and data for each measurement and unmounts it
// after. Cold means a fresh mount followed by DropCaches: the guest kernel caches nothing of the
// share at the start.
func kernelClient(name, source, dir, fstype, data string) Client {
	return Client{Name: name, Start: func(context.Context) (FS, func() error, error) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, err
		}
		if err := unix.Mount(source, dir, fstype, 0, data); err != nil {
			return nil, nil, fmt.Errorf("mount -t %s -o %q %s %s: %w", fstype, data, source, dir, err)
		}
		if err := DropCaches(); err != nil {
			unix.Unmount(dir, 0)
			return nil, nil, err
		}
		return OS{Root: dir}, func() error {
			if err := unix.Unmount(dir, 0); err != nil {
				return fmt.Errorf("umount %s: %w", dir, err)
			}
			return nil
		}, nil
	}}
}

// KernelVirtiofsClient is the guest kernel's virtiofs (mount -t virtiofs TAG DIR); its caching
// follows virtiofsd's cache option. See kernelClient for what cold means.
func KernelVirtiofsClient(tag, mountDir string) Client {
	return kernelClient(ClientKernelVirtiofs, tag, filepath.Join(mountDir, "virtiofs"), "virtiofs", "")
}

// NinePMsize is the msize of the 9p mounts.
const NinePMsize = 512000

// NinePClient is the guest kernel's 9p over virtio with cache (none, loose or mmap): mount -t 9p
// -o trans=virtio,version=9p2000.L,msize=512000,cache=MODE TAG DIR. A virtio-9p channel serves
// one mount at a time, which per-measurement mounting respects. See kernelClient for what cold
// means.
func NinePClient(cache, tag, mountDir string) Client {
	name := map[string]string{"none": Client9PNone, "loose": Client9PLoose, "mmap": Client9PMmap}[cache]
	if name == "" {
		name = "kernel-9p-" + cache
	}
	data := fmt.Sprintf("trans=virtio,version=9p2000.L,msize=%d,cache=%s", NinePMsize, cache)
	return kernelClient(name, tag, filepath.Join(mountDir, "9p-"+cache), "9p", data)
}
