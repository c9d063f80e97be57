package fuse

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// batchForgetChunk is how many fuse_forget_one entries one BATCH_FORGET
// carries: at most 256, and what fits one page with the headers, since a
// transport may carry no more on hiprio.
const batchForgetChunk = min(batchForgetMax, (pageSize-inHeaderSize-batchForgetInSize)/forgetOneSize)

// forgetBatcher collects the (nodeid, nlookup) pairs of released inodes
// and sends them on the hiprio queue as BATCH_FORGET (one pair: FORGET)
// once threshold are waiting or the oldest has waited delay (Linux
// queues forgets on fiq->forget_list and virtio-fs sends them one per
// message; batching cuts the hiprio traffic). add never blocks on the
// queue: full batches are sent from a new goroutine, partial ones from
// the timer's.
type forgetBatcher struct {
	conn      *Conn         // immutable
	threshold int           // immutable
	delay     time.Duration // immutable
	log       *slog.Logger  // immutable

	// mu guards pending, armed and closed. Leaf lock; never held while
	// sending.
	mu      sync.Mutex
	pending []ForgetOne
	timer   *time.Timer // immutable after construction; fires fire
	armed   bool
	closed  bool

	// inflight counts batches taken from pending and not yet sent; Flush
	// waits for them.
	inflight sync.WaitGroup

	forgotten atomic.Uint64 // nlookup sent
	entries   atomic.Uint64 // pairs sent
	messages  atomic.Uint64 // FORGET and BATCH_FORGET messages sent
}

func newForgetBatcher(conn *Conn, threshold int, delay time.Duration, log *slog.Logger) *forgetBatcher {
	if threshold <= 0 {
		threshold = batchForgetChunk
	}
	b := &forgetBatcher{conn: conn, threshold: threshold, delay: delay, log: log}
	b.timer = time.AfterFunc(time.Hour, b.fire)
	b.timer.Stop()
	return b
}

// add queues a forget of n lookups of nodeid.
func (b *forgetBatcher) add(nodeid, n uint64) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.pending = append(b.pending, ForgetOne{NodeID: nodeid, Nlookup: n})
	if len(b.pending) >= b.threshold {
		batch := b.takeLocked()
		b.mu.Unlock()
		go b.send(context.Background(), batch)
		return
	}
	if !b.armed {
		b.armed = true
		b.timer.Reset(b.delay)
	}
	b.mu.Unlock()
}

// takeLocked empties pending into a batch counted in inflight.
//
// Preconditions: b.mu is held.
func (b *forgetBatcher) takeLocked() []ForgetOne {
	batch := b.pending
	b.pending = nil
	if b.armed {
		b.timer.Stop()
		b.armed = false
	}
	if len(batch) > 0 {
		b.inflight.Add(1)
	}
	return batch
}

// fire sends a partial batch whose delay has passed.
func (b *forgetBatcher) fire() {
	b.mu.Lock()
	b.armed = false
	batch := b.takeLocked()
	b.mu.Unlock()
	b.send(context.Background(), batch)
}

// send sends batch in messages of at most batchForgetChunk pairs and
// marks it done in inflight.
func (b *forgetBatcher) send(ctx context.Context, batch []ForgetOne) error {
	if len(batch) == 0 {
		return nil
	}
	defer b.inflight.Done()
	var first error
	for len(batch) > 0 {
		n := min(len(batch), batchForgetChunk)
		var err error
		if n == 1 {
			err = b.conn.Forget(ctx, batch[0].NodeID, batch[0].Nlookup)
		} else {
			err = b.conn.BatchForget(ctx, batch[:n])
		}
		if err != nil {
			b.log.Warn("fuse: sending forgets failed", "entries", n, "err", err)
			if first == nil {
				first = err
			}
		} else {
			var sum uint64
			for _, f := range batch[:n] {
				sum += f.Nlookup
			}
			b.forgotten.Add(sum)
			b.entries.Add(uint64(n))
			b.messages.Add(1)
		}
		batch = batch[n:]
	}
	return first
}

// Flush sends what is pending now and waits until every batch taken
// before has been sent.
//
// Errors: the first send error of this call's batch.
func (b *forgetBatcher) Flush(ctx context.Context) error {
	b.mu.Lock()
	batch := b.takeLocked()
	b.mu.Unlock()
	err := b.send(ctx, batch)
	b.inflight.Wait()
	return err
}

// close stops the batcher: later adds are dropped.
func (b *forgetBatcher) close() {
	b.mu.Lock()
	b.closed = true
	if b.armed {
		b.timer.Stop()
		b.armed = false
	}
	b.mu.Unlock()
}
