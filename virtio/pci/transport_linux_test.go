package pci

import (
	"encoding/binary"
	"errors"
	"sync"
	"syscall"
	"testing"

	"github.com/govirtiofs/govirtiofs/virtio"
)

// regFile is the register side of a plain-memory stand-in for the BAR: it
// has no device behind it, so the tests check what the transport writes
// where, and feed it what a device would show.
type regFile struct {
	common, notify, device []byte
}

func newRegFile() *regFile {
	r := &regFile{common: make([]byte, 0x40), notify: make([]byte, 0x100), device: make([]byte, 40)}
	binary.LittleEndian.PutUint16(r.common[ccNumQueues:], 2)
	copy(r.device, "myfs")
	binary.LittleEndian.PutUint32(r.device[36:], 1)
	return r
}

// testTransport starts a Transport over r with notify_off_multiplier 4.
func testTransport(t *testing.T, r *regFile) *Transport {
	t.Helper()
	caps := Capabilities{NotifyOffMultiplier: 4}
	tr := newTransport("test", nil, caps, [6]BAR{})
	tr.common, tr.notify, tr.device = window{b: r.common}, window{b: r.notify}, window{b: r.device}
	if err := tr.start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestTransportEnableQueueAndNotify(t *testing.T) {
	r := newRegFile()
	r.common[ccDeviceStatus] = 0x0f // reset must clear it
	tr := testTransport(t, r)
	if r.common[ccDeviceStatus] != 0 {
		t.Errorf("device_status after Open = %#x, want 0 (reset)", r.common[ccDeviceStatus])
	}
	if got := tr.NumQueues(); got != 2 {
		t.Fatalf("NumQueues = %d, want 2", got)
	}
	// What the device shows for the selected queue.
	binary.LittleEndian.PutUint16(r.common[ccQueueSize:], 128)
	binary.LittleEndian.PutUint16(r.common[ccQueueNotifyOff:], 3)
	if got, err := tr.MaxQueueSize(1); err != nil || got != 128 {
		t.Fatalf("MaxQueueSize(1) = %d, %v; want 128", got, err)
	}
	if err := tr.Notify(1); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Notify before EnableQueue = %v, want EINVAL", err)
	}
	q := virtio.QueueAddrs{
		Size:  64,
		Desc:  virtio.Buffer{Addr: 0x1122334455667000},
		Avail: virtio.Buffer{Addr: 0x0000000100002000},
		Used:  virtio.Buffer{Addr: 0x00000000fedc3000},
	}
	if err := tr.EnableQueue(1, q); err != nil {
		t.Fatalf("EnableQueue: %v", err)
	}
	le := binary.LittleEndian
	regs := []struct {
		name      string
		got, want uint64
	}{
		{"queue_select", uint64(le.Uint16(r.common[ccQueueSelect:])), 1},
		{"queue_size", uint64(le.Uint16(r.common[ccQueueSize:])), 64},
		{"queue_msix_vector", uint64(le.Uint16(r.common[ccQueueMSIXVector:])), noVector},
		{"queue_desc", le.Uint64(r.common[ccQueueDesc:]), q.Desc.Addr},
		{"queue_driver", le.Uint64(r.common[ccQueueDriver:]), q.Avail.Addr},
		{"queue_device", le.Uint64(r.common[ccQueueDevice:]), q.Used.Addr},
		{"queue_enable", uint64(le.Uint16(r.common[ccQueueEnable:])), 1},
	}
	for _, reg := range regs {
		if reg.got != reg.want {
			t.Errorf("%s = %#x, want %#x", reg.name, reg.got, reg.want)
		}
	}
	if err := tr.EnableQueue(1, q); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("second EnableQueue = %v, want EBUSY", err)
	}
	// Notify from several goroutines, as the driver's senders do.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := tr.Notify(1); err != nil {
				t.Errorf("Notify: %v", err)
			}
		}()
	}
	wg.Wait()
	// queue_notify_off 3 x multiplier 4.
	if got := le.Uint16(r.notify[12:]); got != 1 {
		t.Errorf("notify register at 12 = %d, want the queue index 1", got)
	}
}

