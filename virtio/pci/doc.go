// Package pci is the virtio PCI transport (virtio spec 1.2 section 4.1) for a
// Go program that is the userspace of a Linux guest and drives a virtio
// device itself, with no kernel virtio driver bound to it.
//
// It reaches the device through sysfs: the `config` file for PCI
// configuration space (command register, capability list) and the
// `resourceN` files to mmap the BARs that hold the virtio structures
// (common configuration, notifications, device configuration, shared
// memory). Interrupts are not used: drivers poll the used rings.
//
// Callers: the virtio-fs driver (package driver) through virtio.Transport,
// and tools that list devices with Find. DMA memory comes from the caller
// (package virtio/dmamem in a guest).
//
// The capability parser (ParseCapabilities) is a pure function over
// configuration-space bytes so that it can be tested and fuzzed on a host.
//
// Lock order:
//
//	Transport.mu (set-up registers: queue_select and the feature selects)
//	  Transport.shmMu (shared-memory mappings)
//
// Notify takes no lock: each queue's notify address is immutable once the
// queue is enabled, and a notification is a single 16-bit store.
package pci
