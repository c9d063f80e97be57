package reg

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unsafe"
)

// TestAccessWidth checks on ordinary memory that each accessor touches
// exactly its own bytes, little-endian, and nothing around them.
func TestAccessWidth(t *testing.T) {
	tests := []struct {
		name  string
		width int
		off   int
		value uint32
	}{
		{"8 at 0", 1, 0, 0xa5},
		{"8 at 7", 1, 7, 0x5a},
		{"16 at 0", 2, 0, 0xbeef},
		{"16 at 6", 2, 6, 0x1234},
		{"32 at 0", 4, 0, 0xdeadbeef},
		{"32 at 4", 4, 4, 0x01020304},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A uint64 backing array is 8-aligned, so every offset in
			// the table is naturally aligned for its width.
			var backing [2]uint64
			mem := unsafe.Slice((*byte)(unsafe.Pointer(&backing[0])), 16)
			for i := range mem {
				mem[i] = 0xcc
			}
			p := unsafe.Pointer(&mem[tc.off])
			want := bytes.Repeat([]byte{0xcc}, 16)
			var got uint32
			switch tc.width {
			case 1:
				Store8((*uint8)(p), uint8(tc.value))
				got = uint32(Load8((*uint8)(p)))
				want[tc.off] = uint8(tc.value)
			case 2:
				Store16((*uint16)(p), uint16(tc.value))
				got = uint32(Load16((*uint16)(p)))
				binary.LittleEndian.PutUint16(want[tc.off:], uint16(tc.value))
			case 4:
				Store32((*uint32)(p), tc.value)
				got = Load32((*uint32)(p))
				binary.LittleEndian.PutUint32(want[tc.off:], tc.value)
			}
			if got != tc.value {
				t.Errorf("load after store = %#x, want %#x", got, tc.value)
			}
			if !bytes.Equal(mem, want) {
				t.Errorf("memory = % x, want % x", mem, want)
			}
		})
	}
}
