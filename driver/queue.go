package driver

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/govirtiofs/govirtiofs/virtio"
)

// asyncPoll is how long a completion goroutine sleeps between polls while
// the only chains in flight are requests nobody waits for (from Send).
const asyncPoll = time.Millisecond

// queue is one virtqueue of the device with the requests in flight on it.
//
// Completions are harvested by whoever polls: a caller spinning for its own
// reply (run to completion), or the queue's completion goroutine, which
// polls only while some chain is in flight and no caller spins (see
// complete). Harvesting is exactly once: Queue.Pop hands each used entry to
// one goroutine, and finish completes a request only while it is pending.
type queue struct {
	d     *Device       // immutable
	index int           // immutable
	vq    *virtio.Queue // immutable

	// spinners counts the callers polling the used ring for their own
	// reply; inflight counts the pending requests (the device holds their
	// chains). Both are changed before the kick that tells the completion
	// goroutine to look at them again.
	spinners atomic.Int32
	inflight atomic.Int32
	// async counts the pending requests from Send, which nobody waits
	// for; inflight counts them too.
	async atomic.Int32
	// kick (capacity 1) wakes the completion goroutine when it may have
	// to take over the polling.
	kick chan struct{}
	// corrupt is set once the used ring was found corrupt: nobody polls
	// it any more.
	corrupt atomic.Bool

	// stopMu's read side is held while the used ring is read; supervise
	// takes the write side and sets stopped before the rings go back to
	// the memory.
	stopMu  sync.RWMutex
	stopped bool // guarded by stopMu

	// mu guards the fields below and the pending fields of requests.
	mu     sync.Mutex
	head   *request // the pending requests, a doubly linked list
	broken error    // non-nil once the used ring was corrupt, or the device is gone
}

func newQueue(d *Device, index int, vq *virtio.Queue) *queue {
	return &queue{d: d, index: index, vq: vq, kick: make(chan struct{}, 1)}
}

// add registers r as held by the device, before its chain is published.
//
// Errors: the queue's broken error.
func (q *queue) add(r *request) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.broken != nil {
		return q.broken
	}
	q.linkLocked(r)
	return nil
}

// linkLocked puts r on the pending list.
//
// Preconditions: q.mu is held; r is not pending.
func (q *queue) linkLocked(r *request) {
	r.pending = true
	r.prev, r.next = nil, q.head
	if q.head != nil {
		q.head.prev = r
	}
	q.head = r
	q.inflight.Add(1)
	if r.cb != nil {
		q.async.Add(1)
	}
}

// unlinkLocked takes r off the pending list and reports whether it was on it.
//
// Preconditions: q.mu is held.
func (q *queue) unlinkLocked(r *request) bool {
	if !r.pending {
		return false
	}
	r.pending = false
	if r.prev != nil {
		r.prev.next = r.next
	} else {
		q.head = r.next
	}
	if r.next != nil {
		r.next.prev = r.prev
	}
	r.prev, r.next = nil, nil
	q.inflight.Add(-1)
	if r.cb != nil {
		q.async.Add(-1)
	}
	return true
}

// abort undoes add for a request whose chain was never published. It
// reports whether r was completed meanwhile (by failAll).
func (q *queue) abort(r *request) (completed bool) {
	q.mu.Lock()
	completed = r.done.Load()
	ok := q.unlinkLocked(r)
	q.mu.Unlock()
	if ok {
		r.release()
	}
	return completed
}

// wake tells the completion goroutine to look at the queue again.
func (q *queue) wake() {
	select {
	case q.kick <- struct{}{}:
	default: // a kick is already pending
	}
}

// startSpinning registers a caller that polls for its own reply.
func (q *queue) startSpinning() { q.spinners.Add(1) }

// stopSpinning ends startSpinning; if that leaves chains in flight with
// nobody polling for them, it wakes the completion goroutine.
func (q *queue) stopSpinning() {
	if q.spinners.Add(-1) == 0 && q.inflight.Load() > 0 {
		q.wake()
	}
}

