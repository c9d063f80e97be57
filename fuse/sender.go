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
