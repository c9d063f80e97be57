package virtio

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// ErrBadUsed is wrapped by the errors Queue.Pop returns for used ring
// entries that no honest device writes: an id that is out of range or not
// in flight, a length beyond the chain's device-writable bytes, or a used
// idx that ran more than the queue size ahead.
var ErrBadUsed = errors.New("virtio: bogus used ring entry")

// Queue is the driver side of one split virtqueue (virtio spec 1.2 section
// 2.7) whose rings live in DMA memory it was handed.
//
// Chains are added with Add and completions taken with Pop from any
// goroutines (the driver's callers poll for their own replies; a polling
// goroutine paced by Backoff takes over when none does). Freed indirect
// tables are cached for reuse. The queue sets
// VIRTQ_AVAIL_F_NO_INTERRUPT (or, with VIRTIO_F_EVENT_IDX, parks used_event
// half the index space away): the driver polls and does not want
// interrupts.
type Queue struct {
	mem      Memory // immutable
	index    int    // immutable
	size     int    // immutable, a power of two
	eventIdx bool   // immutable: VIRTIO_F_EVENT_IDX negotiated
	indirect bool   // immutable: VIRTIO_F_INDIRECT_DESC negotiated

	desc, avail, used Buffer // immutable; contents shared with the device

	availWord *atomic.Uint32 // immutable: avail flags|idx<<16
	usedWord  *atomic.Uint32 // immutable: used flags|idx<<16
	availEv   *atomic.Uint32 // immutable: avail_event in the low half

	// lastUsedShadow mirrors lastUsed for HasUsed, which runs without mu.
	lastUsedShadow atomic.Uint32

	// mu guards all fields below.
	mu       sync.Mutex
	next     []uint16      // driver-private copy of each descriptor's next link
	freeHead uint16        // first free descriptor
	numFree  int           // descriptors on the free list
	chains   []chain       // by head descriptor
	inFlight int           // chains handed to the device and not yet used
	availIdx uint16        // the avail idx last published
	lastUsed uint16        // the used idx up to which entries were taken
	waiters  int           // goroutines blocked in Add for descriptors
	freed    chan struct{} // closed (and replaced) when descriptors are freed while waiters > 0
	closed   bool
	// tables caches freed indirect tables by their number of descriptors
	// (up to maxCachedTable), so that a steady stream of chains does not
	// go to the Memory's allocator.
	tables [maxCachedTable + 1][]Buffer
}

// Indirect table cache bounds: tables of up to maxCachedTable descriptors,
// at most maxCachedTables of each size.
const (
	maxCachedTable  = 8
	maxCachedTables = 64
)

// chain is the driver's record of a descriptor chain in flight.
type chain struct {
	active   bool
	cookie   any
	ndesc    int    // descriptors of the ring it occupies
	last     uint16 // its last ring descriptor
	writable uint64 // device-writable bytes
	table    Buffer // indirect descriptor table, if any
}

// Used is one completed chain as Pop returns it.
type Used struct {
	Cookie any // as given to Add
	Len    int // bytes the device says it wrote into the writable buffers
}

