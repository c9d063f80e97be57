package dmamem

import (
	"encoding/binary"
	"strings"
	"testing"
)

// entries encodes pagemap entries.
func entries(vs ...uint64) []byte {
	b := make([]byte, 8*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint64(b[8*i:], v)
	}
	return b
}

func TestParsePagemapEntry(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want PagemapEntry
	}{
		{"present", entries(pagemapPresent | 0x1234), PagemapEntry{PFN: 0x1234, Present: true}},
		{"exclusive, soft-dirty ignored", entries(pagemapPresent | 1<<56 | 1<<55 | 0x7fffffffffffff), PagemapEntry{PFN: 0x7fffffffffffff, Present: true, Exclusive: true}},
		{"hidden pfn", entries(pagemapPresent), PagemapEntry{Present: true}},
		{"file or shared", entries(pagemapPresent | 1<<61 | 0x9), PagemapEntry{PFN: 9, Present: true, FileOrShared: true}},
		{"swapped", entries(pagemapSwapped | 0x42), PagemapEntry{PFN: 0x42, Swapped: true}},
		{"absent", entries(0), PagemapEntry{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePagemapEntry(tt.in)
			if err != nil {
				t.Fatalf("ParsePagemapEntry: %v", err)
			}
			if got != tt.want {
				t.Errorf("ParsePagemapEntry = %+v, want %+v", got, tt.want)
			}
		})
	}
	if _, err := ParsePagemapEntry(make([]byte, 7)); err == nil {
		t.Errorf("ParsePagemapEntry of 7 bytes: no error")
	}
}

func TestPhysicalRun(t *testing.T) {
	run := func(first uint64, n int) []uint64 {
		var vs []uint64
		for i := 0; i < n; i++ {
			vs = append(vs, pagemapPresent|(first+uint64(i)))
		}
		return vs
	}
	tests := []struct {
		name     string
		in       []byte
		pageSize int
		want     uint64
		wantErr  string
	}{
		{"hugepage", entries(run(0x1200, 512)...), 4096, 0x1200000, ""},
		{"single page", entries(pagemapPresent | 7), 4096, 0x7000, ""},
		{"hidden pfn", entries(pagemapPresent, pagemapPresent|1), 4096, 0, "CAP_SYS_ADMIN"},
		{"not present", entries(pagemapPresent|5, 6), 4096, 0, "not present"},
		{"gap", entries(pagemapPresent|5, pagemapPresent|7), 4096, 0, "not physically contiguous"},
		{"backwards", entries(pagemapPresent|5, pagemapPresent|4), 4096, 0, "not physically contiguous"},
		{"empty", nil, 4096, 0, "whole number"},
		{"ragged", make([]byte, 12), 4096, 0, "whole number"},
		{"bad page size", entries(pagemapPresent | 1), 3000, 0, "power of two"},
		{"overflow", entries(pagemapPresent | pagemapPFNMask), 1 << 20, 0, "overflows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PhysicalRun(tt.in, tt.pageSize)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("PhysicalRun = %#x, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("PhysicalRun = %#x, %v; want %#x", got, err, tt.want)
			}
		})
	}
}

func FuzzPhysicalRun(f *testing.F) {
	f.Add(entries(pagemapPresent|0x200, pagemapPresent|0x201))
	f.Add(entries(pagemapPresent))
	f.Fuzz(func(t *testing.T, b []byte) {
		pa, err := PhysicalRun(b, 4096)
		if err != nil {
			return
		}
		if pa == 0 || pa%4096 != 0 {
			t.Fatalf("PhysicalRun = %#x, want a nonzero page-aligned address", pa)
		}
	})
}
