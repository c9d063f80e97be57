package driver

import (
	"context"
	"encoding/binary"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/govirtiofs/govirtiofs/virtio"
)

// request is one FUSE request in flight. Its DMA buffers have two owners,
// the waiting caller and the device (and for a request from Send a third,
// its callback); refs counts those still holding them and the last to let
// go returns the buffers to the pool, and the request itself to
// requestPool.
type request struct {
	q      *queue           // set by newRequest
	bufs   [2]virtio.Buffer // the request (device-readable) and the reply (device-writable; zero for hiprio), cut to length
	full   [2]virtio.Buffer // bufs as the pool handed them out, to give back
	unique uint64           // from the request's fuse_in_header
	op     uint32           // the opcode, for log lines
	refs   atomic.Int32

	// done is set, under q.mu, once n and err are final; a caller that
	// spins loads it without the lock.
	done atomic.Bool
	n    int
	err  error

	// For a request from Send, immutable while it is in flight: the
	// callback, and where its reply goes. cb is nil for the others.
	cb    func(n int, err error)
	cbOut [][]byte

	// For a zero-copy request (see Options.UserPages), immutable while
	// it is in flight: the whole device-readable chain, the DMA buffer
	// with the headers first and then the runs of the caller's data in
	// place; likewise for the reply, the device-writable chain. The runs
	// slice the caller's buffers, which so stay reachable until the
	// device lets go of them even if the caller gave up waiting. Nil
	// otherwise.
	readable, writable []virtio.Buffer

	// Guarded by q.mu.
	wake       chan struct{} // made by a caller that parks; closed with done
	cbNext     *request      // guarded by Device.callbacks.mu: the callback list
	pending    bool          // the device holds the chain: on q's pending list
	seen       time.Duration // when checkTimeout first saw r pending, since Device.epoch, plus 1; 0 until then
	prev, next *request      // q's pending list
}

// requestPool recycles requests other than the small ones the pool keeps
// whole: a round trip allocates nothing in the steady state.
var requestPool = sync.Pool{New: func() any { return new(request) }}

func (r *request) in() virtio.Buffer  { return r.bufs[0] }
func (r *request) out() virtio.Buffer { return r.bufs[1] }

func (r *request) opcode() uint32 { return r.op }

// completeLocked records the result and wakes the waiter, once.
//
// Preconditions: r.q.mu is held.
func (r *request) completeLocked(n int, err error) {
	if r.done.Load() {
		return
	}
	r.n, r.err = n, err
	r.done.Store(true)
	if r.wake != nil {
		close(r.wake)
	}
	if r.cb != nil {
		r.q.d.callbacks.add(r) // run by the callback goroutine
	}
}

// release lets go of one owner's hold on the buffers; the last owner
// returns them and the request, a small one whole to the pool.
func (r *request) release() {
	if r.refs.Add(-1) != 0 {
		return
	}
	p, full := r.q.d.pool, r.full
	if p.putRequest(r, full) {
		return
	}
	p.put(full[0])
	if full[1].Bytes != nil {
		p.put(full[1])
	}
	*r = request{}
	requestPool.Put(r)
}

// check validates a reply of n bytes: it must hold a fuse_out_header
// whose unique is the request's (Linux fuse_dev_do_write and virtio_fs
// trust the device; this driver does not).
func (r *request) check(n int) error {
	if n < fuseOutHeaderLen {
		r.q.d.log.Error("virtio-fs: reply shorter than fuse_out_header", "queue", r.q.index, "opcode", r.op, "unique", r.unique, "len", n)
		return syscall.EIO
	}
	if got := binary.LittleEndian.Uint64(r.bufs[1].Bytes[fuseUniqueOff:]); got != r.unique {
		r.q.d.log.Error("virtio-fs: reply for another request", "queue", r.q.index, "opcode", r.op, "unique", r.unique, "reply_unique", got)
		return syscall.EIO
	}
	return nil
}

