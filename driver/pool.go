package driver

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"syscall"

	"github.com/govirtiofs/govirtiofs/virtio"
)

const (
	pageSize = 4096
	// minClassShift is the smallest pooled buffer, one page.
	minClassShift = 12
	// bufAlign is the device alignment of request buffers: a cache line.
	bufAlign = 64
	// poolClassBytes bounds the bytes each size class keeps cached.
	poolClassBytes = 1 << 20
	// maxCachedRequests bounds the small requests kept with their
	// buffers (2 pages each).
	maxCachedRequests = 64
)

// pool hands out DMA buffers for requests in power-of-two size classes from
// one page up, keeping freed buffers for reuse, so that a steady stream of
// requests does not go to the Memory's allocator. When the Memory is
// exhausted, get gives the cache back to it and then waits for a buffer to
// be released, as a full queue waits.
//
// It also keeps small requests (a page for the request, a page for the
// reply: every metadata operation) whole, with their two buffers attached:
// taking one is a single lock, where separate buffers cost a lock each and
// a sync.Pool round (sync.Pool cannot hold them: it drops objects at a
// garbage collection, and their DMA buffers with them). Their buffers count
// as cached, not live.
type pool struct {
	mem virtio.Memory // immutable
	max int           // immutable: the largest buffer get hands out

	// mu guards the fields below.
	mu       sync.Mutex
	free     [][]virtio.Buffer // cached buffers by class
	released chan struct{}     // closed (and replaced) when a buffer is put back
	reqs     []*request        // small requests with their buffers attached (see getRequest)
	live     int               // buffers handed out and not put back
	waiters  int               // goroutines waiting on released
	closed   bool
}

func newPool(mem virtio.Memory, max int) *pool {
	return &pool{
		mem:      mem,
		max:      max,
		free:     make([][]virtio.Buffer, bits.Len(uint(max))+1),
		released: make(chan struct{}),
	}
}

// class returns the size class of an n-byte buffer and its size.
func class(n int) (int, int) {
	c := max(bits.Len(uint(n-1)), minClassShift)
	return c, 1 << c
}

// get returns a buffer of at least n bytes (n <= p.max), whose first n
// bytes are the request's. Its contents are not zeroed. It waits while the
// Memory is exhausted and other buffers are live.
//
// Errors: ctx.Err(); an error wrapping ENOMEM if the Memory cannot satisfy
// the allocation even with nothing else live; ENOTCONN after close.
func (p *pool) get(ctx context.Context, n int, dead <-chan struct{}) (virtio.Buffer, error) {
	c, size := class(n)
	if size > p.max {
		// The top class, whose power of two would pass the largest
		// request: buffers of exactly p.max bytes, cached as the others
		// (the largest READs and WRITEs would otherwise go to the
		// Memory, which clears them, every time). A larger n, against
		// the precondition, gets an exact buffer, not cached.
		size = max(p.max, n)
	}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return virtio.Buffer{}, syscall.ENOTCONN
		}
		if n <= p.max && c < len(p.free) && len(p.free[c]) > 0 {
			l := p.free[c]
			b := l[len(l)-1]
			p.free[c] = l[:len(l)-1]
			p.live++
			p.mu.Unlock()
			return b, nil
		}
		p.live++
		p.mu.Unlock()
		b, err := p.mem.Alloc(size, bufAlign)
		if err == nil {
			return b, nil
		}
		p.mu.Lock()
		p.live--
		if !errors.Is(err, syscall.ENOMEM) {
			p.mu.Unlock()
			return virtio.Buffer{}, fmt.Errorf("driver: allocating a %d-byte request buffer: %w", size, err)
		}
		// Give the cache back so that a larger run can form, and retry;
		// if nothing is cached or live, waiting will not help.
		cached := p.drainLocked()
		if !cached && p.live == 0 {
			p.mu.Unlock()
			return virtio.Buffer{}, fmt.Errorf("driver: allocating a %d-byte request buffer: %w", size, err)
		}
		if cached {
			p.mu.Unlock()
			continue
		}
		ch := p.released
		p.waiters++
		p.mu.Unlock()
		var werr error
		select {
		case <-ch:
		case <-ctx.Done():
			werr = ctx.Err()
		case <-dead:
			werr = syscall.ENOTCONN
		}
		p.mu.Lock()
		p.waiters--
		p.mu.Unlock()
		if werr != nil {
			return virtio.Buffer{}, werr
		}
	}
}

// put gives back a buffer from get.
func (p *pool) put(b virtio.Buffer) {
	c, size := class(len(b.Bytes))
	p.mu.Lock()
	defer p.mu.Unlock()
	p.live--
	if !p.closed && min(size, p.max) == len(b.Bytes) && c < len(p.free) && len(p.free[c])*size < max(poolClassBytes, 4*size) {
		p.free[c] = append(p.free[c], b)
	} else {
		p.mem.Free(b)
	}
	if p.waiters > 0 {
		close(p.released)
		p.released = make(chan struct{})
	}
}

// small reports whether a request of inLen bytes with a reply of outLen
// bytes fits a cached request's buffers.
func small(inLen, outLen int) bool {
	return inLen <= pageSize && outLen > 0 && outLen <= pageSize
}

// getRequest takes a cached small request whose full buffers are one page
// each, or returns nil if none is cached (or the pool is closed). Its other
// fields are zero.
//
// Preconditions: small(inLen, outLen).
func (p *pool) getRequest() *request {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.reqs)
	if n == 0 || p.closed {
		return nil
	}
	r := p.reqs[n-1]
	p.reqs[n-1] = nil
	p.reqs = p.reqs[:n-1]
	p.live += 2
	return r
}

// putRequest keeps r, which nothing references any more, with full as its
// buffers for getRequest, if they are a page each and the cache has room.
// It reports whether it did; if not, the caller gives the buffers back.
func (p *pool) putRequest(r *request, full [2]virtio.Buffer) bool {
	if len(full[0].Bytes) != pageSize || len(full[1].Bytes) != pageSize {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.reqs) >= maxCachedRequests {
		return false
	}
	*r = request{full: full}
	p.reqs = append(p.reqs, r)
	p.live -= 2
	if p.waiters > 0 {
		close(p.released)
		p.released = make(chan struct{})
	}
	return true
}

// drainLocked frees every cached buffer, those of cached requests too, and
// reports whether there was any.
//
// Preconditions: p.mu is held.
func (p *pool) drainLocked() bool {
	any := false
	for i, r := range p.reqs {
		p.mem.Free(r.full[0])
		p.mem.Free(r.full[1])
		p.reqs[i] = nil
		any = true
	}
	p.reqs = p.reqs[:0]
	for c, l := range p.free {
		for _, b := range l {
			p.mem.Free(b)
			any = true
		}
		p.free[c] = nil
	}
	return any
}

// close frees the cache; buffers put back later are freed at once.
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.drainLocked()
}
