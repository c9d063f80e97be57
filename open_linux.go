package govirtiofs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"

	"github.com/govirtiofs/govirtiofs/driver"
	"github.com/govirtiofs/govirtiofs/virtio"
	"github.com/govirtiofs/govirtiofs/virtio/dmamem"
	"github.com/govirtiofs/govirtiofs/virtio/mmio"
	"github.com/govirtiofs/govirtiofs/virtio/pci"
)

// defaultGuestMemory is the hugepage DMA memory Open takes when
// Options.MemorySize is 0.
const defaultGuestMemory = 16 << 20

// Open finds the virtio-fs device whose tag is tag in this Linux guest and
// returns its share. It looks at the virtio-fs PCI devices (1af4:105a, not
// bound to a kernel driver) and then at the virtio-mmio windows, brings each
// candidate up to read its tag (virtio-fs config), and keeps the first that
// matches. DMA memory is Options.MemorySize of 2 MiB hugepages (16 MiB by
// default) whose guest-physical addresses go into the rings. It needs root
// (sysfs config writes, /proc/self/pagemap, /dev/mem for MMIO). The FS must
// be closed: that resets the device and frees the hugepages.
//
// Errors: the hugepage memory's (not root, no hugepages: boot with
// hugepages=N); an error wrapping ENODEV that lists the tags found when no
// device has tag; the device's bring-up and FUSE_INIT errors; invalid
// Options.
func Open(ctx context.Context, tag string, opts Options) (*FS, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	if tag == "" {
		return nil, fmt.Errorf("govirtiofs: empty tag: %w", syscall.EINVAL)
	}
	size := opts.MemorySize
	if size == 0 {
		size = defaultGuestMemory
	}
	mem, err := dmamem.New((size + dmamem.HugePageSize - 1) / dmamem.HugePageSize)
	if err != nil {
		return nil, fmt.Errorf("govirtiofs: DMA memory: %w", err)
	}
	dev, err := findDevice(ctx, tag, mem, &opts)
	if err != nil {
		mem.Close()
		return nil, err
	}
	return mount(ctx, dev, &opts, mem.Close)
}

// findDevice brings up each virtio-fs device in turn until one has tag.
// Devices with another tag are closed (reset) again.
func findDevice(ctx context.Context, tag string, mem virtio.Memory, opts *Options) (*driver.Device, error) {
	dopts := driver.Options{RequestQueues: opts.RequestQueues, QueueSize: opts.QueueSize, Logger: opts.logger(), RequestTimeout: opts.requestTimeout(), OnRoundTrip: opts.OnRoundTrip}
	if opts.ZeroCopy {
		r, err := userPages()
		if err != nil {
			return nil, fmt.Errorf("govirtiofs: zero copy: %w", err)
		}
		dopts.UserPages = r
		if dopts.QueueSize == 0 {
			dopts.QueueSize = zeroCopyQueueSize
		}
	}
	var seen []string
	var errs []error
	// try brings t up and keeps it if its tag matches.
	try := func(where string, t virtio.Transport) *driver.Device {
		dev, err := driver.New(ctx, t, dopts)
		if err != nil {
			t.Close()
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			return nil
		}
		if dev.Tag() == tag {
			return dev
		}
		seen = append(seen, fmt.Sprintf("%q (%s)", dev.Tag(), where))
		dev.Close()
		return nil
	}

	addrs, err := pci.Find(pci.DeviceFS)
	if err != nil {
		errs = append(errs, err)
	}
	for _, addr := range addrs {
		t, err := pci.Open(addr, mem)
		if err != nil {
			errs = append(errs, fmt.Errorf("PCI %s: %w", addr, err))
			continue
		}
		if dev := try("PCI "+addr, t); dev != nil {
			return dev, nil
		}
	}

	windows, err := mmio.Find()
	if err != nil {
		errs = append(errs, err)
	}
	for _, w := range windows {
		where := fmt.Sprintf("MMIO %#x", w.Base)
		t, err := mmio.Open(w.Base, w.Size, mem)
		if errors.Is(err, mmio.ErrNoDevice) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if t.DeviceID() != mmio.DeviceIDFS {
			// Another device, maybe a kernel driver's: Close would reset
			// it, so leave it alone (its register mapping stays).
			continue
		}
		if dev := try(where, t); dev != nil {
			return dev, nil
		}
	}
	err = fmt.Errorf("govirtiofs: no virtio-fs device with tag %q; found %d: %v: %w", tag, len(seen), seen, syscall.ENODEV)
	if len(errs) > 0 {
		err = fmt.Errorf("%w (errors: %w)", err, errors.Join(errs...))
	}
	return nil, err
}

// zeroCopyQueueSize is the queue size Options.ZeroCopy asks for when
// Options.QueueSize is 0: a 1 MiB WRITE of scattered pages is a chain of
// 257 descriptors plus the reply's, and the driver takes a chain in place
// only if it needs at most half of a queue.
const zeroCopyQueueSize = 1024

// userPages prepares the process for zero-copy writes, once, and returns
// the page resolver every device shares.
var userPages = sync.OnceValues(func() (*dmamem.PageResolver, error) {
	if err := dmamem.LockProcess(); err != nil {
		return nil, err
	}
	return dmamem.NewPageResolver()
})
