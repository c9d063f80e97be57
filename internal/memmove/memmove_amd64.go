package memmove

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// useLoop is whether Copy takes its own loop for large copies: only where
// the runtime's memmove would use REP MOVSQ for them, on a CPU with
// neither AVX nor ERMS (QEMU's qemu64 model). With AVX the runtime's
// vector loop, with ERMS its REP MOVSB, is faster natively than
// copyBlocks.
var useLoop = !cpu.X86.HasAVX && !cpu.X86.HasERMS

// minLoop is the smallest copy that takes copyBlocks: the runtime's
// memmove moves up to 2 KiB with SSE2 moves of its own.
const minLoop = 2049

// blockSize is how many bytes one pass of copyBlocks moves.
const blockSize = 128

// copyBlocks copies n bytes, a multiple of blockSize, from src to dst
// with 64-bit loads and stores, 128 bytes per pass.
//
// Preconditions: the buffers do not overlap; n%blockSize == 0.
//
//go:noescape
func copyBlocks(dst, src unsafe.Pointer, n uintptr)
