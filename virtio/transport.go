package virtio

import "errors"

// Feature bits shared by all virtio devices (virtio spec 1.2 section 6).
const (
	FeatureIndirectDesc = 1 << 28 // VIRTIO_RING_F_INDIRECT_DESC
	FeatureEventIdx     = 1 << 29 // VIRTIO_RING_F_EVENT_IDX
	FeatureVersion1     = 1 << 32 // VIRTIO_F_VERSION_1
	FeatureAccessPlat   = 1 << 33 // VIRTIO_F_ACCESS_PLATFORM
	FeatureRingPacked   = 1 << 34 // VIRTIO_F_RING_PACKED
)

// Device status bits (virtio spec 1.2 section 2.1).
const (
	StatusAcknowledge = 1
	StatusDriver      = 2
	StatusDriverOK    = 4
	StatusFeaturesOK  = 8
	StatusNeedsReset  = 64
	StatusFailed      = 128
)

// ErrDeviceGone is returned once a transport has lost its device (the
// vhost-user back end disconnected, or the device set NEEDS_RESET). Callers
// above the driver see it as ENOTCONN.
var ErrDeviceGone = errors.New("virtio: device gone")

// Buffer is a piece of DMA memory: Bytes as the driver sees it, Addr as the
// device sees it (a guest-physical address, or an address in the vhost-user
// memory table). Bytes is physically contiguous.
type Buffer struct {
	Bytes []byte
	Addr  uint64
}

// Memory hands out DMA memory that the device can reach.
//
// Implementations: hugepage memory in the guest (virtio/pci, virtio/mmio),
// memfd memory shared through SET_MEM_TABLE (virtio/vhostuser), plain
// memory for fakes (virtio/virtiotest).
type Memory interface {
	// Alloc returns a zeroed, physically contiguous buffer of size bytes
	// whose device address is a multiple of align (a power of two).
	//
	// Errors: an error wrapping ENOMEM when no contiguous run of that size
	// is left; size may not exceed MaxAlloc.
	Alloc(size, align int) (Buffer, error)

	// Free returns a buffer obtained from Alloc. The device must no longer
	// use it.
	Free(Buffer)

	// MaxAlloc is the largest size Alloc can satisfy.
	MaxAlloc() int
}

// QueueAddrs is the memory of one split virtqueue as the device must be
// told about it (virtio spec 1.2 section 2.7).
type QueueAddrs struct {
	Size  int // number of descriptors, a power of two
	Desc  Buffer
	Avail Buffer // the driver area
	Used  Buffer // the device area
}

// Transport is one virtio device as a driver reaches it: PCI (virtio/pci),
// MMIO (virtio/mmio) or a vhost-user back end (virtio/vhostuser).
//
// A Transport is not safe for concurrent use during set-up; after
// EnableQueue, Notify may be called from any goroutine.
type Transport interface {
	// DeviceFeatures returns the feature bits the device offers.
	DeviceFeatures() (uint64, error)

	// SetDriverFeatures tells the device which features the driver
	// accepts; a subset of DeviceFeatures.
	SetDriverFeatures(features uint64) error

	// Status reads the device status byte.
	Status() (uint8, error)

	// SetStatus writes the device status byte. Writing 0 resets the
	// device. Transports without a status register (vhost-user) translate
	// the steps: FEATURES_OK commits the features, DRIVER_OK starts the
	// queues.
	SetStatus(status uint8) error

	// ReadConfig copies the device-specific configuration space at off
	// into p, with accesses of the widths the device requires.
	ReadConfig(off int, p []byte) error

	// NumQueues is the number of queues the transport can set up.
	NumQueues() int

	// MaxQueueSize is the largest size queue i accepts (0: queue absent).
	MaxQueueSize(i int) (int, error)

	// EnableQueue gives queue i its rings and makes it live.
	EnableQueue(i int, q QueueAddrs) error

	// Notify tells the device that queue i has new available buffers.
	Notify(i int) error

	// Memory is the DMA memory the device can reach.
	Memory() Memory

	// SharedMemory returns shared memory region id (the virtio-fs DAX
	// window is id 0), mapped into the driver, or ok=false if the device has
	// none.
	SharedMemory(id uint8) (region []byte, addr uint64, ok bool)

	// Done is closed once the device is gone (see ErrDeviceGone).
	Done() <-chan struct{}

	// Close resets the device and releases the transport's resources.
	Close() error
}
