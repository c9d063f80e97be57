package pci

import (
	"bytes"
	"testing"
)

func TestWindowAccess(t *testing.T) {
	w := window{b: make([]byte, 16)}
	w.write32(0, 0x04030201)
	w.write16(4, 0x0605)
	w.write8(6, 0x07)
	w.write64(8, 0x100f0e0d0c0b0a09)
	want := []byte{1, 2, 3, 4, 5, 6, 7, 0, 9, 10, 11, 12, 13, 14, 15, 16}
	if !bytes.Equal(w.b, want) {
		t.Fatalf("after writes: % x, want % x", w.b, want)
	}
	tests := []struct {
		name string
		got  uint64
		want uint64
	}{
		{"read32", uint64(w.read32(8)), 0x0c0b0a09},
		{"read16", uint64(w.read16(2)), 0x0403},
		{"read8", uint64(w.read8(15)), 0x10},
		{"read32 past end", uint64(w.read32(14)), 0xffffffff},
		{"read32 misaligned", uint64(w.read32(1)), 0xffffffff},
		{"read16 past end", uint64(w.read16(16)), 0xffff},
		{"read8 huge offset", uint64(w.read8(^uint64(0))), 0xff},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
	w.write32(13, 0xdeadbeef) // misaligned: dropped
	w.write16(15, 0xdead)     // past the end: dropped
	if !bytes.Equal(w.b, want) {
		t.Errorf("dropped writes changed the window: % x", w.b)
	}
}

func TestReadConfigWidths(t *testing.T) {
	w := window{b: make([]byte, 48)}
	for i := range w.b {
		w.b[i] = byte(i)
	}
	for _, r := range []struct{ off, n int }{{0, 48}, {1, 7}, {3, 1}, {2, 6}, {36, 4}, {47, 1}} {
		p := make([]byte, r.n)
		w.readConfig(uint64(r.off), p)
		if !bytes.Equal(p, w.b[r.off:r.off+r.n]) {
			t.Errorf("readConfig(%d, %d bytes) = % x, want % x", r.off, r.n, p, w.b[r.off:r.off+r.n])
		}
	}
}