// NewQueue allocates the rings of queue index with size descriptors from
// mem. features are the negotiated feature bits; EVENT_IDX and
// INDIRECT_DESC change how the queue works.
//
// Errors: EINVAL if size is not a power of two in [2, 32768]; the error of
// mem.Alloc if the rings do not fit.
func NewQueue(mem Memory, index, size int, features uint64) (*Queue, error) {
	if size < 2 || size > 32768 || size&(size-1) != 0 {
		return nil, fmt.Errorf("virtio: queue %d: size %d is not a power of two in [2, 32768]: %w", index, size, syscall.EINVAL)
	}
	if !littleEndian() {
		return nil, fmt.Errorf("virtio: queue %d: big-endian machines are not supported: %w", index, syscall.EINVAL)
	}
	q := &Queue{
		mem:      mem,
		index:    index,
		size:     size,
		eventIdx: features&FeatureEventIdx != 0,
		indirect: features&FeatureIndirectDesc != 0,
		next:     make([]uint16, size),
		numFree:  size,
		chains:   make([]chain, size),
		freed:    make(chan struct{}),
	}
	parts := []struct {
		b           *Buffer
		size, align int
	}{
		{&q.desc, DescTableBytes(size), DescAlign},
		{&q.avail, AvailRingBytes(size), AvailAlign},
		{&q.used, UsedRingBytes(size), UsedAlign},
	}
	for _, p := range parts {
		b, err := mem.Alloc(p.size, p.align)
		if err == nil && uintptr(unsafe.Pointer(&b.Bytes[0]))%uintptr(p.align) != 0 {
			mem.Free(b)
			err = fmt.Errorf("virtio: memory whose device alignment differs from its virtual alignment: %w", syscall.EINVAL)
		}
		if err != nil {
			q.freeRings()
			return nil, fmt.Errorf("virtio: queue %d rings: %w", index, err)
		}
		*p.b = b
	}
	for i := range q.next {
		q.next[i] = uint16(i + 1) // the last link is never followed
	}
	q.availWord = Word(q.avail.Bytes, 0)
	q.usedWord = Word(q.used.Bytes, 0)
	q.availEv = Word(q.used.Bytes, AvailEventOffset(size))
	if q.eventIdx {
		// Section 2.7.10: with EVENT_IDX the flags must be 0. Park
		// used_event half the index space ahead: the device then signals
		// once per 32768 completions, which is as good as never.
		Word(q.avail.Bytes, UsedEventOffset(size)).Store(0x8000)
	} else {
		q.availWord.Store(AvailFlagNoInterrupt)
	}
	return q, nil
}

func (q *Queue) freeRings() {
	for _, b := range []*Buffer{&q.desc, &q.avail, &q.used} {
		if b.Bytes != nil {
			q.mem.Free(*b)
			*b = Buffer{}
		}
	}
}

// Index is the queue's index on its device.
func (q *Queue) Index() int { return q.index }

// Size is the number of descriptors.
func (q *Queue) Size() int { return q.size }

// Addrs returns the rings as Transport.EnableQueue wants them.
func (q *Queue) Addrs() QueueAddrs {
	return QueueAddrs{Size: q.size, Desc: q.desc, Avail: q.avail, Used: q.used}
}

// InFlight is the number of chains added and not yet popped.
func (q *Queue) InFlight() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.inFlight
}

