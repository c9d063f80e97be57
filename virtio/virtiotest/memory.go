package virtiotest

import (
	"fmt"
	"syscall"
	"unsafe"

	"github.com/govirtiofs/govirtiofs/virtio"
)

// MemoryBase is the fake device address of a Memory's first byte.
const MemoryBase = 0x10_0000_0000

// Memory is plain memory posing as DMA memory: it implements virtio.Memory
// with device addresses starting at MemoryBase, and lets the fake device
// translate them back with Slice.
type Memory struct {
	buf   []byte        // immutable
	arena *virtio.Arena // immutable
}

var _ virtio.Memory = (*Memory)(nil)

// NewMemory returns size bytes of fake DMA memory. Its virtual and device
// addresses agree modulo 4096, so alignments up to a page hold for both.
func NewMemory(size int) *Memory {
	const page = 4096
	raw := make([]byte, size+page)
	skip := (page - int(uintptr(unsafe.Pointer(&raw[0]))%page)) % page
	buf := raw[skip : skip+size : skip+size]
	return &Memory{buf: buf, arena: virtio.NewArena(buf, MemoryBase)}
}

// Alloc implements virtio.Memory.Alloc.
func (m *Memory) Alloc(size, align int) (virtio.Buffer, error) { return m.arena.Alloc(size, align) }

// Free implements virtio.Memory.Free.
func (m *Memory) Free(b virtio.Buffer) { m.arena.Free(b) }

// MaxAlloc implements virtio.Memory.MaxAlloc.
func (m *Memory) MaxAlloc() int { return m.arena.MaxAlloc() }

// Slice translates the device range [addr, addr+n) into memory, as a device
// doing DMA would.
//
// Errors: EFAULT if the range is not inside the memory.
func (m *Memory) Slice(addr uint64, n int) ([]byte, error) {
	b, ok := m.arena.Contains(addr, n)
	if !ok {
		return nil, fmt.Errorf("virtiotest: device access to [%#x, +%d) outside memory: %w", addr, n, syscall.EFAULT)
	}
	return b, nil
}
