package dmamem

import (
	"errors"
	"sync"
	"syscall"
	"testing"

	"github.com/govirtiofs/govirtiofs/virtio"
)

// fakePages is pages of ordinary memory at made-up, non-adjacent physical
// addresses, as hugepages come.
func fakePages(t *testing.T, addrs ...uint64) *Memory {
	t.Helper()
	var ps []Page
	for _, a := range addrs {
		ps = append(ps, Page{Bytes: make([]byte, HugePageSize), Addr: a})
	}
	m, err := newMemory(ps)
	if err != nil {
		t.Fatalf("newMemory: %v", err)
	}
	return m
}

func TestNewMemoryRejectsBadPages(t *testing.T) {
	tests := []struct {
		name  string
		pages []Page
	}{
		{"short page", []Page{{Bytes: make([]byte, 4096), Addr: 0x200000}}},
		{"unaligned", []Page{{Bytes: make([]byte, HugePageSize), Addr: 0x201000}}},
		{"duplicate", []Page{{Bytes: make([]byte, HugePageSize), Addr: 0x200000}, {Bytes: make([]byte, HugePageSize), Addr: 0x200000}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := newMemory(tt.pages); err == nil {
				t.Errorf("newMemory accepted %s", tt.name)
			}
		})
	}
}

func TestAllocStaysInsidePages(t *testing.T) {
	m := fakePages(t, 0x40000000, 0x10200000, 0x7fe00000)
	var bufs []virtio.Buffer
	// Ring-like allocations that fill pages unevenly.
	sizes := []struct{ size, align int }{{16 * 128, 16}, {4 + 2*128 + 2, 2}, {4 + 8*128 + 2, 4}, {HugePageSize - 4096, 4096}, {HugePageSize, 4096}, {1 << 20, 1 << 20}}
	for round := 0; round < 2; round++ {
		for _, s := range sizes {
			b, err := m.Alloc(s.size, s.align)
			if err != nil {
				t.Fatalf("Alloc(%d, %d): %v", s.size, s.align, err)
			}
			if len(b.Bytes) != s.size || b.Addr%uint64(s.align) != 0 {
				t.Fatalf("Alloc(%d, %d) = %d bytes at %#x", s.size, s.align, len(b.Bytes), b.Addr)
			}
			page := b.Addr &^ (HugePageSize - 1)
			if b.Addr+uint64(s.size) > page+HugePageSize {
				t.Fatalf("Alloc(%d, %d) at %#x crosses the page at %#x", s.size, s.align, b.Addr, page)
			}
			if _, ok := m.byAddr[page]; !ok {
				t.Fatalf("Alloc(%d, %d) at %#x is in no page", s.size, s.align, b.Addr)
			}
			bufs = append(bufs, b)
		}
		for _, b := range bufs {
			m.Free(b)
		}
		bufs = bufs[:0]
	}
}

func TestAllocErrors(t *testing.T) {
	m := fakePages(t, 0x200000)
	tests := []struct {
		name        string
		size, align int
		want        error
	}{
		{"zero", 0, 1, syscall.EINVAL},
		{"over MaxAlloc", HugePageSize + 1, 1, syscall.EINVAL},
		{"bad align", 64, 3, syscall.EINVAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := m.Alloc(tt.size, tt.align); !errors.Is(err, tt.want) {
				t.Errorf("Alloc(%d, %d) = %v, want %v", tt.size, tt.align, err, tt.want)
			}
		})
	}
	full, err := m.Alloc(HugePageSize, 1)
	if err != nil {
		t.Fatalf("Alloc of a whole page: %v", err)
	}
	if _, err := m.Alloc(1, 1); !errors.Is(err, syscall.ENOMEM) {
		t.Errorf("Alloc from a full memory = %v, want ENOMEM", err)
	}
	m.Free(virtio.Buffer{Addr: 0x900000}) // not ours: ignored
	m.Free(full)
	if _, err := m.Alloc(HugePageSize, 1); err != nil {
		t.Errorf("Alloc after Free: %v", err)
	}
	m.Close()
	if _, err := m.Alloc(1, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Alloc after Close = %v, want ErrClosed", err)
	}
}

func TestAllocConcurrent(t *testing.T) {
	m := fakePages(t, 0x200000, 0x600000)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				b, err := m.Alloc(4096, 4096)
				if err != nil {
					t.Errorf("Alloc: %v", err)
					return
				}
				b.Bytes[0] = byte(g)
				m.Free(b)
			}
		}()
	}
	wg.Wait()
}
