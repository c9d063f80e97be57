package reg

// Implemented in access_amd64.s; see the package doc for why.

// Load8 reads the 8-bit register at p with one MOVB.
//
//go:noescape
func Load8(p *uint8) uint8

// Load16 reads the 16-bit register at p with one MOVW.
//
//go:noescape
func Load16(p *uint16) uint16

// Load32 reads the 32-bit register at p with one MOVL.
//
//go:noescape
func Load32(p *uint32) uint32

// Store8 writes v to the 8-bit register at p with one MOVB; it never reads
// the register.
//
//go:noescape
func Store8(p *uint8, v uint8)

// Store16 writes v to the 16-bit register at p with one MOVW; it never
// reads the register.
//
//go:noescape
func Store16(p *uint16, v uint16)

// Store32 writes v to the 32-bit register at p with one MOVL; it never
// reads the register (unlike the XCHG of sync/atomic.StoreUint32).
//
//go:noescape
func Store32(p *uint32, v uint32)
