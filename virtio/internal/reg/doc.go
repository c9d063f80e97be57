// Package reg reads and writes device registers (virtio-mmio windows and
// virtio-pci BAR structures mapped into this process) with single loads and
// stores of exactly the register's width.
//
// Each accessor takes a pointer into the mapping and performs one access of
// 8, 16 or 32 bits. The virtio spec requires this of the common
// configuration (section 4.1.3.1) and the MMIO register block (section
// 4.2.2): an access must not be merged with its neighbours, split into
// narrower ones, dropped, or turned into a read-modify-write.
//
// Why assembly and not plain Go or sync/atomic: the Go compiler may merge,
// split, reorder or elide plain loads and stores through a pointer, and on
// amd64 sync/atomic's stores compile to XCHG, which also reads the register.
// Reading a write-only register (QueueNotify, the MMIO QueueSel and friends)
// is a guest error QEMU logs, and for a register with read side effects it
// would be wrong. So on amd64 each accessor is one MOV of the named width,
// out of line in assembly. On other architectures sync/atomic's 32-bit load
// and store are single exact-width accesses (LDAR/STLR on arm64) and the
// narrow accessors are plain accesses kept out of line so the compiler
// cannot merge or drop them; those architectures are untested.
//
// Preconditions: every pointer is non-nil, naturally aligned for its width
// and points into memory that stays mapped for the duration of the call.
// The callers (the transports' window types) check bounds and alignment and
// keep the mapping alive; this package checks nothing.
//
// Lock order: none; the package has no state.
package reg
