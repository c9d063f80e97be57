// Package suite holds the VFS test suites of govirtiofs, written once and run both on the host
// (the root package's tests, over vfstest's in-memory filesystem and over the real virtiofsd with
// Dial) and in a guest (qemu-tests/guest/vfs, over PCI and virtio-mmio with Open).
//
// Each suite takes the *govirtiofs.FS under test and a base directory inside the share, so that
// one share can hold several runs (one per cache mode in a guest) side by side. What a suite
// compares against is available on each side:
//
//   - Compare runs the os-comparison cases on the FS and checks what they record against a
//     [Reference]: the same cases run through package os on a directory ([RecordReference]). On
//     the host the reference is recorded alongside; for a guest the host records it before boot, on
//     the filesystem that backs the share, and hands it over as a file in the share ([Reference]
//     is JSON), so both sides see the same filesystem's semantics (extended attributes included).
//   - IOFS builds a tree through the FS and runs fstest.TestFS on it; [WriteTree] builds the same
//     tree through package os, so the host can prepare one in the share and [CheckTree] runs
//     fstest.TestFS on it from the guest.
//   - Locks checks its flock expectations through flock(2) on a local temporary directory.
//   - Submount expects a host mount point (a tmpfs, say) prepared inside the share and exported
//     with virtiofsd -o announce_submounts.
//
// Suites report through *testing.T; helpers that record or build return errors instead.
//
// Lock order: the package has no locks.
package suite
