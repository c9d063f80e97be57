package fuse

import "context"

// Sender carries FUSE requests to the server. driver.Device implements it
// over virtio-fs queues; fusetest has one over plain function calls. This is
// the whole contract between the FUSE client and the transport below it, as
// virtio_fs_fiq_ops is in Linux fs/fuse/virtio_fs.c.
type Sender interface {
	// RoundTrip sends one request and waits for its reply.
	//
	// in holds the request bytes (the fuse_in_header with its unique ID
	// already set, then the arguments) and is only read. out is where the
	// reply is written: the fuse_out_header first, then the payload; its
	// total length is the largest reply the caller accepts. RoundTrip
	// returns the number of bytes the server wrote, which the caller must
	// still validate (the server is untrusted).
	//
	// Errors: ENOTCONN (a syscall.Errno) if the device is gone or goes away
	// while waiting; ctx.Err() if ctx ends first (the request may still be
	// executed by the server); E2BIG if the request or reply exceeds
	// Limits.
	RoundTrip(ctx context.Context, in, out [][]byte) (int, error)

	// SendHiprio sends a request that has no reply (FORGET, BATCH_FORGET,
	// INTERRUPT) on the high-priority queue. It returns once the request is
	// queued; a full queue makes it wait.
	//
	// Errors: as RoundTrip.
	SendHiprio(ctx context.Context, in [][]byte) error

	// Limits says how large requests may be.
	Limits() Limits

	// Window is the DAX shared-memory window mapped into this process, or
	// nil if the device has none.
	Window() []byte
}

// Limits are the transport's size limits, handed to the FUSE client as data.
type Limits struct {
	// MaxPages bounds the data of one READ or WRITE to MaxPages*4096 bytes.
	MaxPages int
}

// AsyncSender is a Sender that can also send a request whose reply nobody
// waits for, as Linux fuse_simple_background does (RELEASE from
// fuse_file_put). The client uses Send, when its Sender implements it, for
// RELEASE and RELEASEDIR instead of a goroutine that waits in RoundTrip:
// in a guest with one processor that goroutine competes with the caller's
// next request. driver.Device implements it.
type AsyncSender interface {
	Sender

	// Send sends one request as RoundTrip does and returns once it is
	// queued. The reply is written into out as by RoundTrip, and then
	// done is called with what RoundTrip would have returned (n and nil,
	// or 0 and an error, ENOTCONN if the device goes away first). done is
	// called exactly once if Send returns nil, never if it returns an
	// error. It runs on a goroutine of the Sender, holding no lock of the
	// caller's, and may call the Sender's methods. in may be reused once
	// Send returns; out must not be touched until done is called.
	//
	// Errors: as RoundTrip, for a request that was not sent.
	Send(ctx context.Context, in, out [][]byte, done func(n int, err error)) error
}

// backgroundWaiter is told the result of a request sent by background.
// An interface rather than a func: the open file that sends its RELEASE
// is one already, where a closure would be an allocation per close.
type backgroundWaiter interface {
	// backgroundDone gets what callEmpty would have returned. It runs
	// on a goroutine of the Sender, or of background, holding no lock.
	backgroundDone(err error)
}

// background sends r, whose reply carries no payload, without waiting for
// the reply (Linux fuse_simple_background) and calls done.backgroundDone
// once with what callEmpty would have returned: through the Sender's Send
// when it is an AsyncSender, from a goroutine of its own otherwise. done
// may run before background returns. r goes back to the request pool
// once its reply has been checked.
func (c *Conn) background(ctx context.Context, r *request, done backgroundWaiter) {
	as, ok := c.s.(AsyncSender)
	if !ok {
		go func() { done.backgroundDone(c.callEmpty(ctx, r)) }()
		return
	}
	if err := c.ready(r.op); err != nil {
		done.backgroundDone(err)
		return
	}
	unique := c.nextUnique()
	if err := c.fillHeader(ctx, r, unique); err != nil {
		done.backgroundDone(err)
		return
	}
	r.bgConn, r.bgUnique, r.bgWaiter = c, unique, done
	if r.sendDone == nil {
		// Made once per request object: a pooled request keeps it.
		r.sendDone = r.backgroundReply
	}
	if err := as.Send(ctx, r.in(), r.outVec(), r.sendDone); err != nil {
		r.bgConn, r.bgWaiter = nil, nil
		done.backgroundDone(err)
	}
}

// backgroundReply is the AsyncSender's done of a request sent by
// background: it checks the reply, frees r if the transport is done with
// its buffers (a reply came), and tells the waiter.
func (r *request) backgroundReply(n int, err error) {
	c, done := r.bgConn, r.bgWaiter
	r.bgConn, r.bgWaiter = nil, nil
	if err == nil {
		err = c.checkEmptyReply(r, r.bgUnique, n)
		r.answered = true
	}
	r.free()
	done.backgroundDone(err)
}

// checkEmptyReply validates the n-byte reply in r.out to a request whose
// reply carries no payload, as roundTrip and callEmpty validate one: a
// fuse_out_header alone whose len is n and whose unique is the request's,
// and an errno in 1..4095 or none. The server's errno is returned as a
// syscall.Errno; a violation is EIO with a log line.
func (c *Conn) checkEmptyReply(r *request, unique uint64, n int) error {
	if n != outHeaderSize || len(r.out) < outHeaderSize {
		return c.invalid(r.op, unique, badReply("%d bytes, want a fuse_out_header alone", n))
	}
	h, _ := decodeOutHeader(r.out)
	if int(h.Len) != n {
		return c.invalid(r.op, unique, badReply("out.len %d but %d bytes written", h.Len, n))
	}
	if h.Unique != unique {
		return c.invalid(r.op, unique, badReply("reply unique %d", h.Unique))
	}
	errno, ok := replyErrno(h.Error)
	if !ok {
		return c.invalid(r.op, unique, badReply("invalid error %d", h.Error))
	}
	return errno
}
