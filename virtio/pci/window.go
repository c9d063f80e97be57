package pci

import (
	"unsafe"

	"github.com/govirtiofs/govirtiofs/virtio/internal/reg"
)

// window is a virtio structure inside a mapped BAR, accessed with single
// loads and stores of the register's width (package reg).
//
// An access outside the window or misaligned reads as all ones and writes
// nothing, as a PCI access that nothing claims; callers that take offsets
// from outside (ReadConfig, Notify) check them first with fits.
type window struct {
	b []byte // the structure's bytes inside the BAR mapping; immutable
}

// fits reports whether an access of width bytes at off is inside w and
// naturally aligned.
func (w window) fits(off, width uint64) bool {
	return width <= uint64(len(w.b)) && off <= uint64(len(w.b))-width && off%width == 0
}

func (w window) ptr(off uint64) unsafe.Pointer { return unsafe.Pointer(&w.b[off]) }

func (w window) read8(off uint64) uint8 {
	if !w.fits(off, 1) {
		return 0xff
	}
	return reg.Load8((*uint8)(w.ptr(off)))
}

func (w window) read16(off uint64) uint16 {
	if !w.fits(off, 2) {
		return 0xffff
	}
	return reg.Load16((*uint16)(w.ptr(off)))
}

func (w window) read32(off uint64) uint32 {
	if !w.fits(off, 4) {
		return 0xffffffff
	}
	return reg.Load32((*uint32)(w.ptr(off)))
}

func (w window) write8(off uint64, v uint8) {
	if w.fits(off, 1) {
		reg.Store8((*uint8)(w.ptr(off)), v)
	}
}

func (w window) write16(off uint64, v uint16) {
	if w.fits(off, 2) {
		reg.Store16((*uint16)(w.ptr(off)), v)
	}
}

func (w window) write32(off uint64, v uint32) {
	if w.fits(off, 4) {
		reg.Store32((*uint32)(w.ptr(off)), v)
	}
}

// write64 writes a 64-bit register as two 32-bit halves, low first
// (virtio spec 1.2 section 4.1.3.1: drivers may not assume 64-bit accesses
// work).
func (w window) write64(off uint64, v uint64) {
	w.write32(off, uint32(v))
	w.write32(off+4, uint32(v>>32))
}

// readConfig copies len(p) bytes at off into p using the widest naturally
// aligned accesses that fit, as device configuration fields must be read
// with their own width (virtio spec 1.2 section 4.1.3.1).
//
// Preconditions: [off, off+len(p)) is inside w.
func (w window) readConfig(off uint64, p []byte) {
	for i := uint64(0); i < uint64(len(p)); {
		pos, left := off+i, uint64(len(p))-i
		switch {
		case pos%4 == 0 && left >= 4:
			v := w.read32(pos)
			p[i], p[i+1], p[i+2], p[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
			i += 4
		case pos%2 == 0 && left >= 2:
			v := w.read16(pos)
			p[i], p[i+1] = byte(v), byte(v>>8)
			i += 2
		default:
			p[i] = w.read8(pos)
			i++
		}
	}
}
