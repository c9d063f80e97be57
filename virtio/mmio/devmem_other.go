//go:build !linux

package mmio

import (
	"errors"

	"github.com/govirtiofs/govirtiofs/virtio"
)

var errNotLinux = errors.New("mmio: /dev/mem mapping needs Linux")

// Open needs Linux; see devmem_linux.go.
func Open(base uint64, size int, mem virtio.Memory) (*Transport, error) {
	return nil, errNotLinux
}

// OpenDevice needs Linux; see devmem_linux.go.
func OpenDevice(deviceID uint32, mem virtio.Memory) (*Transport, Device, error) {
	return nil, Device{}, errNotLinux
}
