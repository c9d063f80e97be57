package dmamem

import "unsafe"

// uintptrOf is the virtual address of b's first byte.
func uintptrOf(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }
