// Package driver is the virtio-fs device driver (virtio spec 1.2 section
// 5.11): the one package that joins virtio and FUSE, as Linux
// fs/fuse/virtio_fs.c does. New brings a virtio.Transport (PCI, MMIO or
// vhost-user) up as a virtio-fs device, and the resulting *Device
// implements fuse.Sender, which the FUSE client (package fuse) sends its
// requests through.
//
// # Queues
//
// Queue 0 is hiprio (FORGET, BATCH_FORGET, INTERRUPT: requests without
// replies); queues 1..n are request queues, chosen round-robin per request
// (Linux maps them per CPU; a userspace process has no stable CPU). Each
// queue has one completion goroutine that polls the used ring with
// virtio.Backoff: the driver never asks for interrupts.
//
// # Requests
//
// RoundTrip copies the request into a DMA buffer from a pool, adds the chain
// (one device-readable buffer for the request, one device-writable buffer
// for the reply) and waits. The completion goroutine checks the used entry
// and the reply's unique ID against the request's, and wakes the waiter,
// which copies the reply out of the DMA buffer into the caller's slices.
// Each request's DMA buffers have two owners, the waiter and the device;
// whichever lets go last returns them to the pool. So a caller whose context
// ends returns at once, while the buffers stay reserved until the device
// returns the chain (or the device is reset).
//
// # Size limits
//
// Every request uses exactly one device-readable and one device-writable
// buffer, each a single contiguous Memory allocation, so a request is
// bounded by Memory.MaxAlloc, not by the number of descriptors. Limits()
// MaxPages is
//
//	min(256, queueSize-4, MaxAlloc/4096 - 1)
//
// 256 is FUSE_MAX_MAX_PAGES. queueSize-4 is the bound Linux virtio_fs.c puts
// on max_pages (virtqueue size minus FUSE_HEADER_OVERHEAD, because the kernel
// maps each page to a descriptor); it is kept so the FUSE client sees the
// same limit as the kernel driver on the same device. MaxAlloc/4096 - 1
// leaves one page for the headers of the largest request (a WRITE carries
// fuse_in_header + fuse_write_in = 80 bytes before its data) or reply (a READ
// reply carries fuse_out_header). Requests and replies may each be up to
// (MaxPages+1)*4096 bytes; larger ones fail with E2BIG.
//
// # Failure
//
// The host is untrusted. A used entry naming a chain that is not in flight,
// or a used idx running ahead, breaks the queue as Linux's BAD_RING does: its
// waiters and later requests on it get EIO. A reply longer than the buffer,
// shorter than fuse_out_header, or carrying another request's unique ID
// fails that request with EIO. Each is logged. When the transport's Done
// closes, the device is reset and every waiter, including those waiting for
// room in a full queue, and every later call get ENOTCONN.
//
// Lock order:
//
//	Device.callMu (read side held by every RoundTrip and SendHiprio)
//	  queue.mu, pool.mu, virtio.Queue's lock: leaves, never nested
//
// No lock is held across a blocking wait except callMu's read side.
package driver
