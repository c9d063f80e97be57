package govirtiofs

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/govirtiofs/govirtiofs/driver"
	"github.com/govirtiofs/govirtiofs/fuse"
	"github.com/govirtiofs/govirtiofs/vfs"
)

// errNoDAXWindow is returned for Options.DAX other than DAXNever on a device
// without a DAX window (no stock QEMU has one).
var errNoDAXWindow = errors.New("govirtiofs: DAX requested but the device has no DAX window (shared memory region 0)")

// errDAXUnsupported is returned for Options.DAX other than DAXNever on a
// device that has a window: mapping files through it is not in this
// version.
var errDAXUnsupported = errors.New("govirtiofs: DAX requested: the device has a DAX window, but this version does not map files through it")

// checkDAX rejects a DAX mode the device cannot serve.
func checkDAX(opts *Options, dev *driver.Device) error {
	if opts.DAX == DAXNever {
		return nil
	}
	if dev.Window() == nil {
		return fmt.Errorf("%w: %w", errNoDAXWindow, syscall.ENODEV)
	}
	return fmt.Errorf("%w: %w", errDAXUnsupported, syscall.ENOTSUP)
}

// fuseCache maps the public cache mode to the FUSE client's.
func fuseCache(m CacheMode) fuse.CacheMode {
	switch m {
	case CacheNone:
		return fuse.CacheNone
	case CacheAlways:
		return fuse.CacheAlways
	}
	return fuse.CacheAuto
}

// mount starts the FUSE session on a running device and puts vfs on top
// (Linux fuse_fill_super): FUSE_INIT, the client filesystem, the dentry
// cache. On success the FS owns dev, and release (if non-nil) runs after the
// device is closed; on failure mount closes dev and runs release itself.
func mount(ctx context.Context, dev *driver.Device, opts *Options, release func() error) (_ *FS, err error) {
	defer func() {
		if err != nil {
			dev.Close()
			if release != nil {
				release()
			}
		}
	}()
	if err := checkDAX(opts, dev); err != nil {
		return nil, err
	}
	log := opts.logger()
	conn := fuse.NewConn(dev, fuse.ConnOptions{
		Creds:          fuse.Creds{UID: opts.UID, GID: opts.GID},
		Logger:         log,
		WritebackCache: opts.Writeback,
	})
	if err := conn.Init(ctx); err != nil {
		return nil, fmt.Errorf("govirtiofs: FUSE_INIT: %w", err)
	}
	fsys, err := fuse.NewFilesystem(conn, fuse.FSOptions{
		Cache:         fuseCache(opts.Cache),
		Writeback:     opts.Writeback,
		PageCacheSize: opts.PageCacheSize,
		Logger:        log,
	})
	if err != nil {
		conn.Destroy(ctx)
		return nil, fmt.Errorf("govirtiofs: %w", err)
	}
	v := vfs.New(fsys, fsys.Root(), vfs.Options{MaxCachedDentries: opts.dentryCacheSize()})
	shutdown := func(ctx context.Context) error {
		// vfs is closed and every File with it: write back, forget,
		// DESTROY, then the device and its memory.
		err := fsys.Close(ctx)
		if cerr := dev.Close(); err == nil {
			err = cerr
		}
		if release != nil {
			if rerr := release(); err == nil {
				err = rerr
			}
		}
		return err
	}
	f := newFS(v, dev.Tag(), opts, shutdown)
	f.dev = dev
	return f, nil
}
