package mmio

import (
	"errors"
	"fmt"
	"math"
	"os"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/virtio"
)

// Open maps the register window of size bytes at guest-physical address
// base through /dev/mem and checks that a modern virtio-mmio device is
// behind it. It writes no register: the device is reset by the driver's
// SetStatus(0), and a window whose device another driver owns is left
// alone. The caller must Close the transport, which resets the device.
//
// Errors: ErrNoDevice for an empty slot (DeviceID 0); ErrLegacy for a
// version 1 device; an error naming the magic value or version found
// otherwise; /dev/mem errors (root is required, and a kernel with
// CONFIG_IO_STRICT_DEVMEM refuses windows a kernel driver has claimed).
func Open(base uint64, size int, mem virtio.Memory) (*Transport, error) {
	regs, unmap, err := mapDevMem(base, size)
	if err != nil {
		return nil, err
	}
	t, err := newTransport(window{mem: regs}, base, size, mem, mapDevMem, unmap)
	if err != nil {
		unmap()
		return nil, err
	}
	return t, nil
}

// OpenDevice opens the first window that Find lists whose device has the
// given type (DeviceIDFS for virtio-fs), skipping empty slots and other
// devices without touching them.
//
// Errors: Find fails; no window holds such a device (the error lists what
// was seen); any error of Open other than ErrNoDevice for the window that
// does.
func OpenDevice(deviceID uint32, mem virtio.Memory) (*Transport, Device, error) {
	devs, err := Find()
	if err != nil {
		return nil, Device{}, err
	}
	var errs []error
	for _, d := range devs {
		regs, unmap, err := mapDevMem(d.Base, d.Size)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		t, err := newTransport(window{mem: regs}, d.Base, d.Size, mem, mapDevMem, unmap)
		switch {
		case errors.Is(err, ErrNoDevice):
			unmap()
			continue
		case err != nil:
			unmap()
			errs = append(errs, err)
			continue
		case t.DeviceID() != deviceID:
			// Not ours: unmap without the reset Close would do.
			unmap()
			continue
		}
		return t, d, nil
	}
	return nil, Device{}, fmt.Errorf("mmio: no device of type %d in %d virtio-mmio windows: %w", deviceID, len(devs), errors.Join(errs...))
}

// mapDevMem maps [addr, addr+size) of physical memory through /dev/mem,
// uncached (O_SYNC). mmap needs a page-aligned offset, so the mapping
// starts at the page holding addr and the result is sliced to the window.
func mapDevMem(addr uint64, size int) ([]byte, func() error, error) {
	page := uint64(os.Getpagesize())
	if size <= 0 || addr > math.MaxInt64 || uint64(size) > math.MaxInt64-addr {
		return nil, nil, fmt.Errorf("mmio: cannot map %d bytes at %#x", size, addr)
	}
	start := addr &^ (page - 1)
	within := int(addr - start)
	length := (within + size + int(page) - 1) &^ (int(page) - 1)
	f, err := os.OpenFile("/dev/mem", os.O_RDWR|os.O_SYNC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("mmio: %w", err)
	}
	defer f.Close() // the mapping outlives the descriptor
	m, err := unix.Mmap(int(f.Fd()), int64(start), length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mmio: mmap /dev/mem at %#x (%d bytes): %w", start, length, err)
	}
	return m[within : within+size : within+size], func() error { return unix.Munmap(m) }, nil
}
