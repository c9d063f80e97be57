// Package virtio implements the transport-independent part of a virtio
// driver: feature bits, device status, and the split virtqueue (virtio spec
// 1.2 section 2.7) over DMA memory that it is handed, never allocates.
//
// Transports live in subpackages: pci (sysfs config space and BAR mmap, in a
// guest), mmio (/dev/mem, in a guest) and vhostuser (a unix socket to a
// vhost-user back end such as virtiofsd, on a host). Fakes with real
// semantics live in virtiotest.
package virtio