// newRequest takes a request and DMA buffers for it (and for an
// outLen-byte reply unless outLen is 0) and copies the request in. The
// request has two holds: the caller's and the device's.
//
// out, if not nil, is where the reply goes (outLen its length). With it,
// and a device with Options.UserPages, a large last element of in (a
// WRITE's data) or of out (a READ's buffer) goes to the device in place
// if its pages resolve: only the elements before it go through DMA
// memory.
func (d *Device) newRequest(ctx context.Context, q *queue, in [][]byte, outLen int, out [][]byte) (*request, error) {
	inLen := totalLen(in)
	if inLen < fuseInHeaderLen {
		return nil, syscall.EINVAL
	}
	if inLen > d.maxBuf || outLen > d.maxBuf {
		return nil, syscall.E2BIG
	}
	var readable, writable []virtio.Buffer
	if out != nil && d.userPages != nil {
		if last := len(in) - 1; last > 0 && len(in[last]) >= zeroCopyMin {
			if readable = d.resolveUser(q, in[last], false); readable != nil {
				inLen -= len(in[last])
				in = in[:last]
			}
		}
		if last := len(out) - 1; last > 0 && len(out[last]) >= zeroCopyMin && outLen-len(out[last]) >= fuseOutHeaderLen {
			if writable = d.resolveUser(q, out[last], true); writable != nil {
				outLen -= len(out[last])
			}
		}
	}
	var r *request
	if small(inLen, outLen) {
		r = d.pool.getRequest()
	}
	if r == nil {
		ib, err := d.pool.get(ctx, inLen, d.dead)
		if err != nil {
			return nil, mapErr(err)
		}
		var ob virtio.Buffer
		if outLen > 0 {
			if ob, err = d.pool.get(ctx, outLen, d.dead); err != nil {
				d.pool.put(ib)
				return nil, mapErr(err)
			}
		}
		r = requestPool.Get().(*request)
		r.full = [2]virtio.Buffer{ib, ob}
	}
	r.q = q
	ib, ob := r.full[0], r.full[1]
	ib.Bytes = ib.Bytes[:inLen]
	gather(ib.Bytes, in)
	if outLen > 0 {
		ob.Bytes = ob.Bytes[:outLen]
		// Stale bytes from an earlier request must not pass for this
		// reply's header if the device writes less than it claims.
		clear(ob.Bytes[:fuseOutHeaderLen])
	}
	r.bufs = [2]virtio.Buffer{ib, ob}
	if readable != nil {
		readable[0] = ib
		r.readable = readable
	}
	if writable != nil {
		writable[0] = ob
		r.writable = writable
	}
	if readable != nil || writable != nil {
		d.zeroCopies.Add(1)
	}
	r.unique = binary.LittleEndian.Uint64(ib.Bytes[fuseUniqueOff:])
	r.op = binary.LittleEndian.Uint32(ib.Bytes[fuseInHeaderOpcodeOff:])
	r.refs.Store(2)
	return r, nil
}

// resolveUser resolves b, the trailing data of a request for q or (with
// write) of its reply, for the device to use in place: it returns that
// side's chain, with slot 0 left for the DMA buffer of the headers. It
// returns nil (b then goes through DMA memory) if b does not resolve or
// its runs would take more than half of q's descriptors.
func (d *Device) resolveUser(q *queue, b []byte, write bool) []virtio.Buffer {
	runs := make([]virtio.Buffer, 1, 2+len(b)/pageSize)
	var err error
	if write {
		runs, err = d.userPages.ResolveWritable(b, runs)
	} else {
		runs, err = d.userPages.Resolve(b, runs)
	}
	if err != nil {
		d.log.Debug("virtio-fs: copying a buffer that does not resolve", "len", len(b), "write", write, "err", err)
		return nil
	}
	if len(runs) > q.vq.Size()/2 {
		return nil
	}
	return runs
}

// ZeroCopyRequests returns how many requests so far had their data read,
// or their reply's data written, by the device in place
// (Options.UserPages).
func (d *Device) ZeroCopyRequests() uint64 { return d.zeroCopies.Load() }

// submit publishes r's chain on its queue and notifies the device if it
// asks for it. The device's hold on r starts here. On failure both holds
// are let go: r is gone. For a request from Send, submit returns nil if
// the queue failed r while it waited for room: r's callback has the error.
func (d *Device) submit(ctx context.Context, r *request) error {
	q := r.q
	if err := q.add(r); err != nil {
		r.release() // the device's hold, never taken
		r.release() // the caller's
		return err
	}
	readable, writable := r.bufs[:1], r.bufs[1:]
	if r.readable != nil {
		readable = r.readable
	}
	if r.writable != nil {
		writable = r.writable
	} else if r.bufs[1].Bytes == nil {
		writable = nil
	}
	// A request from Send may be completed and recycled as soon as
	// its chain is published.
	op, unique := r.op, r.unique
	async := r.cb != nil
	notify, err := q.vq.Add(ctx, readable, writable, r)
	if err != nil {
		if q.abort(r) && async {
			// failAll completed r while Add waited for room (the
			// device died): its callback reports that.
			return nil
		}
		r.release()
		return mapErr(err)
	}
	if async && op == fuseRelease {
		q.deferNotify(notify) // its timer wakes the completion goroutine
		return nil
	}
	if notify {
		q.notify(op, unique)
	}
	if async {
		q.wake() // nobody spins for it: the completion goroutine sleep-polls
	}
	return nil
}

