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
// (Linux maps them per CPU; a userspace process has no stable CPU). The
// driver never asks for interrupts: used rings are polled.
//
// # Requests: run to completion
//
// RoundTrip copies the request into a DMA buffer from a pool, adds the chain
// (one device-readable buffer for the request, one device-writable buffer
// for the reply) and then polls the queue's used ring itself, as SPDK does:
// it takes every used entry it finds, its own or another caller's, checks
// the used entry and the reply's unique ID against the request's, and
// completes that request. Between polls it looks at the used idx a few
// times without locks and then yields the processor (runtime.Gosched, about
// 2.5 µs under TCG), so that with GOMAXPROCS=1 other goroutines still run;
// it reads the clock and checks its context and the device only every few
// polls (time.Now costs about 0.5 µs under TCG).
// A caller whose reply has not come after Options.Spin (DefaultSpin, 1 ms)
// parks on a channel made then, and the queue's completion goroutine takes
// over the polling, paced by virtio.Backoff. That goroutine polls only while
// chains are in flight and no caller spins; otherwise it sleeps until
// kicked (by the last spinner leaving with chains still in flight, by
// SendHiprio, or by Close), so it never competes with a spinning caller.
// In a TCG guest with one vCPU this removes the hand-off from poller to
// waiter goroutine and the poller's nanosleep holding the only P, which
// dominated a round trip.
//
// # Requests nobody waits for
//
// Send (fuse.AsyncSender) publishes a request whose reply nobody waits for
// (fuse's RELEASE and RELEASEDIR, sent in the background as Linux
// fuse_file_put does). A RELEASE leaves its notification to the queue's
// next request, which notifies the device of both; if none comes within
// 1 ms, the queue's timer notifies the device and wakes the completion
// goroutine. Nobody spins for it: its reply is harvested, and checked as
// RoundTrip checks one, by whoever polls the queue next, usually the
// caller's next request spinning for its own; while only such requests are
// in flight the completion goroutine sleep-polls (asyncPoll, 1 ms). The
// device's callback goroutine then copies the reply out, returns the
// buffers and calls the request's done, holding no lock: done may take the FUSE client's locks and send requests, which
// it must not do inside another caller's RoundTrip. Close waits (bounded)
// for their replies; a dead device completes them with ENOTCONN. Before
// Send, fuse sent RELEASE from a goroutine that spun for the reply, which
// in a one-vCPU guest competed with the caller's next request (a LOOKUP
// overlapping a RELEASE took about twice as long).
//
// Each used entry is taken by exactly one goroutine (virtio.Queue.Pop), and
// a request is completed once, under its queue's lock, whichever goroutine
// found it; a parked caller is woken by that completion.
//
// Each request's DMA buffers have two owners, the waiter and the device;
// whichever lets go last returns them to the pool and the request struct to
// a sync.Pool, so that a round trip allocates nothing but what the caller
// passes in. A small request (a page each way: every metadata operation)
// goes back to the pool whole, its buffers attached, and the next small
// request takes it with one lock.
//
// Where a round trip's time goes in a TCG guest (rtbench, q35, one vCPU;
// perf sched on a 2-CPU host that is itself a VM): the notification (an
// MMIO write that QEMU turns into an eventfd write) costs about 1 µs alone.
// virtiofsd's queue thread, woken by it, starts about 4 µs later (p50) when
// woken on the vCPU thread's own host CPU, which it preempts, but about
// 26 µs later when woken on the other CPU (halted, or running another
// process), and serves a GETATTR in 8-13 µs. Left to itself the host's
// scheduler chose either from one moment to the next: guest GETATTR round
// trips were 13-20 µs (p50) in some phases of one boot and 45-65 µs in
// others; host-vhostuser's were 8-11 µs with client and virtiofsd on one
// CPU, 33-59 µs with them on two. The bench (package bench) therefore runs
// its round-trip workload with QEMU and its virtiofsd on one host CPU, as
// it does host-vhostuser's client and virtiofsd. The driver's own work (copying in, adding the
// chain, harvesting, copying out) is a few µs. Debian's virtiofsd
// 7.2 serves requests on the queue's own thread by default
// (--thread-pool-size=0); a pool (--thread-pool-size=64) adds a hand-off
// to a worker (GETATTR about 1.6 times slower over vhost-user on a host),
// and its new worker threads are killed by virtiofsd's own seccomp filter
// (SIGSYS on sched_getaffinity) once LOOKUPs and FORGETs overlap. A caller whose context ends returns at once, while the buffers
// stay reserved until the device returns the chain (or the device is
// reset).
//
// # Size limits
//
// Every request uses one device-readable and one device-writable buffer,
// each a single contiguous Memory allocation, so a request is bounded by
// Memory.MaxAlloc, not by the number of descriptors. The one exception is
// a zero-copy request (Options.UserPages): its data follows the headers'
// buffer as one descriptor per physically contiguous run of the caller's
// pages, and it goes out that way only if the chain takes at most half of
// its queue. Limits()
// MaxPages is
//
//	min(256, MaxAlloc/4096 - 1)
//
// 256 is FUSE_MAX_MAX_PAGES. MaxAlloc/4096 - 1 leaves one page for the
// headers of the largest request (a WRITE carries fuse_in_header +
// fuse_write_in = 80 bytes before its data) or reply (a READ reply carries
// fuse_out_header). Requests and replies may each be up to
// (MaxPages+1)*4096 bytes; larger ones fail with E2BIG; the pool's top size
// class is exactly that size, so a max_pages READ or WRITE reuses a cached
// buffer. Linux virtio_fs.c also bounds max_pages by the queue size minus
// FUSE_HEADER_OVERHEAD (4), because it maps each page to a descriptor;
// that bound does not apply here (with QEMU's default vhost-user-fs-pci
// queue of 128 it held a READ or WRITE to 496 KiB instead of 1 MiB).
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
// QEMU does not tell a PCI or MMIO guest that virtiofsd died (it sets no
// NEEDS_RESET), so a request to a dead daemon would wait forever. With
// Options.RequestTimeout, as Linux 6.14's FUSE request timeouts
// (fuse_check_timeout), a request pending that long without a reply takes
// the device for dead in the same way (logged with its opcode, unique and
// age), except that the chains the device still holds keep their buffers:
// a device that hangs may yet write them. There is no timer per request:
// pollers that read the clock anyway check the oldest pending request of
// their queue, at most every eighth of the timeout (see checkTimeout).
//
// # Close
//
// Close fails waiting and later calls with ENOTCONN, then, before the
// reset, waits up to one second until the device has given back every chain
// (FORGETs sent just before are typical), as virtio_fs_drain_all_queues in
// Linux, so that the reset never pulls rings and buffers from under a back
// end still processing them. A DESTROY likewise waits (bounded) until the
// hiprio queue is drained: virtiofsd serves each queue on its own thread and
// drops, with an error it cannot deliver, a FORGET it takes after DESTROY.
//
// # Features
//
// INDIRECT_DESC is not negotiated: a request is always a chain of two
// buffers, for which an indirect table would only add a lookup here and a
// translation in the device.
//
// VIRTIO_F_EVENT_IDX is negotiated only with Options.EventIdx. With it,
// virtiofsd 7.2 (libvhost-user) signals a queue's call eventfd after the
// first completion on a freshly started queue, and QEMU starts the queue
// (the back end's queue thread runs at once) before it passes that queue's
// call eventfd: when FUSE_INIT is answered in between, virtiofsd dies with
// "fv_panic: libvhost-user: Error writing eventfd: Bad file descriptor"
// and the guest loses the device. Seen on the second to eighth bring-up of
// a device in one VM (TestReopen in qemu-tests); without EVENT_IDX the
// driver sets VRING_AVAIL_F_NO_INTERRUPT and the back end never signals.
//
// Lock order:
//
//	Device.callMu (read side held by every RoundTrip and SendHiprio)
//	  queue.stopMu (read side held while polling a used ring)
//	    virtio.Queue's lock (Pop), then queue.mu (finish), pool.mu
//	    (release): taken one after another, never nested
//	      callbacks.mu (inside queue.mu, when a request from Send
//	      completes)
//
// No lock is held across a blocking wait except callMu's read side.
package driver
