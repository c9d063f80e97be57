package driver

import "sync"

// callbacks hands the requests from Send, once complete, to the device's
// callback goroutine, which copies each reply out, returns the buffers and
// calls the request's done. Whoever completes a request (a caller spinning
// for its own reply, a completion goroutine, a failing queue) only links
// it here: a done that takes the FUSE client's locks or sends requests
// itself must not run inside another caller's RoundTrip, nor hold up a
// completion goroutine.
type callbacks struct {
	// kick (capacity 1) tells the callback goroutine that the list is not
	// empty; immutable.
	kick chan struct{}

	// mu guards the list and the cbNext fields of the requests on it.
	mu         sync.Mutex
	head, tail *request
}

// add links r, completed, at the end of the list.
//
// Preconditions: r.q.mu is held (callbacks.mu nests inside it); r.cb is
// set.
func (c *callbacks) add(r *request) {
	c.mu.Lock()
	r.cbNext = nil
	if c.tail != nil {
		c.tail.cbNext = r
	} else {
		c.head = r
	}
	c.tail = r
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default: // a kick is already pending
	}
}

// take unlinks and returns the whole list, linked by cbNext, or nil.
func (c *callbacks) take() *request {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.head
	c.head, c.tail = nil, nil
	return r
}

// runCallbacks is the device's callback goroutine: it runs the callbacks
// of completed requests from Send in order of completion, one at a time,
// and returns once cbStop is closed and none is left (supervise closes it
// after every request has been completed).
func (d *Device) runCallbacks() {
	defer close(d.cbDone)
	for {
		r := d.callbacks.take()
		if r == nil {
			select {
			case <-d.callbacks.kick:
				continue
			case <-d.cbStop:
				if r = d.callbacks.take(); r == nil {
					return
				}
			}
		}
		for r != nil {
			next := r.cbNext
			r.callback()
			r = next
		}
	}
}

// callback copies the reply of r, a completed request from Send, into its
// out, lets go of the callback's hold on the buffers and calls r.cb with
// what RoundTrip would have returned.
func (r *request) callback() {
	n, err, cb := r.n, r.err, r.cb
	if err == nil {
		scatter(r.cbOut, r.bufs[1].Bytes[:n])
	} else {
		n = 0
	}
	r.release() // may recycle r
	cb(n, err)
}
