// Package mmio is the virtio-mmio transport (virtio spec 1.2 section 4.2,
// the modern "version 2" register layout) for a Go program that drives a
// device from userspace inside a guest, such as QEMU's microvm machine with
// a vhost-user-fs-device. It implements virtio.Transport; the driver
// package sits on top.
//
// Find lists the register windows: from /proc/iomem, where the kernel names
// them after the ACPI ID LNRO0005 (microvm with ACPI), and from
// virtio_mmio.device= kernel arguments (microvm with acpi=off). Open maps a
// window through /dev/mem and checks magic, version and device ID;
// OpenDevice does both for a device type. Nothing uses interrupts: the
// driver polls used rings, and a watcher started at DRIVER_OK polls Status
// for NEEDS_RESET.
//
// Registers are read and written with single loads and stores of exactly
// their width; 64-bit queue addresses go in as two 32-bit halves.
//
// Lock order: Transport.mu only. It is held for reading around register
// accesses so that Close cannot unmap the window under them, and never
// across anything that blocks.
package mmio
