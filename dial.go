package govirtiofs

import (
	"context"
	"fmt"

	"github.com/govirtiofs/govirtiofs/driver"
	"github.com/govirtiofs/govirtiofs/virtio/vhostuser"
)

// Dial connects to a vhost-user virtio-fs back end (virtiofsd) listening on
// socketPath and returns its share, for use on a host without a VM: the
// vhost-user front end with shared memfd memory, the virtio-fs device over
// it, FUSE_INIT, the client filesystem and the dentry cache. virtiofsd
// serves one front end and exits when it is closed, so each Dial needs a
// virtiofsd of its own. The FS must be closed.
//
// Errors: the connection's (ECONNREFUSED is retried until ctx ends),
// negotiation errors, FUSE_INIT's (a server speaking FUSE older than 7.31),
// an error wrapping ENODEV for Options.DAX on a device without a DAX
// window, invalid Options.
func Dial(ctx context.Context, socketPath string, opts Options) (*FS, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	t, err := vhostuser.Dial(ctx, socketPath, vhostuser.Options{MemorySize: opts.MemorySize})
	if err != nil {
		return nil, fmt.Errorf("govirtiofs: dial %s: %w", socketPath, err)
	}
	dev, err := driver.New(ctx, t, driver.Options{
		RequestQueues:  opts.RequestQueues,
		QueueSize:      opts.QueueSize,
		Logger:         opts.logger(),
		RequestTimeout: opts.requestTimeout(),
		OnRoundTrip:    opts.OnRoundTrip,
	})
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("govirtiofs: %s: %w", socketPath, err)
	}
	return mount(ctx, dev, &opts, nil)
}
