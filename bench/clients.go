package bench

import (
	"context"
	"fmt"

	"github.com/govirtiofs/govirtiofs"
)

// GovirtiofsClient is a client over govirtiofs: open returns a new FS (govirtiofs.Open in a guest,
// govirtiofs.Dial on the host). Cold means a fresh FS: every Start opens one, and the FS is closed
// when the measurement ends, so nothing (names, attributes, data) is cached by the client at the
// start; the host's page cache stays warm.
func GovirtiofsClient(name string, open func(ctx context.Context) (*govirtiofs.FS, error)) Client {
	return Client{Name: name, Start: func(ctx context.Context) (FS, func() error, error) {
		fsys, err := open(ctx)
		if err != nil {
			return nil, nil, err
		}
		return Govirtiofs{FS: fsys}, fsys.Close, nil
	}}
}

// GovirtiofsShared is a client over one govirtiofs FS that lives across measurements, opened
// and closed by the caller: it is how the guest measures govirtiofs, each cache mode with an FS
// of its own that stays open for the whole run (a bring-up costs a device reset and FUSE_INIT,
// which are no part of any workload). Cold then means a file set (SetDir) that this FS has never
// looked up or read: no cached names, attributes or data for it.
// rt, if not nil, is the collector fsys reports its GETATTR round trips to (its
// Options.OnRoundTrip is rt.Observe).
func GovirtiofsShared(name string, fsys *govirtiofs.FS, rt *RoundTrips) Client {
	return Client{Name: name, Start: func(context.Context) (FS, func() error, error) {
		if fsys == nil {
			return nil, nil, fmt.Errorf("bench: %s: no FS", name)
		}
		return Govirtiofs{FS: fsys, RT: rt}, func() error { return nil }, nil
	}}
}

// HostOSClient is package os on the shared directory itself (host-os). It has no cache of its own
// apart from the host kernel's page and dentry caches, which every other client reads through too
// and which the benchmark never drops: its cold figures are warm-host-cache figures.
func HostOSClient(dir string) Client {
	return Client{Name: ClientHostOS, Start: func(context.Context) (FS, func() error, error) {
		return OS{Root: dir}, func() error { return nil }, nil
	}}
}
