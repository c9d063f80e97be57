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

	// unnotified is set while a chain from Send may be published without
	// a notification (see Device.Send): the next notification on the
	// queue, notifyLazy or drain's, covers it. lazyArmed says lazyTimer
	// is set to run flushLazy.
	unnotified atomic.Bool
	lazyArmed  atomic.Bool
	lazyTimer  *time.Timer // immutable

	// stopMu's read side is held while the used ring is read; supervise
	// takes the write side and sets stopped before the rings go back to
	// the memory.
	stopMu  sync.RWMutex
	stopped bool // guarded by stopMu

	// nextCheck is when (since Device.epoch) checkTimeout is due next;
	// whoever looks at the clock while polling and finds it due runs it.
	nextCheck atomic.Int64

	// mu guards the fields below and the pending fields of requests.
	mu         sync.Mutex
	head, tail *request // the pending requests, a doubly linked list, oldest first
	broken     error    // non-nil once the used ring was corrupt, or the device is gone
}

func newQueue(d *Device, index int, vq *virtio.Queue) *queue {
	q := &queue{d: d, index: index, vq: vq, kick: make(chan struct{}, 1)}
	q.lazyTimer = time.AfterFunc(time.Hour, q.flushLazy)
	q.lazyTimer.Stop()
	return q
}

// lazyDelay is how long a chain from Send may wait for a notification of
// the queue's next request before flushLazy sends one (Device.lazyDelay).
const lazyDelay = asyncPoll

// deferNotify leaves the notification of a chain just published by Send
// (if notify: the device did not suppress it) to the queue's next
// request, or to flushLazy after lazyDelay, which also wakes the completion
// goroutine for the reply.
func (q *queue) deferNotify(notify bool) {
	if notify {
		q.unnotified.Store(true)
	}
	if !q.lazyArmed.Swap(true) {
		q.lazyTimer.Reset(q.d.lazyDelay)
	}
}

// notify notifies the device of the chains published so far.
func (q *queue) notify(op uint32, unique uint64) {
	q.unnotified.Store(false) // before: a chain published later sets it again
	if err := q.d.t.Notify(q.index); err != nil {
		// The chain is published; if the device is gone, supervise
		// fails the request.
		q.d.log.Warn("virtio-fs: notify failed", "queue", q.index, "opcode", op, "unique", unique, "err", err)
	}
}

// notifyLazy notifies the device if a chain from Send is still waiting for
// a notification.
func (q *queue) notifyLazy() {
	if q.unnotified.Load() {
		q.notify(0, 0)
	}
}

// flushLazy runs lazyDelay after a Send that left its notification to
// the next request: it sends the notification if none was sent since, and
// wakes the completion goroutine to poll for the reply if nobody spins.
func (q *queue) flushLazy() {
	q.lazyArmed.Store(false)
	if q.d.enter() != nil {
		return // the device is dead or closed: supervise fails what is in flight
	}
	defer q.d.exit()
	q.notifyLazy()
	q.wake()
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
	r.seen = 0
	r.prev, r.next = q.tail, nil
	if q.tail != nil {
		q.tail.next = r
	} else {
		q.head = r
	}
	q.tail = r
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
	} else {
		q.tail = r.prev
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

// Request timeout checks (Options.RequestTimeout). No timer per request
// and no clock read per request: pollers that read the clock anyway (a
// spinning caller every spinCheckEvery polls, the completion goroutine
// every timeoutPolls idle polls and at each asyncPoll wake-up) call
// maybeCheckTimeout, which runs checkTimeout at most once per
// checkInterval per queue.
const (
	// timeoutPolls is how many idle polls the completion goroutine makes
	// between looks at the clock for the timeout check: with
	// virtio.Backoff's 50 µs sleeps, a few milliseconds.
	timeoutPolls = 64
	// maxCheckInterval bounds checkInterval for long timeouts.
	maxCheckInterval = time.Second
)

// checkInterval is how often a queue's pending requests are checked
// against timeout: an eighth of it, at most maxCheckInterval. A request is
// stamped by the first check that sees it and taken for hung by the first
// check at least timeout after that, so it is found between timeout and
// timeout + 2 intervals (plus a poll) after it went out.
func checkInterval(timeout time.Duration) time.Duration {
	return max(min(timeout/8, maxCheckInterval), time.Microsecond)
}

// maybeCheckTimeout runs checkTimeout if the request timeout is set and a
// check is due at now.
func (q *queue) maybeCheckTimeout(now time.Time) {
	d := q.d
	if d.timeout <= 0 || q.index == hiprioQueue {
		return
	}
	t := now.Sub(d.epoch)
	next := q.nextCheck.Load()
	if int64(t) < next || !q.nextCheck.CompareAndSwap(next, int64(t+checkInterval(d.timeout))) {
		return // not due, or another poller took this check
	}
	q.checkTimeout(t)
}

// checkTimeout stamps the requests that went out since the last check
// with t (since Device.epoch) and takes the device for dead if the oldest
// pending request was stamped at least the timeout before t. The pending
// list is in order of submission, so the unstamped ones are at its tail
// and the oldest is its head. Requests whose waiter gave up (context
// ended) count too: their chains are still the device's, and a device
// that never gives them back is as hung as one that does not reply.
//
// As Linux fuse_check_timeout (fs/fuse/dev.c, 6.14), which looks at the
// oldest request of each list from a periodic work item.
func (q *queue) checkTimeout(t time.Duration) {
	q.mu.Lock()
	if q.broken != nil {
		q.mu.Unlock()
		return
	}
	for r := q.tail; r != nil && r.seen == 0; r = r.prev {
		r.seen = t + 1
	}
	r := q.head
	if r == nil || t-(r.seen-1) < q.d.timeout {
		q.mu.Unlock()
		return
	}
	op, unique, age := r.op, r.unique, t-(r.seen-1)
	q.mu.Unlock()
	q.d.hang(op, unique, age)
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
	idle := 0
	for {
		found, ok := q.poll()
		if !ok {
			return
		}
		if found {
			b.Reset()
			idle = 0
			continue
		}
		if idle++; idle%timeoutPolls == 0 && q.d.timeout > 0 {
			q.maybeCheckTimeout(time.Now())
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
				if q.d.timeout > 0 {
					q.maybeCheckTimeout(time.Now())
				}
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
