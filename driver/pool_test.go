package driver

import (
	"context"
	"testing"

	"github.com/govirtiofs/govirtiofs/virtio"
)

// countingMemory is an arena that counts allocations.
type countingMemory struct {
	*virtio.Arena
	allocs int
}

func (m *countingMemory) Alloc(size, align int) (virtio.Buffer, error) {
	m.allocs++
	return m.Arena.Alloc(size, align)
}

// TestPoolTopClass: buffers of the class holding the pool's largest size,
// whose power of two is past it, are p.max bytes and cached like the
// others, so that the largest requests (a max_pages READ's reply, a
// max_pages WRITE: a header and 256 pages) do not allocate from the Memory
// every time.
func TestPoolTopClass(t *testing.T) {
	const maxBuf = 257 * 4096 // max_pages 256, plus a page
	mem := &countingMemory{Arena: virtio.NewArena(make([]byte, 8<<20), 1<<20)}
	p := newPool(mem, maxBuf)
	ctx := context.Background()
	for _, n := range []int{maxBuf, 256*4096 + fuseOutHeaderLen, 256*4096 + 80, 1<<20 + 1, maxBuf} {
		var bufs []virtio.Buffer
		for range 3 {
			b, err := p.get(ctx, n, nil)
			if err != nil {
				t.Fatalf("get(%d): %v", n, err)
			}
			if len(b.Bytes) < n {
				t.Fatalf("get(%d) = %d bytes", n, len(b.Bytes))
			}
			bufs = append(bufs, b)
		}
		for _, b := range bufs {
			p.put(b)
		}
	}
	if mem.allocs != 3 {
		t.Errorf("%d allocations from the Memory, want 3 (then all from the cache)", mem.allocs)
	}
	if b, err := p.get(ctx, maxBuf+1, nil); err != nil || len(b.Bytes) != maxBuf+1 {
		t.Errorf("get(max+1) = %d bytes, %v; want an exact buffer", len(b.Bytes), err)
	}
}
