package dmamem

import (
	"os"
	"testing"
)

// TestNewHugepages maps real hugepages (the test runs as root, as the
// guest does) and checks each buffer's device address against the kernel's
// own translation of its virtual address.
func TestNewHugepages(t *testing.T) {
	before, err := readInt(nrHugepagesPath)
	if err != nil {
		t.Fatalf("no 2 MiB hugepage pool: %v", err)
	}
	m, err := New(2)
	if err != nil {
		t.Fatalf("New(2): %v", err)
	}
	if got := len(m.Pages()); got != 2 {
		t.Fatalf("len(Pages()) = %d, want 2", got)
	}
	f, err := os.Open(pagemapPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, size := range []int{100, 4096, HugePageSize / 2, HugePageSize} {
		b, err := m.Alloc(size, 64)
		if err != nil {
			t.Fatalf("Alloc(%d): %v", size, err)
		}
		// The last byte too must be where the device expects it.
		for _, off := range []int{0, size - 1} {
			va := uintptrOf(b.Bytes[off:])
			e := make([]byte, 8)
			if _, err := f.ReadAt(e, int64(va/4096)*8); err != nil {
				t.Fatal(err)
			}
			pe, err := ParsePagemapEntry(e)
			if err != nil {
				t.Fatal(err)
			}
			got := pe.PFN*4096 + va%4096
			if want := b.Addr + uint64(off); got != want {
				t.Errorf("Alloc(%d): byte %d is at physical %#x, Buffer says %#x", size, off, got, want)
			}
		}
		b.Bytes[size-1] = 0xa5
		m.Free(b)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if after, _ := readInt(nrHugepagesPath); after != before {
		t.Errorf("nr_hugepages after Close = %d, want %d as before New", after, before)
	}
}

func TestNewRejectsZeroPages(t *testing.T) {
	if _, err := New(0); err == nil {
		t.Errorf("New(0): no error")
	}
}