// RoundTrip implements fuse.Sender.RoundTrip, as virtio_fs_enqueue_req in
// Linux: the request goes to a request queue in one device-readable buffer,
// the reply comes back in one device-writable buffer of len(out) bytes.
// The reply's unique must match the request's.
//
// The caller polls the used ring for its reply itself for up to
// Options.Spin (run to completion; see the package comment), then parks
// and leaves the polling to the queue's completion goroutine.
//
// Errors: as fuse.Sender.RoundTrip; also EINVAL if in is shorter than a
// fuse_in_header or out than a fuse_out_header, and EIO (logged) for a
// reply that is short, too long or for another request, or if the queue's
// used ring is corrupt.
func (d *Device) RoundTrip(ctx context.Context, in, out [][]byte) (int, error) {
	if err := d.enter(); err != nil {
		return 0, err
	}
	defer d.exit()
	r, err := d.prepare(ctx, in, totalLen(out), out)
	if err != nil {
		return 0, err
	}
	var t0 time.Duration
	if d.onRT != nil {
		// A duration since d.epoch: the round trip is a difference of
		// monotonic readings.
		t0 = time.Since(d.epoch)
	}
	if err := d.publish(ctx, r); err != nil {
		return 0, err
	}
	q := r.q
	// The completion goroutine, unless already polling for others, stays
	// asleep while this caller polls.
	q.startSpinning()
	if err := d.wait(ctx, r); err != nil {
		r.release() // the device's hold keeps the buffers reserved
		return 0, err
	}
	n, err := r.n, r.err
	if d.onRT != nil && err == nil {
		d.onRT(r.op, time.Since(d.epoch)-t0)
	}
	if err == nil {
		reply := r.bufs[1].Bytes[:min(n, len(r.bufs[1].Bytes))]
		if r.writable != nil {
			out = out[:len(out)-1] // the rest is in place already
		}
		scatter(out, reply)
	}
	r.release()
	if err != nil {
		return 0, err
	}
	return n, nil
}

// prepare checks a request with an outLen-byte reply, takes a request
// queue round-robin and a request for it: what RoundTrip and Send share
// before the request goes out with publish.
//
// Preconditions: the caller is inside enter/exit.
func (d *Device) prepare(ctx context.Context, in [][]byte, outLen int, out [][]byte) (*request, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if outLen < fuseOutHeaderLen {
		return nil, syscall.EINVAL
	}
	q := d.reqs[int(d.next.Add(1))%len(d.reqs)]
	return d.newRequest(ctx, q, in, outLen, out)
}

// publish sends r from prepare: after the FORGETs sent before it if it is
// a DESTROY. On failure r is gone.
func (d *Device) publish(ctx context.Context, r *request) error {
	if r.op == fuseDestroy {
		d.drainHiprio(ctx)
	}
	return d.submit(ctx, r)
}

