package driver

import (
	"errors"
	"sync"
	"syscall"

	"github.com/govirtiofs/govirtiofs/virtio"
)

// queue is one virtqueue of the device with the requests in flight on it.
type queue struct {
	d     *Device       // immutable
	index int           // immutable
	vq    *virtio.Queue // immutable

	// mu guards the fields below.
	mu      sync.Mutex
	pending map[*request]struct{} // requests whose chain the device holds
	broken  error                 // non-nil once the used ring was corrupt, or the device is gone
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
	q.pending[r] = struct{}{}
	return nil
}

// abort undoes add for a request whose chain was never published.
func (q *queue) abort(r *request) {
	q.mu.Lock()
	_, ok := q.pending[r]
	delete(q.pending, r)
	q.mu.Unlock()
	if ok {
		r.release()
	}
}

// complete is the queue's completion goroutine: it polls the used ring
// until the device is dead, and finishes each request the device returns.
func (q *queue) complete(b virtio.Backoff) {
	defer q.d.wg.Done()
	for virtio.Poll(q.d.dead, &b, q.vq.HasUsed) {
		for {
			u, ok, err := q.vq.Pop()
			if !ok {
				if err != nil {
					// Section 2.7.14 broken by the device: as Linux
					// BAD_RING, the queue is unusable from here on.
					q.d.log.Error("virtio-fs: corrupt used ring; failing the queue", "queue", q.index, "err", err)
					q.failAll(syscall.EIO, false)
					return
				}
				break
			}
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
	}
}

// finish completes r with n and err, and lets go of the device's hold.
func (q *queue) finish(r *request, n int, err error) {
	q.mu.Lock()
	_, ok := q.pending[r]
	delete(q.pending, r)
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
	for r := range q.pending {
		r.completeLocked(0, err)
		if deviceDone {
			held = append(held, r)
			delete(q.pending, r)
		}
	}
	q.mu.Unlock()
	for _, r := range held {
		r.release()
	}
}
