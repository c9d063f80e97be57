package virtio

import (
	"fmt"
	"sort"
	"sync"
	"syscall"
)

// Arena is a first-fit allocator over one physically contiguous buffer
// whose first byte the device sees at a fixed address. Transports build
// their Memory from one or more Arenas: the vhost-user memfd region, each
// 2 MiB hugepage of guest memory, the plain memory of a fake device.
//
// An Arena is safe for concurrent use.
type Arena struct {
	buf  []byte // immutable
	addr uint64 // immutable: device address of buf[0]

	// mu guards free and used.
	mu   sync.Mutex
	free []span      // free runs, sorted by off, never adjacent
	used map[int]int // offset of each live allocation -> its length
}

// span is a run of the arena: bytes [off, off+n).
type span struct{ off, n int }

// NewArena returns an allocator over b, whose first byte the device sees at
// addr. b must stay valid (mapped) for as long as the Arena's buffers are used.
func NewArena(b []byte, addr uint64) *Arena {
	a := &Arena{buf: b, addr: addr, used: make(map[int]int)}
	if len(b) > 0 {
		a.free = []span{{0, len(b)}}
	}
	return a
}

// MaxAlloc is the largest size Alloc can ever satisfy: the whole arena.
func (a *Arena) MaxAlloc() int { return len(a.buf) }

// Alloc returns a zeroed buffer of size bytes whose device address is a
// multiple of align (a power of two; 0 means 1). It takes the first free run
// that fits.
//
// Errors: EINVAL for a size < 1 or an align that is not a power of two;
// an error wrapping ENOMEM when no free run fits.
func (a *Arena) Alloc(size, align int) (Buffer, error) {
	if align == 0 {
		align = 1
	}
	if size < 1 || align < 0 || align&(align-1) != 0 {
		return Buffer{}, fmt.Errorf("virtio: arena alloc of %d bytes aligned to %d: %w", size, align, syscall.EINVAL)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, s := range a.free {
		// Align the device address, not the offset: addr need not be aligned.
		pad := int((uint64(align) - (a.addr+uint64(s.off))%uint64(align)) % uint64(align))
		if pad > s.n || s.n-pad < size {
			continue
		}
		off := s.off + pad
		var repl []span
		if pad > 0 {
			repl = append(repl, span{s.off, pad})
		}
		if rest := s.n - pad - size; rest > 0 {
			repl = append(repl, span{off + size, rest})
		}
		a.free = append(a.free[:i], append(repl, a.free[i+1:]...)...)
		a.used[off] = size
		b := a.buf[off : off+size : off+size]
		clear(b)
		return Buffer{Bytes: b, Addr: a.addr + uint64(off)}, nil
	}
	return Buffer{}, fmt.Errorf("virtio: arena of %d bytes has no free run of %d bytes aligned to %d: %w", len(a.buf), size, align, syscall.ENOMEM)
}

// Free returns a buffer obtained from Alloc to the arena, merging it with
// free neighbours. Buffers that the arena did not hand out (or already
// freed) are ignored.
func (a *Arena) Free(b Buffer) {
	if b.Addr < a.addr || b.Addr-a.addr >= uint64(len(a.buf)) {
		return
	}
	off := int(b.Addr - a.addr)
	a.mu.Lock()
	defer a.mu.Unlock()
	n, ok := a.used[off]
	if !ok {
		return
	}
	delete(a.used, off)
	i := sort.Search(len(a.free), func(i int) bool { return a.free[i].off > off })
	s := span{off, n}
	// Merge with the run after, then with the run before.
	if i < len(a.free) && s.off+s.n == a.free[i].off {
		s.n += a.free[i].n
		a.free = append(a.free[:i], a.free[i+1:]...)
	}
	if i > 0 && a.free[i-1].off+a.free[i-1].n == s.off {
		a.free[i-1].n += s.n
		return
	}
	a.free = append(a.free, span{})
	copy(a.free[i+1:], a.free[i:])
	a.free[i] = s
}

// Contains reports whether the device range [addr, addr+n) lies inside the
// arena, and if so returns the driver's view of it.
func (a *Arena) Contains(addr uint64, n int) ([]byte, bool) {
	if n < 0 || addr < a.addr {
		return nil, false
	}
	off := addr - a.addr
	if off > uint64(len(a.buf)) || uint64(n) > uint64(len(a.buf))-off {
		return nil, false
	}
	return a.buf[off : off+uint64(n) : off+uint64(n)], true
}