// Send implements fuse.AsyncSender.Send, as Linux fuse_simple_background
// hands a request to virtio_fs_wake_pending_and_unlock without waiting:
// the request goes out as in RoundTrip, Send returns once its chain is
// published, and nobody spins for the reply. A RELEASE's device is not
// notified at once: the next request on the queue notifies it of both, and
// if none comes within lazyDelay the queue's timer does (a RELEASE after a
// close is followed by the program's next request far more often than not;
// the MMIO notification took 3-9 µs of a TCG guest's cold open, read and
// close in its profiles, and waking the completion goroutine for a reply
// the next caller harvests anyway a goroutine switch more). Any other
// request is notified at once: virtiofsd's RELEASEDIR of a listed
// directory takes long enough (about 170 µs) that deferred, it made the
// next OPENDIR's round trip 125 -> 301 µs.
// Whoever polls the queue next (a caller spinning for its own reply, or
// the queue's completion goroutine, which Send or, for a RELEASE, the
// timer wakes, and which then sleep-polls every asyncPoll while only such
// requests are in flight) harvests the reply and checks it as RoundTrip
// does; the device's callback goroutine then copies it into out,
// returns the buffers to the pool and calls done(n, err), with n and err
// as RoundTrip would have returned them. A device that dies or is closed
// completes them with ENOTCONN (Close first waits, bounded, for their
// replies).
//
// done is called exactly once if Send returns nil, never otherwise. It runs
// on the device's callback goroutine, one at a time and holding no lock of
// the driver or of Send's caller; it may call the Device's methods other
// than Close. out must not be touched until done is called.
//
// Errors: as RoundTrip, for a request that never went out.
func (d *Device) Send(ctx context.Context, in, out [][]byte, done func(n int, err error)) error {
	if done == nil {
		return syscall.EINVAL
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.exit()
	r, err := d.prepare(ctx, in, totalLen(out), nil)
	if err != nil {
		return err
	}
	// Set before the chain is published: whoever harvests the reply
	// hands r to the callback goroutine.
	r.cb, r.cbOut = done, out
	r.refs.Add(1) // the callback's hold, let go by r.callback
	if err := d.publish(ctx, r); err != nil {
		r.release() // the callback's: it never runs
		return err
	}
	r.release() // Send's own
	return nil
}

// Spin loop pacing. Under TCG (the guest this driver runs in) a
// runtime.Gosched costs about 2.5 µs even with nothing else to run, time.Now
// about 0.5 µs, a look at the used idx well under 0.1 µs (rtbench -level
// micro).
const (
	// spinCheckEvery is how many polls a spinning caller makes between
	// looks at the clock and at its context and the device; the first
	// look at the clock is after that many, so that a reply found by the
	// first polls costs no clock read.
	spinCheckEvery = 8
	// spinLooks is how many times a spinning caller looks at the used idx
	// (a lock-free load) before it yields the processor: a reply that
	// arrives meanwhile is taken at once instead of after the yield.
	spinLooks = 16
)

// wait waits for r's completion: it polls r's queue itself for about
// d.spin, yielding the processor between polls, then parks until the
// completion goroutine (or another spinning caller) completes r. It returns
// nil once r is complete, and ctx.Err() or ENOTCONN if the context ends or
// the device dies first.
//
// Preconditions: the caller called r.q.startSpinning; wait ends it.
func (d *Device) wait(ctx context.Context, r *request) error {
	q := r.q
	ctxDone := ctx.Done()
	if d.spin > 0 {
		var start time.Time
		for i := 1; ; i++ {
			if r.done.Load() {
				q.stopSpinning()
				return nil
			}
			if found, _ := q.poll(); found {
				continue
			}
			if i%spinCheckEvery == 0 {
				// Single-channel non-blocking receives: far cheaper
				// than a select over both (runtime.selectgo).
				if ctxDone != nil {
					select {
					case <-ctxDone:
						q.stopSpinning()
						return d.leave(r, ctx.Err())
					default:
					}
				}
				select {
				case <-d.dead:
					q.stopSpinning()
					return d.leave(r, syscall.ENOTCONN)
				default:
				}
				now := time.Now()
				q.maybeCheckTimeout(now)
				if start.IsZero() {
					start = now
				} else if now.Sub(start) >= d.spin {
					break
				}
			}
			if !q.lookUsed(spinLooks) {
				runtime.Gosched()
			}
		}
	}
	// Park: from here on the completion goroutine polls for r.
	q.mu.Lock()
	if !r.done.Load() {
		r.wake = make(chan struct{})
	}
	wake := r.wake
	q.mu.Unlock()
	q.stopSpinning()
	if wake == nil {
		return nil
	}
	select {
	case <-wake:
		return nil
	case <-ctxDone:
		return d.leave(r, ctx.Err())
	case <-d.dead:
		return d.leave(r, syscall.ENOTCONN)
	}
}

// leave is wait's exit when it gives up on r with err: it returns nil if r
// completed anyway (its reply is taken), else err.
func (d *Device) leave(r *request, err error) error {
	if r.done.Load() {
		return nil
	}
	return err
}

// drainHiprio waits, for at most drainTimeout, until the device has given
// back every hiprio chain, so that FORGETs sent before a DESTROY are
// processed before it: virtiofsd serves the queues on separate threads,
// and a FORGET it takes after DESTROY (when the session has no INIT any
// more) gets an error reply that has nowhere to go.
func (d *Device) drainHiprio(ctx context.Context) {
	q := d.hiprio
	deadline := time.Now().Add(drainTimeout)
	for i := 0; q.inflight.Load() > 0; i++ {
		found, ok := q.poll()
		if !ok {
			return // corrupt or stopped: nothing will come back
		}
		if found {
			continue
		}
		if ctx.Err() != nil || (i%spinCheckEvery == 0 && time.Now().After(deadline)) {
			return
		}
		select {
		case <-d.dead:
			return
		default:
		}
		runtime.Gosched()
	}
}

// SendHiprio implements fuse.Sender.SendHiprio, as
// virtio_fs_wake_pending_and_unlock for FORGET in Linux: the request goes to
// the hiprio queue in one device-readable buffer, which is returned to the
// pool when the device gives the chain back (harvested by the next
// SendHiprio or by the hiprio completion goroutine).
//
// Errors: as fuse.Sender.SendHiprio; also EINVAL if in is shorter than a
// fuse_in_header, EIO if the hiprio queue's used ring is corrupt.
func (d *Device) SendHiprio(ctx context.Context, in [][]byte) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.exit()
	q := d.hiprio
	q.poll() // take back the buffers of earlier ones
	r, err := d.newRequest(ctx, q, in, 0, nil)
	if err != nil {
		return err
	}
	if err := d.submit(ctx, r); err != nil {
		return err
	}
	r.release() // nothing to wait for: only the device holds it now
	q.wake()    // nobody spins for it: the completion goroutine polls
	return nil
}
