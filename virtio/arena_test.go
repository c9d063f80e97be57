package virtio

import (
	"errors"
	"sync"
	"syscall"
	"testing"
)

func TestArenaAlloc(t *testing.T) {
	const base = 0x1000_0003 // deliberately unaligned device base
	tests := []struct {
		name        string
		size, align int
		wantErr     error
	}{
		{"byte", 1, 1, nil},
		{"align zero means one", 7, 0, nil},
		{"page aligned", 100, 4096, nil},
		{"whole", 1 << 16, 1, nil},
		{"too big", 1<<16 + 1, 1, syscall.ENOMEM},
		{"zero size", 0, 1, syscall.EINVAL},
		{"negative size", -1, 1, syscall.EINVAL},
		{"align not power of two", 8, 3, syscall.EINVAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := make([]byte, 1<<16)
			for i := range mem {
				mem[i] = 0xAA
			}
			a := NewArena(mem, base)
			b, err := a.Alloc(tt.size, tt.align)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Alloc(%d, %d) error = %v, want %v", tt.size, tt.align, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Alloc(%d, %d): %v", tt.size, tt.align, err)
			}
			if len(b.Bytes) != tt.size {
				t.Errorf("len = %d, want %d", len(b.Bytes), tt.size)
			}
			if tt.align > 1 && b.Addr%uint64(tt.align) != 0 {
				t.Errorf("addr %#x not aligned to %d", b.Addr, tt.align)
			}
			for i, c := range b.Bytes {
				if c != 0 {
					t.Fatalf("byte %d = %#x, want zeroed", i, c)
				}
			}
			if got, ok := a.Contains(b.Addr, len(b.Bytes)); !ok || &got[0] != &b.Bytes[0] {
				t.Errorf("Contains(%#x) does not map back to the buffer", b.Addr)
			}
		})
	}
}

func TestArenaFreeCoalesces(t *testing.T) {
	a := NewArena(make([]byte, 4096), 0x2000)
	var bufs []Buffer
	for {
		b, err := a.Alloc(100, 16)
		if err != nil {
			if !errors.Is(err, syscall.ENOMEM) {
				t.Fatalf("Alloc: %v, want ENOMEM when full", err)
			}
			break
		}
		bufs = append(bufs, b)
	}
	if len(bufs) < 30 {
		t.Fatalf("got %d buffers of 100 bytes from 4096, want at least 30", len(bufs))
	}
	// Free in an order that needs merging on both sides.
	for i := 0; i < len(bufs); i += 2 {
		a.Free(bufs[i])
	}
	for i := 1; i < len(bufs); i += 2 {
		a.Free(bufs[i])
	}
	a.Free(bufs[0]) // double free is ignored
	a.Free(Buffer{Addr: 0x1})
	if b, err := a.Alloc(4096, 1); err != nil || b.Addr != 0x2000 {
		t.Fatalf("Alloc(whole) after freeing all = %#x, %v; want 0x2000, nil", b.Addr, err)
	}
}

func TestArenaConcurrent(t *testing.T) {
	a := NewArena(make([]byte, 1<<20), 0)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				b, err := a.Alloc(64+g*8+i%32, 8)
				if err != nil {
					t.Errorf("Alloc: %v", err)
					return
				}
				b.Bytes[0] = byte(g)
				if b.Bytes[0] != byte(g) {
					t.Errorf("buffer shared between goroutines")
				}
				a.Free(b)
			}
		}()
	}
	wg.Wait()
	if b, err := a.Alloc(1<<20, 1); err != nil || b.Addr != 0 {
		t.Fatalf("Alloc(whole) after concurrent use = %#x, %v; want 0, nil", b.Addr, err)
	}
}
