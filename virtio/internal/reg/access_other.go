//go:build !amd64

package reg

import "sync/atomic"

// See the package doc: sync/atomic's 32-bit load and store are single
// exact-width accesses here (LDAR/STLR on arm64), and the narrow accessors
// are kept out of line so that the compiler cannot merge or drop them.

// Load8 reads the 8-bit register at p with one byte load.
//
//go:noinline
func Load8(p *uint8) uint8 { return *p }

// Load16 reads the 16-bit register at p with one halfword load.
//
//go:noinline
func Load16(p *uint16) uint16 { return *p }

// Load32 reads the 32-bit register at p with one word load.
func Load32(p *uint32) uint32 { return atomic.LoadUint32(p) }

// Store8 writes v to the 8-bit register at p with one byte store.
//
//go:noinline
func Store8(p *uint8, v uint8) { *p = v }

// Store16 writes v to the 16-bit register at p with one halfword store.
//
//go:noinline
func Store16(p *uint16, v uint16) { *p = v }

// Store32 writes v to the 32-bit register at p with one word store.
func Store32(p *uint32, v uint32) { atomic.StoreUint32(p, v) }
