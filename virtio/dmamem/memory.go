package dmamem

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"

	"github.com/govirtiofs/govirtiofs/virtio"
)

// ErrClosed is returned by Alloc after Close.
var ErrClosed = errors.New("dmamem: memory closed")

// HugePageSize is the size of the pages Memory is made of, and its MaxAlloc.
const HugePageSize = 2 << 20

// Page is one hugepage of a Memory: where the driver and the device see it.
type Page struct {
	Bytes []byte // the driver's mapping
	Addr  uint64 // guest-physical address of Bytes[0]
}

// Memory is virtio.Memory over hugepages, one virtio.Arena per page.
type Memory struct {
	pages  []Page          // immutable after construction
	arenas []*virtio.Arena // immutable; arenas[i] covers pages[i]
	byAddr map[uint64]int  // immutable: page address -> index
	hint   atomic.Int32    // the page that last satisfied Alloc
	unmap  func() error    // releases the pages; nil for borrowed memory
	closed atomic.Bool
}

var _ virtio.Memory = (*Memory)(nil)

// newMemory builds a Memory over pages, each HugePageSize bytes at a
// HugePageSize-aligned address (as a hugepage is).
func newMemory(pages []Page) (*Memory, error) {
	m := &Memory{pages: pages, byAddr: make(map[uint64]int, len(pages))}
	for i, p := range pages {
		if len(p.Bytes) != HugePageSize || p.Addr%HugePageSize != 0 {
			return nil, fmt.Errorf("dmamem: page %d is %d bytes at %#x, want %d bytes at a multiple of it", i, len(p.Bytes), p.Addr, HugePageSize)
		}
		if _, dup := m.byAddr[p.Addr]; dup {
			return nil, fmt.Errorf("dmamem: two pages at physical address %#x", p.Addr)
		}
		m.byAddr[p.Addr] = i
		m.arenas = append(m.arenas, virtio.NewArena(p.Bytes, p.Addr))
	}
	return m, nil
}

// Pages returns the hugepages of m. The caller must not modify the slice.
func (m *Memory) Pages() []Page { return m.pages }

// MaxAlloc implements virtio.Memory.MaxAlloc: one hugepage.
func (m *Memory) MaxAlloc() int { return HugePageSize }

// Alloc implements virtio.Memory.Alloc. The buffer lies inside one
// hugepage, so it is physically contiguous.
//
// Errors: EINVAL for a size outside [1, MaxAlloc] or a bad align; ENOMEM
// when no page has room; ErrClosed after Close.
func (m *Memory) Alloc(size, align int) (virtio.Buffer, error) {
	if m.closed.Load() {
		return virtio.Buffer{}, ErrClosed
	}
	if size < 1 || size > HugePageSize {
		return virtio.Buffer{}, fmt.Errorf("dmamem: alloc of %d bytes (max %d): %w", size, HugePageSize, syscall.EINVAL)
	}
	n := len(m.arenas)
	start := int(m.hint.Load())
	for k := 0; k < n; k++ {
		i := (start + k) % n
		b, err := m.arenas[i].Alloc(size, align)
		if err == nil {
			m.hint.Store(int32(i))
			return b, nil
		}
		if errors.Is(err, syscall.ENOMEM) {
			continue
		}
		return virtio.Buffer{}, err
	}
	return virtio.Buffer{}, fmt.Errorf("dmamem: no room for %d bytes aligned to %d in %d hugepages: %w", size, align, n, syscall.ENOMEM)
}

// Free implements virtio.Memory.Free. Buffers that m did not hand out are
// ignored.
func (m *Memory) Free(b virtio.Buffer) {
	if i, ok := m.byAddr[b.Addr&^(HugePageSize-1)]; ok {
		m.arenas[i].Free(b)
	}
}

// Close releases the hugepages.
//
// Preconditions: the device has been reset (it may not touch the memory
// afterwards) and no Alloc or Free runs concurrently or later.
func (m *Memory) Close() error {
	if m.closed.Swap(true) || m.unmap == nil {
		return nil
	}
	return m.unmap()
}
