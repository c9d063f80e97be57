//go:build !amd64

package pci

// Elsewhere the accessors are kept out of line so that the compiler cannot
// merge or drop them; each is one access of the named width. These
// architectures are untested.

//go:noinline
func load8(p *uint8) uint8 { return *p }

//go:noinline
func load16(p *uint16) uint16 { return *p }

//go:noinline
func load32(p *uint32) uint32 { return *p }

//go:noinline
func store8(p *uint8, v uint8) { *p = v }

//go:noinline
func store16(p *uint16, v uint16) { *p = v }

//go:noinline
func store32(p *uint32, v uint32) { *p = v }
