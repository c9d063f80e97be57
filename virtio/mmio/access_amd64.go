package mmio

// The register accessors are written in assembly on amd64 so that each is
// exactly one MOV of the named width. sync/atomic's 32-bit store compiles to
// XCHG, which also reads the register (a read of a write-only register that
// QEMU logs as a guest error), and plain Go stores may be merged or dropped
// by the compiler.

//go:noescape
func load32(p *uint32) uint32

//go:noescape
func store32(p *uint32, v uint32)

//go:noescape
func load16(p *uint16) uint16

//go:noescape
func load8(p *uint8) uint8