// Add makes a chain of the device-readable buffers followed by the
// device-writable ones available to the device (section 2.7.13), and
// returns whether the device wants to be notified (section 2.7.13.4: the
// avail_event test with EVENT_IDX, else VIRTQ_USED_F_NO_NOTIFY). The caller
// then calls Transport.Notify itself. cookie comes back from Pop.
//
// With INDIRECT_DESC a chain of more than one buffer takes one ring
// descriptor and an indirect table allocated from the queue's Memory
// (section 2.7.5.3); if that allocation fails, the chain goes directly into
// the ring.
//
// Add blocks while the ring lacks free descriptors, until Pop frees some
// or ctx is done (a full queue means wait, not an error).
//
// Errors: EINVAL for an empty chain, a chain longer than the queue, or a
// buffer over 4 GiB; ctx.Err() if ctx ends the wait; ErrDeviceGone after
// Close.
//
// Postconditions: on success the device may read and write the buffers
// until Pop returns cookie; the caller must not touch the writable ones
// until then.
func (q *Queue) Add(ctx context.Context, readable, writable []Buffer, cookie any) (notify bool, err error) {
	n := len(readable) + len(writable)
	if n == 0 || n > q.size {
		return false, fmt.Errorf("virtio: queue %d: chain of %d buffers (queue size %d): %w", q.index, n, q.size, syscall.EINVAL)
	}
	var writableBytes uint64
	for i, bufs := range [][]Buffer{readable, writable} {
		for _, b := range bufs {
			if len(b.Bytes) > math.MaxUint32 {
				return false, fmt.Errorf("virtio: queue %d: buffer of %d bytes: %w", q.index, len(b.Bytes), syscall.EINVAL)
			}
			if i == 1 {
				writableBytes += uint64(len(b.Bytes))
			}
		}
	}
	var table Buffer
	need := n
	if q.indirect && n > 1 {
		t, ok := q.cachedTable(n)
		if !ok {
			var err error
			t, err = q.mem.Alloc(DescTableBytes(n), DescAlign)
			ok = err == nil
		}
		if ok {
			table, need = t, 1
			fillIndirect(table.Bytes, readable, writable)
		}
	}

	q.mu.Lock()
	for q.numFree < need && !q.closed {
		ch := q.freed
		q.waiters++
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			q.mu.Lock()
			q.waiters--
			q.mu.Unlock()
			if table.Bytes != nil {
				q.mem.Free(table)
			}
			return false, ctx.Err()
		}
		q.mu.Lock()
		q.waiters--
	}
	if q.closed {
		q.mu.Unlock()
		if table.Bytes != nil {
			q.mem.Free(table)
		}
		return false, fmt.Errorf("virtio: queue %d closed: %w", q.index, ErrDeviceGone)
	}
	defer q.mu.Unlock()

	head := q.freeHead
	last := head
	for range need - 1 {
		last = q.next[last]
	}
	q.freeHead = q.next[last]
	q.numFree -= need
	if table.Bytes != nil {
		PutDesc(q.desc.Bytes[int(head)*DescSize:], Desc{Addr: table.Addr, Len: uint32(len(table.Bytes)), Flags: DescFlagIndirect})
	} else {
		// The chain is the free list's first n descriptors, linked in
		// the order the free list had them.
		d := head
		for i := range n {
			nx := q.next[d]
			b, flags := chainBuffer(readable, writable, i)
			var link uint16
			if i < n-1 {
				flags |= DescFlagNext
				link = nx
			}
			PutDesc(q.desc.Bytes[int(d)*DescSize:], Desc{Addr: b.Addr, Len: uint32(len(b.Bytes)), Flags: flags, Next: link})
			d = nx
		}
	}
	q.chains[head] = chain{active: true, cookie: cookie, ndesc: need, last: last, writable: writableBytes, table: table}
	q.inFlight++

	// Section 2.7.13.2-3: the ring entry, then (release) the new idx.
	slot := int(q.availIdx) & (q.size - 1)
	binary.LittleEndian.PutUint16(q.avail.Bytes[4+2*slot:], head)
	old := q.availIdx
	q.availIdx++
	flags := uint32(0)
	if !q.eventIdx {
		flags = AvailFlagNoInterrupt
	}
	q.availWord.Store(flags | uint32(q.availIdx)<<16)

	// Section 2.7.13.4: sequentially consistent atomics order the idx
	// store before these loads, as the spec's memory barrier requires.
	if q.eventIdx {
		return NeedEvent(uint16(q.availEv.Load()), q.availIdx, old), nil
	}
	return q.usedWord.Load()&UsedFlagNoNotify == 0, nil
}

// chainBuffer returns buffer i of the chain readable++writable and its
// descriptor flags apart from NEXT.
func chainBuffer(readable, writable []Buffer, i int) (Buffer, uint16) {
	if i < len(readable) {
		return readable[i], 0
	}
	return writable[i-len(readable)], DescFlagWrite
}

// fillIndirect writes the chain into an indirect table, descriptor i
// linking to i+1 (section 2.7.5.3.1).
func fillIndirect(table []byte, readable, writable []Buffer) {
	n := len(readable) + len(writable)
	for i := range n {
		b, flags := chainBuffer(readable, writable, i)
		var next uint16
		if i < n-1 {
			flags |= DescFlagNext
			next = uint16(i + 1)
		}
		PutDesc(table[i*DescSize:], Desc{Addr: b.Addr, Len: uint32(len(b.Bytes)), Flags: flags, Next: next})
	}
}

// HasUsed reports, without locking, whether the device has published used
// entries that Pop has not taken yet. Polling loops call it.
func (q *Queue) HasUsed() bool {
	return uint16(q.usedWord.Load()>>16) != uint16(q.lastUsedShadow.Load())
}

