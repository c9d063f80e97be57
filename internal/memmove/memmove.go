package memmove

import "unsafe"

// Copy copies min(len(dst), len(src)) bytes from src to dst, as the
// builtin copy, and returns that count. Overlapping buffers are allowed
// (they take the builtin copy).
func Copy(dst, src []byte) int {
	n := min(len(dst), len(src))
	if !useLoop || n < minLoop || overlap(dst[:n], src[:n]) {
		return copy(dst, src)
	}
	copyLoop(dst[:n], src[:n])
	return n
}

// copyLoop copies src into dst, of the same length, with copyBlocks and
// the builtin copy for the tail.
//
// Preconditions: len(dst) == len(src); the buffers do not overlap.
func copyLoop(dst, src []byte) {
	n := len(dst)
	bulk := n &^ (blockSize - 1)
	if bulk > 0 {
		copyBlocks(unsafe.Pointer(unsafe.SliceData(dst)), unsafe.Pointer(unsafe.SliceData(src)), uintptr(bulk))
	}
	if bulk < n {
		copy(dst[bulk:], src[bulk:])
	}
}

// overlap reports whether a and b share any byte.
func overlap(a, b []byte) bool {
	pa := uintptr(unsafe.Pointer(unsafe.SliceData(a)))
	pb := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return pa < pb+uintptr(len(b)) && pb < pa+uintptr(len(a))
}
