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
