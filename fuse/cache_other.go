//go:build !linux

package fuse

// totalMemory returns 0: the machine's memory is not known here.
func totalMemory() int64 { return 0 }
