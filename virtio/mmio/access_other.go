//go:build !amd64

package mmio

import "sync/atomic"

// On other architectures sync/atomic's 32-bit load and store are single
// exact-width accesses (LDAR/STLR on arm64). The narrow loads are kept out
// of line so the compiler cannot merge or drop them.

func load32(p *uint32) uint32 { return atomic.LoadUint32(p) }

func store32(p *uint32, v uint32) { atomic.StoreUint32(p, v) }

//go:noinline
func load16(p *uint16) uint16 { return *p }

//go:noinline
func load8(p *uint8) uint8 { return *p }
