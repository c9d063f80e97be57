// Package memmove copies bytes between non-overlapping buffers on the data
// path: callers' buffers, DMA buffers and page-cache pages. The driver's
// gather and scatter and the FUSE client's page cache and dirty pages call
// Copy.
//
// The guest runs under QEMU's TCG on its default CPU model (qemu64: SSE2,
// no AVX, no ERMS). For copies over 2 KiB the Go runtime's memmove then
// uses REP MOVSQ, which TCG emulates slowly. On such a CPU Copy moves
// large buffers with an unrolled loop of 64-bit loads and stores, which
// TCG translates into straight-line guest memory accesses: 1.7 times the
// runtime's speed there for 4 KiB to 1 MiB. Elsewhere (AVX or ERMS, any
// other architecture), for small copies and for overlapping buffers, Copy
// is the builtin copy.
//
// Copy takes no locks and keeps no state.
package memmove
