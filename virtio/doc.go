// Package virtio implements the transport-independent part of a virtio
// driver: feature bits, device status, and the split virtqueue (virtio spec
// 1.2 section 2.7) over DMA memory that it is handed, never allocates.
//
// Transports live in subpackages: pci (sysfs config space and BAR mmap, in a
// guest), mmio (/dev/mem, in a guest) and vhostuser (a unix socket to a
// vhost-user back end such as virtiofsd, on a host). Fakes with real
// semantics live in virtiotest.
//
// The driver (package driver) builds a Queue per virtqueue with NewQueue on
// the transport's Memory, hands Queue.Addrs to Transport.EnableQueue, adds
// chains with Queue.Add from any goroutine (notifying the device when Add
// says so), and harvests completions with Queue.HasUsed and Queue.Pop from
// any goroutine: the caller waiting for a reply, or a polling goroutine
// paced by Backoff. Arena is the allocator behind every transport's Memory.
//
// Ring indexes are published with atomic stores and read with atomic loads
// (Word); sequentially consistent Go atomics provide the memory barriers
// that section 2.7.13 asks for. The device is not trusted: bogus used
// entries become errors wrapping ErrBadUsed, never panics.
//
// Lock order:
//
//	Queue.mu
//	  Arena.mu (through Memory.Alloc and Memory.Free)
package virtio
