package pci

// Register accessors are assembly on amd64 so that each is exactly one MOV
// of the named width, as the virtio spec requires for the common
// configuration (section 4.1.3.1). Go's compiler may merge, split or drop
// plain accesses, and sync/atomic's 32-bit store is an XCHG, which reads
// the register as well.

//go:noescape
func load8(p *uint8) uint8

//go:noescape
func load16(p *uint16) uint16

//go:noescape
func load32(p *uint32) uint32

//go:noescape
func store8(p *uint8, v uint8)

//go:noescape
func store16(p *uint16, v uint16)

//go:noescape
func store32(p *uint32, v uint32)
