package virtiotest

import (
	"bytes"
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs/virtio"
)

func TestFSConfigGolden(t *testing.T) {
	want := append(append([]byte("tag0"), make([]byte, 32)...), 3, 0, 0, 0)
	if got := FSConfig("tag0", 3); !bytes.Equal(got, want) {
		t.Errorf("FSConfig = %x, want %x", got, want)
	}
}

func TestStatusAndFeatures(t *testing.T) {
	tests := []struct {
		name       string
		driver     uint64
		wantStatus uint8
	}{
		{"subset sticks", virtio.FeatureVersion1, virtio.StatusFeaturesOK},
		{"unoffered feature drops FEATURES_OK", virtio.FeatureVersion1 | virtio.FeatureRingPacked, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTransport(Config{})
			defer tr.Close()
			if err := tr.SetDriverFeatures(tt.driver); err != nil {
				t.Fatal(err)
			}
			if err := tr.SetStatus(virtio.StatusFeaturesOK); err != nil {
				t.Fatal(err)
			}
			if got, _ := tr.Status(); got != tt.wantStatus {
				t.Errorf("status = %#x, want %#x", got, tt.wantStatus)
			}
		})
	}
}

func TestEnableQueueErrors(t *testing.T) {
	tr := NewTransport(Config{MaxQueueSize: 8})
	defer tr.Close()
	q, err := virtio.NewQueue(tr.Memory(), 0, 16, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.EnableQueue(0, q.Addrs()); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("EnableQueue before FEATURES_OK = %v, want EINVAL", err)
	}
	tr.SetStatus(virtio.StatusFeaturesOK)
	if err := tr.EnableQueue(0, q.Addrs()); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("EnableQueue over MaxQueueSize = %v, want EINVAL", err)
	}
	other := NewMemory(1 << 16)
	q2, err := virtio.NewQueue(other, 0, 8, 0)
	if err != nil {
		t.Fatal(err)
	}
	addrs := q2.Addrs()
	addrs.Desc.Addr = 0x1000 // not in the device's memory
	if err := tr.EnableQueue(0, addrs); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("EnableQueue with rings outside memory = %v, want EINVAL", err)
	}
}

// TestMalformedChain has the driver hand the device a buffer outside its
// memory: the device records the error and sets NEEDS_RESET.
func TestMalformedChain(t *testing.T) {
	tr := NewTransport(Config{Features: virtio.FeatureVersion1})
	defer tr.Close()
	tr.SetDriverFeatures(virtio.FeatureVersion1)
	tr.SetStatus(virtio.StatusFeaturesOK)
	q, err := virtio.NewQueue(tr.Memory(), 0, 8, virtio.FeatureVersion1)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.EnableQueue(0, q.Addrs()); err != nil {
		t.Fatal(err)
	}
	bogus := virtio.Buffer{Bytes: make([]byte, 8), Addr: 0xdead0000}
	if _, err := q.Add(context.Background(), []virtio.Buffer{bogus}, nil, nil); err != nil {
		t.Fatal(err)
	}
	tr.Notify(0)
	timeout := make(chan struct{})
	defer time.AfterFunc(10*time.Second, func() { close(timeout) }).Stop()
	if !virtio.Poll(timeout, nil, func() bool { return tr.Err() != nil }) {
		t.Fatal("device did not report the bad buffer within 10s")
	}
	if !errors.Is(tr.Err(), syscall.EFAULT) {
		t.Errorf("Err = %v, want EFAULT", tr.Err())
	}
	if st, _ := tr.Status(); st&virtio.StatusNeedsReset == 0 {
		t.Errorf("status %#x lacks NEEDS_RESET", st)
	}
}

func TestDisconnect(t *testing.T) {
	tr := NewTransport(Config{})
	tr.Disconnect()
	select {
	case <-tr.Done():
	default:
		t.Fatal("Done not closed after Disconnect")
	}
	if _, err := tr.DeviceFeatures(); !errors.Is(err, virtio.ErrDeviceGone) {
		t.Errorf("DeviceFeatures = %v, want ErrDeviceGone", err)
	}
	if err := tr.Notify(0); !errors.Is(err, virtio.ErrDeviceGone) {
		t.Errorf("Notify = %v, want ErrDeviceGone", err)
	}
	tr.Close() // idempotent
}

func TestReadConfig(t *testing.T) {
	tr := NewTransport(Config{DeviceConfig: FSConfig("x", 1)})
	defer tr.Close()
	p := make([]byte, 4)
	if err := tr.ReadConfig(36, p); err != nil || !bytes.Equal(p, []byte{1, 0, 0, 0}) {
		t.Errorf("ReadConfig(36) = %x, %v", p, err)
	}
	if err := tr.ReadConfig(38, p); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("ReadConfig past the end = %v, want EINVAL", err)
	}
}
