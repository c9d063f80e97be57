//go:build !amd64

package memmove

import "unsafe"

// Elsewhere every copy takes the builtin copy.
const (
	useLoop   = false
	blockSize = 1
	minLoop   = 0
)

func copyBlocks(dst, src unsafe.Pointer, n uintptr) {
	copy(unsafe.Slice((*byte)(dst), n), unsafe.Slice((*byte)(src), n))
}
