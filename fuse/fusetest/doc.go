// Package fusetest provides a scripted fake fuse.Sender for unit tests of
// package fuse and of the layers above it, in the httptest / fstest
// pattern: a Server answers each request with the handler registered for
// its opcode, built from the reply encoders in this package, and records
// what was sent on the hiprio queue.
//
// The encoders here are written independently of package fuse's (as a
// server would be), so round trips through a Server cross-check the
// client's decoders.
//
// Lock order: Server.mu is a leaf; handlers run without it held.
package fusetest
