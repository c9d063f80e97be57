package dmamem

import (
	"encoding/binary"
	"fmt"
)

// /proc/pid/pagemap entry bits (Linux Documentation/admin-guide/mm/pagemap.rst).
const (
	pagemapEntrySize = 8
	pagemapPFNMask   = 1<<55 - 1 // bits 0-54: page frame number, if present
	pagemapExclusive = 1 << 56   // the page is mapped by this process only
	pagemapFileShare = 1 << 61   // a file's page or shared anonymous memory
	pagemapSwapped   = 1 << 62
	pagemapPresent   = 1 << 63
)

// PagemapEntry is one decoded /proc/pid/pagemap entry.
type PagemapEntry struct {
	PFN          uint64 // 0 without CAP_SYS_ADMIN
	Present      bool
	Swapped      bool
	Exclusive    bool // mapped by this process only (not the zero page, not shared)
	FileOrShared bool // a file's page or shared anonymous memory
}

// ParsePagemapEntry decodes the 64-bit entry at the start of b (native byte
// order; this package is little-endian only, as its hosts are).
//
// Errors: b shorter than 8 bytes.
func ParsePagemapEntry(b []byte) (PagemapEntry, error) {
	if len(b) < pagemapEntrySize {
		return PagemapEntry{}, fmt.Errorf("dmamem: pagemap entry is %d bytes, want %d", len(b), pagemapEntrySize)
	}
	v := binary.LittleEndian.Uint64(b)
	return PagemapEntry{
		PFN:          v & pagemapPFNMask,
		Present:      v&pagemapPresent != 0,
		Swapped:      v&pagemapSwapped != 0,
		Exclusive:    v&pagemapExclusive != 0,
		FileOrShared: v&pagemapFileShare != 0,
	}, nil
}

// PhysicalRun checks that the pagemap entries in b (one per base page of
// pageSize bytes) describe present, physically contiguous pages and returns
// the physical address of the first byte.
//
// Errors: a short or ragged b, a page that is not present (the memory was
// not populated or locked), a zero PFN (the kernel hides PFNs from callers
// without CAP_SYS_ADMIN), or a break in contiguity.
func PhysicalRun(b []byte, pageSize int) (uint64, error) {
	if pageSize <= 0 || pageSize&(pageSize-1) != 0 {
		return 0, fmt.Errorf("dmamem: page size %d is not a power of two", pageSize)
	}
	if len(b) == 0 || len(b)%pagemapEntrySize != 0 {
		return 0, fmt.Errorf("dmamem: %d bytes of pagemap is not a whole number of entries", len(b))
	}
	var first uint64
	for i := 0; i < len(b)/pagemapEntrySize; i++ {
		e, err := ParsePagemapEntry(b[i*pagemapEntrySize:])
		if err != nil {
			return 0, err
		}
		switch {
		case !e.Present:
			return 0, fmt.Errorf("dmamem: page %d of the run is not present in RAM (swapped: %v)", i, e.Swapped)
		case e.PFN == 0:
			return 0, fmt.Errorf("dmamem: pagemap shows PFN 0 for page %d: reading physical addresses needs CAP_SYS_ADMIN (run as root)", i)
		case i == 0:
			first = e.PFN
		case e.PFN != first+uint64(i):
			return 0, fmt.Errorf("dmamem: page %d of the run is at PFN %#x, want %#x: not physically contiguous", i, e.PFN, first+uint64(i))
		}
	}
	if first > (^uint64(0))/uint64(pageSize) {
		return 0, fmt.Errorf("dmamem: PFN %#x overflows a physical address", first)
	}
	return first * uint64(pageSize), nil
}