// Pop takes the next used ring entry (section 2.7.14), frees its chain, and
// returns its cookie and written length; ok is false when there is none.
//
// The device is not trusted: an entry whose id is out of range or not in
// flight is consumed and reported as an error wrapping ErrBadUsed with
// ok=false; an entry whose length exceeds the chain's writable bytes frees
// the chain and returns its cookie with ok=true, Len clamped to the
// writable bytes and an error wrapping ErrBadUsed, so that the caller fails
// that request (with EIO). A used idx more than the queue size ahead is
// reported each call without consuming anything: the device is broken.
func (q *Queue) Pop() (u Used, ok bool, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return Used{}, false, nil
	}
	usedIdx := uint16(q.usedWord.Load() >> 16) // acquire: entries below are complete
	pending := usedIdx - q.lastUsed
	if pending == 0 {
		return Used{}, false, nil
	}
	if int(pending) > q.size {
		return Used{}, false, fmt.Errorf("virtio: queue %d: used idx %d is %d entries past %d, more than the queue size: %w", q.index, usedIdx, pending, q.lastUsed, ErrBadUsed)
	}
	slot := int(q.lastUsed) & (q.size - 1)
	e := q.used.Bytes[4+UsedElemSize*slot:]
	id := binary.LittleEndian.Uint32(e[0:])
	n := binary.LittleEndian.Uint32(e[4:])
	q.lastUsed++
	q.lastUsedShadow.Store(uint32(q.lastUsed))
	if id >= uint32(q.size) || !q.chains[id].active {
		return Used{}, false, fmt.Errorf("virtio: queue %d: used entry %d names descriptor %d, which is not the head of a chain in flight: %w", q.index, q.lastUsed-1, id, ErrBadUsed)
	}
	c := q.chains[id]
	q.freeChainLocked(uint16(id))
	u = Used{Cookie: c.cookie, Len: int(n)}
	if uint64(n) > c.writable {
		u.Len = int(c.writable)
		return u, true, fmt.Errorf("virtio: queue %d: device wrote %d bytes into a chain with %d writable: %w", q.index, n, c.writable, ErrBadUsed)
	}
	return u, true, nil
}

// freeChainLocked returns chain head's descriptors and indirect table.
//
// Preconditions: q.mu is held; chain head is active.
func (q *Queue) freeChainLocked(head uint16) {
	c := &q.chains[head]
	q.next[c.last] = q.freeHead
	q.freeHead = head
	q.numFree += c.ndesc
	q.inFlight--
	if t := c.table; t.Bytes != nil {
		if n := len(t.Bytes) / DescSize; n <= maxCachedTable && len(q.tables[n]) < maxCachedTables && !q.closed {
			q.tables[n] = append(q.tables[n], t)
		} else {
			q.mem.Free(t)
		}
	}
	*c = chain{}
	if q.waiters > 0 {
		close(q.freed)
		q.freed = make(chan struct{})
	}
}

// cachedTable takes a cached indirect table of n descriptors, if any.
func (q *Queue) cachedTable(n int) (Buffer, bool) {
	if n > maxCachedTable {
		return Buffer{}, false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	l := q.tables[n]
	if len(l) == 0 || q.closed {
		return Buffer{}, false
	}
	t := l[len(l)-1]
	q.tables[n] = l[:len(l)-1]
	return t, true
}

// Close wakes goroutines blocked in Add (they return ErrDeviceGone), and
// returns the rings and indirect tables to the Memory.
//
// Preconditions: the device no longer uses the queue (it was reset, or is
// gone).
func (q *Queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.closed = true
	for i := range q.chains {
		if q.chains[i].table.Bytes != nil {
			q.mem.Free(q.chains[i].table)
		}
	}
	for n, l := range q.tables {
		for _, t := range l {
			q.mem.Free(t)
		}
		q.tables[n] = nil
	}
	q.freeRings()
	close(q.freed)
}
