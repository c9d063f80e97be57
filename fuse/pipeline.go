package fuse

import (
	"sync"
	"sync/atomic"
)

// ioInflight is how many READs or WRITEs of one large transfer are in
// flight at once. With several in flight the server reads or writes one
// chunk while the client copies another: under emulation the client's
// copy and the host's pread/pwrite then overlap instead of taking turns
// (Linux sends the requests of one direct I/O asynchronously in the same
// way, fuse_direct_io with FUSE_ASYNC_DIO).
const ioInflight = 4

// splitIO cuts a transfer of n bytes into the fewest chunks of at most
// maxIO bytes, of nearly equal, page-aligned sizes (the last takes the
// rest), so that the requests in flight take about as long each. It
// returns the chunk size and count.
//
// A transfer that fits one request stays one request. Measured in the
// guest (QEMU TCG, one vCPU, two busy host cores), 1 MiB reads and writes
// cut into 2 x 512, 4 x 256 or 8 x 128 KiB requests in flight together
// did not beat one 1 MiB request: writes were as fast at 512 KiB and
// 18-32% slower below, reads 58-67% slower; sending all but the last
// chunk of a write with AsyncSender.Send instead of from goroutines did
// no better (712 against 809 MB/s at 2 x 512 KiB). With a load average
// of 2.5 on two host cores there is no idle core on which virtiofsd's
// pread/pwrite could overlap the guest's copy; the extra requests only
// add their cost.
func splitIO(n, maxIO int) (size, count int) {
	if n <= maxIO {
		return n, 1
	}
	count = (n + maxIO - 1) / maxIO
	size = (n + count - 1) / count
	size = min((size+pageSize-1)&^(pageSize-1), maxIO)
	return size, (n + size - 1) / size
}

// pipeline calls do(i) for i in [0, count), at most ioInflight at once,
// each chunk once and in order of i per goroutine; the caller's goroutine
// takes part, so a transfer of one chunk starts no goroutine. do returns
// false to stop: chunks after i not yet started are not started (ones
// started already finish). pipeline returns when every started call has
// returned; the caller then examines the results chunk by chunk in order.
//
// No lock may be held across pipeline: do sends requests.
func pipeline(count int, do func(i int) bool) {
	if count <= 1 {
		if count == 1 {
			do(0)
		}
		return
	}
	var next atomic.Int64
	var stop atomic.Int64 // the smallest i whose do said stop, or count
	stop.Store(int64(count))
	work := func() {
		for {
			i := next.Add(1) - 1
			if i >= int64(count) || i > stop.Load() {
				return
			}
			if !do(int(i)) {
				for {
					s := stop.Load()
					if s <= i || stop.CompareAndSwap(s, i) {
						break
					}
				}
			}
		}
	}
	var wg sync.WaitGroup
	for range min(count, ioInflight) - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}
