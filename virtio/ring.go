package virtio

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"
)

// Split virtqueue layout (virtio spec 1.2 section 2.7). All fields are
// little-endian; this package runs on little-endian machines only (amd64,
// arm64), which NewQueue checks.
const (
	// DescSize is the size of one descriptor: addr le64, len le32,
	// flags le16, next le16 (section 2.7.5).
	DescSize = 16

	DescFlagNext     = 1 // VIRTQ_DESC_F_NEXT: the chain continues at next
	DescFlagWrite    = 2 // VIRTQ_DESC_F_WRITE: device-writable
	DescFlagIndirect = 4 // VIRTQ_DESC_F_INDIRECT: addr is a table of descriptors

	// AvailFlagNoInterrupt is VIRTQ_AVAIL_F_NO_INTERRUPT (section 2.7.7).
	AvailFlagNoInterrupt = 1
	// UsedFlagNoNotify is VIRTQ_USED_F_NO_NOTIFY (section 2.7.10).
	UsedFlagNoNotify = 1

	// UsedElemSize is the size of one used ring entry: id le32, len le32.
	UsedElemSize = 8

	// Ring alignments (section 2.7, table "Virtqueue Part Alignment"). The
	// driver area gets 4 instead of 2 so that flags and idx can be read
	// and written as one aligned 32-bit word with sync/atomic.
	DescAlign  = 16
	AvailAlign = 4
	UsedAlign  = 4
)

// DescTableBytes, AvailRingBytes and UsedRingBytes are the sizes of the three
// parts of a queue of n descriptors. The driver and device areas carry two
// bytes of padding after used_event / avail_event so that those fields,
// too, can be accessed as aligned 32-bit words.
func DescTableBytes(n int) int { return DescSize * n }

// AvailRingBytes: flags, idx, ring[n], used_event, padding.
func AvailRingBytes(n int) int { return 4 + 2*n + 4 }

// UsedRingBytes: flags, idx, ring[n], avail_event, padding.
func UsedRingBytes(n int) int { return 4 + UsedElemSize*n + 4 }

// AvailEventOffset is the offset of avail_event in the device area, and
// UsedEventOffset the offset of used_event in the driver area.
func AvailEventOffset(n int) int { return 4 + UsedElemSize*n }

// UsedEventOffset is the offset of used_event in the driver area.
func UsedEventOffset(n int) int { return 4 + 2*n }

// Desc is one descriptor, decoded.
type Desc struct {
	Addr  uint64
	Len   uint32
	Flags uint16
	Next  uint16
}

// PutDesc encodes d at b[0:DescSize].
func PutDesc(b []byte, d Desc) {
	binary.LittleEndian.PutUint64(b[0:], d.Addr)
	binary.LittleEndian.PutUint32(b[8:], d.Len)
	binary.LittleEndian.PutUint16(b[12:], d.Flags)
	binary.LittleEndian.PutUint16(b[14:], d.Next)
}

// GetDesc decodes the descriptor at b[0:DescSize].
func GetDesc(b []byte) Desc {
	return Desc{
		Addr:  binary.LittleEndian.Uint64(b[0:]),
		Len:   binary.LittleEndian.Uint32(b[8:]),
		Flags: binary.LittleEndian.Uint16(b[12:]),
		Next:  binary.LittleEndian.Uint16(b[14:]),
	}
}

// Word is the aligned little-endian 32-bit word at b[off:off+4], accessed
// atomically. A ring's flags and idx share the word at offset 0 (flags in
// the low half, idx in the high half); used_event and avail_event are the
// low half of their words. Both sides of a ring (this package and
// virtiotest) go through Word so that the Go memory model, and the race
// detector, see the index publication as synchronisation.
//
// Preconditions: off is a multiple of 4 and &b[off] is 4-byte aligned.
func Word(b []byte, off int) *atomic.Uint32 {
	w := b[off : off+4] // bounds check without a racy load
	return (*atomic.Uint32)(unsafe.Pointer(&w[0]))
}

// NeedEvent is vring_need_event (section 2.7.10): whether moving an index
// from old to new crossed event, the index the other side asked to be
// told about.
func NeedEvent(event, new, old uint16) bool {
	return new-event-1 < new-old
}

// littleEndian reports whether this machine stores integers little-endian,
// which Word's split of a 32-bit word into two 16-bit fields relies on.
func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}