// poll harvests the used ring once: it finishes the request of every used
// entry. It reports whether it found any, and ok=false once the queue is
// stopped or corrupt, when polling is pointless.
func (q *queue) poll() (found, ok bool) {
	q.stopMu.RLock()
	defer q.stopMu.RUnlock()
	if q.stopped || q.corrupt.Load() {
		return false, false
	}
	// HasUsed, a lock-free look at the used idx, before every Pop: the
	// common poll finds nothing, or one entry, and then stops without
	// taking the queue's lock again.
	for q.vq.HasUsed() {
		u, popped, err := q.vq.Pop()
		if !popped {
			if err != nil {
				// Section 2.7.14 broken by the device: as Linux
				// BAD_RING, the queue is unusable from here on.
				if !q.corrupt.Swap(true) {
					q.d.log.Error("virtio-fs: corrupt used ring; failing the queue", "queue", q.index, "err", err)
					q.failAll(syscall.EIO, false)
				}
				return found, false
			}
			return found, true
		}
		found = true
		r, _ := u.Cookie.(*request)
		if r == nil {
			continue
		}
		if err != nil {
			q.d.log.Error("virtio-fs: bad used entry", "queue", q.index, "opcode", r.opcode(), "unique", r.unique, "err", err)
			q.finish(r, 0, syscall.EIO)
			continue
		}
		q.finish(r, u.Len, r.check(u.Len))
	}
	return found, true
}

// lookUsed looks at the used idx up to n times, without locks, and reports
// whether the device has published entries not taken yet.
func (q *queue) lookUsed(n int) bool {
	for range n {
		if q.vq.HasUsed() {
			return true
		}
	}
	return false
}

// complete is the queue's completion goroutine. While chains are in flight
// that a parked caller waits for (callers that stopped spinning park, a
// caller whose context ended left) and no caller spins for its reply, it
// polls the used ring paced by b. While the only chains in flight are
// requests from Send, which nobody waits for, it sleeps
// asyncPoll between polls: their replies are not latency-critical, and a
// caller's next request harvests them anyway. Otherwise it sleeps until
// kicked, so that it does not compete with spinning callers for the
// processor. It returns once the device is stopped or the used ring is
// corrupt.
func (q *queue) complete(b virtio.Backoff) {
	defer q.d.wg.Done()
	var timer *time.Timer
	for {
		found, ok := q.poll()
		if !ok {
			return
		}
		if found {
			b.Reset()
			continue
		}
		inflight := q.inflight.Load()
		if q.spinners.Load() > 0 || inflight == 0 {
			select {
			case <-q.kick:
				b.Reset()
				continue
			case <-q.d.stop:
				return
			}
		}
		if inflight == q.async.Load() {
			if timer == nil {
				timer = time.NewTimer(asyncPoll)
			} else {
				timer.Reset(asyncPoll)
			}
			select {
			case <-q.kick:
			case <-timer.C:
			case <-q.d.stop:
				return
			}
			continue
		}
		select {
		case <-q.d.stop:
			return
		default:
		}
		b.Wait()
	}
}

// stopPolling stops every poller before the rings go back to the memory.
func (q *queue) stopPolling() {
	q.stopMu.Lock()
	q.stopped = true
	q.stopMu.Unlock()
}

// finish completes r with n and err, and lets go of the device's hold.
func (q *queue) finish(r *request, n int, err error) {
	q.mu.Lock()
	ok := q.unlinkLocked(r)
	if ok {
		r.completeLocked(n, err)
	}
	q.mu.Unlock()
	if ok {
		r.release()
	}
}

// failAll completes every pending request with err and, if the device no
// longer uses their buffers (it was reset or is gone), lets go of its hold;
// later requests on the queue fail with err.
func (q *queue) failAll(err error, deviceDone bool) {
	q.mu.Lock()
	if q.broken == nil || errors.Is(err, syscall.ENOTCONN) {
		q.broken = err
	}
	var held []*request
	for r := q.head; r != nil; r = r.next {
		r.completeLocked(0, err)
		if deviceDone {
			held = append(held, r)
		}
	}
	for _, r := range held {
		q.unlinkLocked(r)
	}
	q.mu.Unlock()
	for _, r := range held {
		r.release()
	}
	q.wake()
}