func TestTransportEnableQueueErrors(t *testing.T) {
	tests := []struct {
		name      string
		queue     int
		max       uint16
		notifyOff uint16
		size      int
		want      error
	}{
		{"queue out of range", 2, 128, 0, 64, syscall.EINVAL},
		{"negative queue", -1, 128, 0, 64, syscall.EINVAL},
		{"absent queue", 0, 0, 0, 64, syscall.EINVAL},
		{"too large", 0, 128, 0, 256, syscall.EINVAL},
		{"not a power of two", 0, 128, 0, 96, syscall.EINVAL},
		{"notify offset outside notify structure", 0, 128, 0x40, 64, syscall.EIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRegFile()
			tr := testTransport(t, r)
			binary.LittleEndian.PutUint16(r.common[ccQueueSize:], tt.max)
			binary.LittleEndian.PutUint16(r.common[ccQueueNotifyOff:], tt.notifyOff)
			err := tr.EnableQueue(tt.queue, virtio.QueueAddrs{Size: tt.size})
			if !errors.Is(err, tt.want) {
				t.Errorf("EnableQueue = %v, want %v", err, tt.want)
			}
			if r.common[ccQueueEnable] != 0 {
				t.Errorf("queue_enable written despite the error")
			}
		})
	}
}

func TestTransportConfigAndFeatures(t *testing.T) {
	r := newRegFile()
	tr := testTransport(t, r)
	p := make([]byte, 40)
	if err := tr.ReadConfig(0, p); err != nil {
		t.Fatalf("ReadConfig: %v", err)
	}
	if string(p[:4]) != "myfs" || binary.LittleEndian.Uint32(p[36:]) != 1 {
		t.Errorf("ReadConfig = % x", p)
	}
	for _, c := range []struct{ off, n int }{{-1, 1}, {0, 41}, {40, 1}, {1 << 62, 1}} {
		if err := tr.ReadConfig(c.off, make([]byte, c.n)); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("ReadConfig(%d, %d bytes) = %v, want EINVAL", c.off, c.n, err)
		}
	}
	if err := tr.SetDriverFeatures(virtio.FeatureVersion1 | virtio.FeatureEventIdx); err != nil {
		t.Fatal(err)
	}
	// Plain memory keeps the last select and the last half written.
	if sel, hi := binary.LittleEndian.Uint32(r.common[ccDriverFeatureSelect:]), binary.LittleEndian.Uint32(r.common[ccDriverFeature:]); sel != 1 || hi != 1 {
		t.Errorf("driver_feature_select %d driver_feature %#x, want 1 and the high half 0x1", sel, hi)
	}
	binary.LittleEndian.PutUint32(r.common[ccDeviceFeature:], 0x30000000)
	if f, err := tr.DeviceFeatures(); err != nil || f != 0x3000000030000000 {
		t.Errorf("DeviceFeatures = %#x, %v; want both halves read", f, err)
	}
	if err := tr.SetStatus(virtio.StatusAcknowledge | virtio.StatusDriver); err != nil {
		t.Fatal(err)
	}
	if s, err := tr.Status(); err != nil || s != 3 {
		t.Errorf("Status = %#x, %v; want 0x3", s, err)
	}
	if _, _, ok := tr.SharedMemory(0); ok {
		t.Errorf("SharedMemory(0) ok on a device without one")
	}
}

func TestTransportDeviceGone(t *testing.T) {
	r := newRegFile()
	tr := testTransport(t, r)
	select {
	case <-tr.Done():
		t.Fatal("Done closed on a live device")
	default:
	}
	r.common[ccDeviceStatus] = virtio.StatusNeedsReset | 0x0f
	if _, err := tr.Status(); !errors.Is(err, virtio.ErrDeviceGone) {
		t.Errorf("Status with NEEDS_RESET = %v, want ErrDeviceGone", err)
	}
	<-tr.Done() // closed by the Status call
	if err := tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if r.common[ccDeviceStatus] != 0 {
		t.Errorf("device_status after Close = %#x, want 0 (reset)", r.common[ccDeviceStatus])
	}
	calls := map[string]error{
		"ReadConfig":        tr.ReadConfig(0, make([]byte, 4)),
		"SetStatus":         tr.SetStatus(1),
		"SetDriverFeatures": tr.SetDriverFeatures(0),
		"EnableQueue":       tr.EnableQueue(0, virtio.QueueAddrs{Size: 2}),
	}
	_, calls["Status"] = tr.Status()
	_, calls["DeviceFeatures"] = tr.DeviceFeatures()
	_, calls["MaxQueueSize"] = tr.MaxQueueSize(0)
	for name, err := range calls {
		if !errors.Is(err, virtio.ErrDeviceGone) {
			t.Errorf("%s after Close = %v, want ErrDeviceGone", name, err)
		}
	}
	if err := tr.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestTransportCloseWithoutFault(t *testing.T) {
	tr := testTransport(t, newRegFile())
	if err := tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	<-tr.Done()
}
