// Package vfstest provides FS, an in-memory vfs.FilesystemImpl with real
// semantics (a tree of inodes with symlinks, hard links, extended
// attributes, locks and submount points, and configurable entry validity)
// for testing vfs and the layers above it, in the pattern of
// testing/fstest. It checks the vfs reference contract: every inode
// reference it hands out in an Entry must come back through exactly one
// Release, and Violations lists any breach.
//
// Lock order: FS.mu is the only lock; it is never held while calling
// back into vfs.
package vfstest
