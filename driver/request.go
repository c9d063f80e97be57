package driver

import (
	"context"
	"encoding/binary"
	"sync/atomic"
	"syscall"

	"github.com/govirtiofs/govirtiofs/virtio"
)

// request is one FUSE request in flight. Its DMA buffers have two owners,
// the waiting caller and the device; refs counts those still holding them
// and the last to let go returns the buffers to the pool.
type request struct {
	q      *queue        // immutable
	in     virtio.Buffer // immutable: the request, device-readable
	out    virtio.Buffer // immutable: the reply, device-writable (zero for hiprio)
	unique uint64        // immutable: from the request's fuse_in_header
	op     uint32        // immutable: the opcode, for log lines
	refs   atomic.Int32

	// Set by completeLocked before done is closed.
	n    int
	err  error
	done chan struct{}
	// completed is guarded by q.mu: done has been closed.
	completed bool
}

func (r *request) opcode() uint32 { return r.op }

// completeLocked records the result and wakes the waiter, once.
//
// Preconditions: r.q.mu is held.
func (r *request) completeLocked(n int, err error) {
	if r.completed {
		return
	}
	r.completed = true
	r.n, r.err = n, err
	close(r.done)
}

// release lets go of one owner's hold on the buffers.
func (r *request) release() {
	if r.refs.Add(-1) != 0 {
		return
	}
	p := r.q.d.pool
	p.put(r.in)
	if r.out.Bytes != nil {
		p.put(r.out)
	}
}

// check validates a reply of n bytes: it must hold a fuse_out_header
// whose unique is the request's (Linux fuse_dev_do_write and virtio_fs
// trust the device; this driver does not).
func (r *request) check(n int) error {
	if n < fuseOutHeaderLen {
		r.q.d.log.Error("virtio-fs: reply shorter than fuse_out_header", "queue", r.q.index, "opcode", r.op, "unique", r.unique, "len", n)
		return syscall.EIO
	}
	if got := binary.LittleEndian.Uint64(r.out.Bytes[fuseUniqueOff:]); got != r.unique {
		r.q.d.log.Error("virtio-fs: reply for another request", "queue", r.q.index, "opcode", r.op, "unique", r.unique, "reply_unique", got)
		return syscall.EIO
	}
	return nil
}

// totalLen is the summed length of bufs.
func totalLen(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

// gather copies bufs into dst.
func gather(dst []byte, bufs [][]byte) {
	off := 0
	for _, b := range bufs {
		off += copy(dst[off:], b)
	}
}

// scatter copies src into bufs in order.
func scatter(bufs [][]byte, src []byte) {
	for _, b := range bufs {
		if len(src) == 0 {
			return
		}
		src = src[copy(b, src):]
	}
}

// newRequest checks in, takes DMA buffers for it (and for an outLen-byte
// reply unless outLen is 0) and copies the request in.
func (d *Device) newRequest(ctx context.Context, q *queue, in [][]byte, outLen int) (*request, error) {
	inLen := totalLen(in)
	if inLen < fuseInHeaderLen {
		return nil, syscall.EINVAL
	}
	if inLen > d.maxBuf || outLen > d.maxBuf {
		return nil, syscall.E2BIG
	}
	r := &request{q: q, done: make(chan struct{})}
	var err error
	if r.in, err = d.pool.get(ctx, inLen, d.dead); err != nil {
		return nil, mapErr(err)
	}
	if outLen > 0 {
		if r.out, err = d.pool.get(ctx, outLen, d.dead); err != nil {
			d.pool.put(r.in)
			return nil, mapErr(err)
		}
		r.out.Bytes = r.out.Bytes[:outLen]
		// Stale bytes from an earlier request must not pass for this
		// reply's header if the device writes less than it claims.
		clear(r.out.Bytes[:fuseOutHeaderLen])
	}
	r.in.Bytes = r.in.Bytes[:inLen]
	gather(r.in.Bytes, in)
	r.unique = binary.LittleEndian.Uint64(r.in.Bytes[fuseUniqueOff:])
	r.op = binary.LittleEndian.Uint32(r.in.Bytes[fuseInHeaderOpcodeOff:])
	return r, nil
}

// submit publishes r's chain on its queue and notifies the device if it
// asks for it. The device's hold on r starts here. On failure both holds
// are let go: r is gone.
func (d *Device) submit(ctx context.Context, r *request) error {
	q := r.q
	if err := q.add(r); err != nil {
		r.release() // the device's hold, never taken
		r.release() // the caller's
		return err
	}
	var writable []virtio.Buffer
	if r.out.Bytes != nil {
		writable = []virtio.Buffer{r.out}
	}
	notify, err := q.vq.Add(ctx, []virtio.Buffer{r.in}, writable, r)
	if err != nil {
		q.abort(r)
		r.release()
		return mapErr(err)
	}
	if notify {
		if err := d.t.Notify(q.index); err != nil {
			// The chain is published; if the device is gone,
			// supervise fails the request.
			d.log.Warn("virtio-fs: notify failed", "queue", q.index, "opcode", r.op, "unique", r.unique, "err", err)
		}
	}
	return nil
}

// RoundTrip implements fuse.Sender.RoundTrip, as virtio_fs_enqueue_req in
// Linux: the request goes to a request queue in one device-readable buffer,
// the reply comes back in one device-writable buffer of len(out) bytes.
// The reply's unique must match the request's.
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
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	outLen := totalLen(out)
	if outLen < fuseOutHeaderLen {
		return 0, syscall.EINVAL
	}
	q := d.reqs[int(d.next.Add(1))%len(d.reqs)]
	r, err := d.newRequest(ctx, q, in, outLen)
	if err != nil {
		return 0, err
	}
	r.refs.Store(2)
	if err := d.submit(ctx, r); err != nil {
		return 0, err
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		select {
		case <-r.done: // finished anyway: take the reply
		default:
			r.release() // the device's hold keeps the buffers reserved
			return 0, ctx.Err()
		}
	case <-d.dead:
		select {
		case <-r.done:
		default:
			r.release()
			return 0, syscall.ENOTCONN
		}
	}
	defer r.release()
	if r.err != nil {
		return 0, r.err
	}
	scatter(out, r.out.Bytes[:r.n])
	return r.n, nil
}

// SendHiprio implements fuse.Sender.SendHiprio, as
// virtio_fs_wake_pending_and_unlock for FORGET in Linux: the request goes to
// the hiprio queue in one device-readable buffer, which is returned to the
// pool when the device gives the chain back.
//
// Errors: as fuse.Sender.SendHiprio; also EINVAL if in is shorter than a
// fuse_in_header, EIO if the hiprio queue's used ring is corrupt.
func (d *Device) SendHiprio(ctx context.Context, in [][]byte) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.exit()
	r, err := d.newRequest(ctx, d.hiprio, in, 0)
	if err != nil {
		return err
	}
	r.refs.Store(2)
	if err := d.submit(ctx, r); err != nil {
		return err
	}
	r.release() // nothing to wait for: only the device holds it now
	return nil
}
