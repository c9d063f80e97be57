// Package govirtiofs reads and writes a directory that a host shares over
// virtio-fs, from a Go program, with an API shaped like package os.
//
// In a Linux guest whose kernel has no virtio-fs driver loaded (a u-root
// initramfs under QEMU, say), Open finds the virtio-fs device with a given
// tag on the PCI bus or among the virtio-mmio windows and drives it from
// userspace: hugepage DMA memory, polled virtqueues, FUSE requests, no
// kernel module. On a Linux host, Dial connects to virtiofsd's vhost-user
// socket and runs the same stack, which is how the tests run.
//
//	fsys, err := govirtiofs.Dial(ctx, "/run/virtiofsd.sock", govirtiofs.Options{})
//	if err != nil {
//		return err
//	}
//	defer fsys.Close()
//	if err := fsys.WriteFile("hello.txt", []byte("hello\n"), 0o644); err != nil {
//		return err
//	}
//	data, err := fsys.ReadFile("hello.txt")
//
// # Names and errors
//
// Names are slash-separated paths from the share's root; a leading "/"
// changes nothing, and "..", like a symlink's absolute target, never leads
// out of the share. Errors are *fs.PathError (*os.LinkError for Rename, Link
// and Symlink) holding the syscall.Errno the server or the client's path walk
// returned, as package os returns them, so errors.Is(err, fs.ErrNotExist)
// and errors.Is(err, syscall.ENOTEMPTY) work. FileInfo.Sys returns a
// *syscall.Stat_t. IOFS gives the share as an fs.FS for code written
// against io/fs.
//
// # Layers
//
// FS and File are a thin facade over package vfs (path walk, dentry cache,
// submounts, open files), which calls the FUSE client filesystem (package
// fuse) through vfs.FilesystemImpl; that sends its requests through the
// virtio-fs device (package driver) over a virtio transport (virtio/pci,
// virtio/mmio in a guest, virtio/vhostuser on a host).
//
// Lock order:
//
//	FS.mu (open-file set; never held across a request)
//
// The facade holds no lock across a request; the layers below document
// theirs.
package govirtiofs
