// Package dmamem is DMA memory for a virtio driver in a Linux guest's
// userspace: 2 MiB hugepages, locked in RAM, whose guest-physical addresses
// come from /proc/self/pagemap. With no IOMMU these addresses are what the
// device sees, so they go into virtqueue descriptors as they are.
//
// Each hugepage is physically contiguous on its own (neighbouring pages need
// not be), so each gets its own virtio.Arena and no allocation crosses a
// page: MaxAlloc is 2 MiB, and a virtqueue's rings each lie in one page.
//
// Callers: guest programs and the virtio transports for a guest
// (virtio/pci, virtio/mmio) hand a *Memory to the driver. It needs root:
// the kernel hides page frame numbers without CAP_SYS_ADMIN, and reserving
// hugepages writes to sysfs.
//
// Memory has no lock of its own: each virtio.Arena locks itself, and the
// page list is immutable after New.
package dmamem
