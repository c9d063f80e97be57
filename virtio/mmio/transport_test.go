package mmio

import (
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs/virtio"
	"github.com/govirtiofs/govirtiofs/virtio/virtiotest"
)

// regBlock returns a 512-byte register window in plain memory with the
// identification registers set.
func regBlock(magic, version, id uint32) []byte {
	b := make([]byte, 512)
	binary.LittleEndian.PutUint32(b[regMagicValue:], magic)
	binary.LittleEndian.PutUint32(b[regVersion:], version)
	binary.LittleEndian.PutUint32(b[regDeviceID:], id)
	binary.LittleEndian.PutUint32(b[regVendorID:], 0x554d4551)
	return b
}

// TestOpenChecks runs Open's checks over a window in plain memory, the path
// a /dev/mem mapping takes.
func TestOpenChecks(t *testing.T) {
	tests := []struct {
		name    string
		regs    []byte
		wantErr error
		wantMsg string
	}{
		{name: "virtio-fs", regs: regBlock(MagicValue, 2, DeviceIDFS)},
		{name: "other device", regs: regBlock(MagicValue, 2, 2)},
		{name: "empty slot", regs: regBlock(MagicValue, 2, 0), wantErr: ErrNoDevice},
		{name: "legacy", regs: regBlock(MagicValue, 1, DeviceIDFS), wantErr: ErrLegacy, wantMsg: "-global virtio-mmio.force-legacy=false"},
		{name: "bad magic", regs: regBlock(0x12345678, 2, DeviceIDFS), wantMsg: "magic value 0x12345678"},
		{name: "no device at all", regs: make([]byte, 512), wantMsg: "magic value"},
		{name: "unknown version", regs: regBlock(MagicValue, 3, DeviceIDFS), wantMsg: "version 3"},
		{name: "window too small", regs: regBlock(MagicValue, 2, DeviceIDFS)[:0xfc], wantMsg: "at least 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			unmapped := false
			tr, err := newTransport(window{mem: tt.regs}, 0xfeb00000, len(tt.regs), nil, nil, func() error { unmapped = true; return nil })
			if tt.wantErr == nil && tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("newTransport: %v", err)
				}
				id := binary.LittleEndian.Uint32(tt.regs[regDeviceID:])
				if tr.DeviceID() != id || tr.VendorID() != 0x554d4551 || tr.Base() != 0xfeb00000 {
					t.Errorf("DeviceID %d VendorID %#x Base %#x, want %d 0x554d4551 0xfeb00000", tr.DeviceID(), tr.VendorID(), tr.Base(), id)
				}
				if err := tr.Close(); err != nil || !unmapped {
					t.Errorf("Close = %v, unmapped %v; want nil, true", err, unmapped)
				}
				if got := binary.LittleEndian.Uint32(tt.regs[regStatus:]); got != 0 {
					t.Errorf("Status after Close = %d, want 0 (reset)", got)
				}
				return
			}
			if err == nil {
				t.Fatalf("newTransport succeeded, want error %v %q", tt.wantErr, tt.wantMsg)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			if unmapped {
				t.Errorf("a failed newTransport released the mapping; Open does that")
			}
		})
	}
}

func TestWindowAccess(t *testing.T) {
	b := make([]byte, 16)
	w := window{mem: b}
	w.write32(4, 0x11223344)
	if got := binary.LittleEndian.Uint32(b[4:]); got != 0x11223344 {
		t.Errorf("write32: memory holds %#x, want 0x11223344", got)
	}
	for _, tt := range []struct {
		name string
		got  uint32
		want uint32
	}{
		{"read32", w.read32(4), 0x11223344},
		{"read16 low", uint32(w.read16(4)), 0x3344},
		{"read16 high", uint32(w.read16(6)), 0x1122},
		{"read8", uint32(w.read8(7)), 0x11},
		{"read32 misaligned", w.read32(2), 0},
		{"read16 misaligned", uint32(w.read16(5)), 0},
		{"read32 past the end", w.read32(16), 0},
		{"read32 straddling the end", w.read32(14), 0},
		{"read8 negative", uint32(w.read8(-1)), 0},
		{"read8 past the end", uint32(w.read8(16)), 0},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
	w.write32(13, 1) // misaligned: ignored
	w.write32(16, 1) // out of range: ignored
	if got := binary.LittleEndian.Uint32(b[12:]); got != 0 {
		t.Errorf("ignored writes changed memory: %#x", got)
	}
}

// newFake opens a transport over a fake device.
func newFake(t *testing.T, d *fakeDevice, mapPhys mapFunc) *Transport {
	t.Helper()
	tr, err := newTransport(d, 0xfeb00000, 512, virtiotest.NewMemory(1<<20), mapPhys, nil)
	if err != nil {
		t.Fatalf("newTransport: %v", err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestFeatures(t *testing.T) {
	d := newFakeDevice(2)
	tr := newFake(t, d, nil)
	got, err := tr.DeviceFeatures()
	if err != nil || got != d.features {
		t.Fatalf("DeviceFeatures = %#x, %v; want %#x", got, err, d.features)
	}
	want := uint64(virtio.FeatureVersion1 | virtio.FeatureEventIdx)
	if err := tr.SetDriverFeatures(want); err != nil {
		t.Fatalf("SetDriverFeatures: %v", err)
	}
	if d.driverFeatures != want {
		t.Errorf("device saw driver features %#x, want %#x", d.driverFeatures, want)
	}
	if err := tr.SetDriverFeatures(virtio.FeatureRingPacked); err == nil {
		t.Errorf("SetDriverFeatures of an unoffered feature succeeded")
	}
	for _, a := range d.accesses() {
		if a.width != 4 {
			t.Errorf("register access %v is not 32 bits wide", a)
		}
	}
}

func TestNumQueues(t *testing.T) {
	for _, n := range []int{0, 1, 2, 10} {
		tr := newFake(t, newFakeDevice(n), nil)
		if got := tr.NumQueues(); got != n {
			t.Errorf("NumQueues = %d, want %d", got, n)
		}
	}
}

// queueAddrs allocates rings for a queue of size n.
func queueAddrs(t *testing.T, mem virtio.Memory, n int) virtio.QueueAddrs {
	t.Helper()
	alloc := func(size, align int) virtio.Buffer {
		b, err := mem.Alloc(size, align)
		if err != nil {
			t.Fatalf("Alloc: %v", err)
		}
		return b
	}
	return virtio.QueueAddrs{
		Size:  n,
		Desc:  alloc(virtio.DescTableBytes(n), 16),
		Avail: alloc(virtio.AvailRingBytes(n), 2),
		Used:  alloc(virtio.UsedRingBytes(n), 4),
	}
}

func TestEnableQueue(t *testing.T) {
	d := newFakeDevice(2)
	tr := newFake(t, d, nil)
	if got, err := tr.MaxQueueSize(1); got != 1024 || err != nil {
		t.Fatalf("MaxQueueSize(1) = %d, %v; want 1024", got, err)
	}
	q := queueAddrs(t, tr.Memory(), 256)
	q.Desc.Addr |= 0x1_0000_0000 // exercise the high halves
	if err := tr.EnableQueue(1, q); err != nil {
		t.Fatalf("EnableQueue: %v", err)
	}
	want := fakeQueue{numMax: 1024, num: 256, ready: 1, desc: q.Desc.Addr, driver: q.Avail.Addr, device: q.Used.Addr}
	if d.queues[1] != want || d.queues[0] != (fakeQueue{numMax: 1024}) {
		t.Errorf("device queues %+v, want queue 1 %+v and queue 0 untouched", d.queues, want)
	}
	if err := tr.EnableQueue(1, q); err == nil || !strings.Contains(err.Error(), "live") {
		t.Errorf("enabling a live queue: %v, want an error", err)
	}

	bad := func(f func(q *virtio.QueueAddrs)) virtio.QueueAddrs {
		c := queueAddrs(t, tr.Memory(), 8)
		f(&c)
		return c
	}
	for _, tt := range []struct {
		name  string
		index int
		q     virtio.QueueAddrs
	}{
		{"absent queue", 2, queueAddrs(t, tr.Memory(), 8)},
		{"negative queue", -1, queueAddrs(t, tr.Memory(), 8)},
		{"size not a power of two", 0, bad(func(q *virtio.QueueAddrs) { q.Size = 6 })},
		{"size zero", 0, bad(func(q *virtio.QueueAddrs) { q.Size = 0 })},
		{"size above QueueNumMax", 0, bad(func(q *virtio.QueueAddrs) { q.Size = 2048 })},
		{"descriptor table too small", 0, bad(func(q *virtio.QueueAddrs) { q.Desc.Bytes = q.Desc.Bytes[:100] })},
		{"descriptor table misaligned", 0, bad(func(q *virtio.QueueAddrs) { q.Desc.Addr += 8 })},
		{"driver area misaligned", 0, bad(func(q *virtio.QueueAddrs) { q.Avail.Addr++ })},
		{"device area misaligned", 0, bad(func(q *virtio.QueueAddrs) { q.Used.Addr += 2 })},
		{"device area too small", 0, bad(func(q *virtio.QueueAddrs) { q.Used.Bytes = q.Used.Bytes[:6] })},
	} {
		if err := tr.EnableQueue(tt.index, tt.q); err == nil {
			t.Errorf("%s: EnableQueue succeeded", tt.name)
		}
	}
	if d.queues[0].ready != 0 {
		t.Errorf("a rejected EnableQueue made queue 0 live")
	}
}

func TestNotify(t *testing.T) {
	d := newFakeDevice(2)
	tr := newFake(t, d, nil)
	for _, i := range []int{1, 0, 1} {
		if err := tr.Notify(i); err != nil {
			t.Fatalf("Notify(%d): %v", i, err)
		}
	}
	if want := []uint32{1, 0, 1}; !reflect.DeepEqual(d.notifies, want) {
		t.Errorf("QueueNotify writes %v, want %v", d.notifies, want)
	}
	if err := tr.Notify(-1); err == nil {
		t.Errorf("Notify(-1) succeeded")
	}
}

func TestReadConfig(t *testing.T) {
	d := newFakeDevice(2)
	d.config = make([]byte, 40)
	copy(d.config, "myfs")
	binary.LittleEndian.PutUint32(d.config[36:], 3)
	tr := newFake(t, d, nil)
	gen := access{'r', regConfigGeneration, 4}

	tests := []struct {
		name   string
		off, n int
		want   []byte
		reads  []access
	}{
		{"u32 field", 36, 4, []byte{3, 0, 0, 0}, []access{gen, {'r', 0x124, 4}, gen}},
		{"u16 field", 36, 2, []byte{3, 0}, []access{gen, {'r', 0x124, 2}, gen}},
		{"u8 field", 37, 1, []byte{0}, []access{gen, {'r', 0x125, 1}, gen}},
		{"u64 field as halves", 32, 8, []byte{0, 0, 0, 0, 3, 0, 0, 0}, []access{gen, {'r', 0x120, 4}, {'r', 0x124, 4}, gen}},
		{"byte array", 0, 5, []byte("myfs\x00"), []access{gen, {'r', 0x100, 1}, {'r', 0x101, 1}, {'r', 0x102, 1}, {'r', 0x103, 1}, {'r', 0x104, 1}, gen}},
		{"misaligned u32", 1, 4, []byte("yfs\x00"), []access{gen, {'r', 0x101, 1}, {'r', 0x102, 1}, {'r', 0x103, 1}, {'r', 0x104, 1}, gen}},
		{"empty", 10, 0, []byte{}, []access{gen, gen}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.accesses()
			p := make([]byte, tt.n)
			if err := tr.ReadConfig(tt.off, p); err != nil {
				t.Fatalf("ReadConfig: %v", err)
			}
			if !reflect.DeepEqual(p, tt.want) {
				t.Errorf("ReadConfig(%d, %d) = %q, want %q", tt.off, tt.n, p, tt.want)
			}
			if got := d.accesses(); !reflect.DeepEqual(got, tt.reads) {
				t.Errorf("accesses %v, want %v", got, tt.reads)
			}
		})
	}

	t.Run("generation changes", func(t *testing.T) {
		d.set(func(d *fakeDevice) { d.bumpGeneration = 3 })
		p := make([]byte, 4)
		if err := tr.ReadConfig(0, p); err != nil || string(p) != "myfs" {
			t.Fatalf("ReadConfig = %q, %v; want myfs", p, err)
		}
		d.set(func(d *fakeDevice) { d.bumpGeneration = 1 << 30 })
		if err := tr.ReadConfig(0, p); err == nil {
			t.Errorf("ReadConfig of an ever-changing config succeeded")
		}
		d.set(func(d *fakeDevice) { d.bumpGeneration = 0 })
	})

	for _, r := range [][2]int{{-1, 1}, {0, 257}, {256, 1}, {250, 8}, {1 << 40, 1}} {
		if err := tr.ReadConfig(r[0], make([]byte, r[1])); err == nil {
			t.Errorf("ReadConfig(%d, %d bytes) outside the 256-byte config space succeeded", r[0], r[1])
		}
	}
}

func TestSetStatus(t *testing.T) {
	d := newFakeDevice(2)
	tr := newFake(t, d, nil)
	tr.interval = 0 // no watcher
	for _, s := range []uint8{virtio.StatusAcknowledge, virtio.StatusAcknowledge | virtio.StatusDriver} {
		if err := tr.SetStatus(s); err != nil {
			t.Fatalf("SetStatus(%d): %v", s, err)
		}
		if got, err := tr.Status(); got != s || err != nil {
			t.Errorf("Status = %d, %v; want %d", got, err, s)
		}
	}
	d.set(func(d *fakeDevice) { d.resetReads = 5 })
	if err := tr.SetStatus(0); err != nil {
		t.Errorf("reset finishing after 5 reads: %v", err)
	}
	d.set(func(d *fakeDevice) { d.resetReads = 1 << 30 })
	if err := tr.SetStatus(0); err == nil {
		t.Errorf("a reset that never finishes succeeded")
	}
	d.set(func(d *fakeDevice) { d.resetReads = 0 })
}

func TestNeedsReset(t *testing.T) {
	d := newFakeDevice(2)
	tr := newFake(t, d, nil)
	tr.interval = 0
	d.set(func(d *fakeDevice) { d.status = virtio.StatusDriverOK | virtio.StatusNeedsReset })
	if _, err := tr.Status(); err != nil {
		t.Fatalf("Status: %v", err)
	}
	select {
	case <-tr.Done():
	default:
		t.Fatalf("Done not closed after Status saw NEEDS_RESET")
	}
	if err := tr.Notify(0); !errors.Is(err, virtio.ErrDeviceGone) {
		t.Errorf("Notify after NEEDS_RESET = %v, want ErrDeviceGone", err)
	}
}

func TestWatcherSeesNeedsReset(t *testing.T) {
	d := newFakeDevice(2)
	tr := newFake(t, d, nil)
	tr.interval = time.Millisecond
	if err := tr.SetStatus(virtio.StatusAcknowledge | virtio.StatusDriver | virtio.StatusFeaturesOK | virtio.StatusDriverOK); err != nil {
		t.Fatalf("SetStatus: %v", err)
	}
	d.set(func(d *fakeDevice) { d.status |= virtio.StatusNeedsReset })
	select {
	case <-tr.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("Done not closed 10s after the device set NEEDS_RESET")
	}
}

func TestSharedMemory(t *testing.T) {
	d := newFakeDevice(2)
	d.shm[0] = [2]uint64{1 << 21, 0x1_0000_0000}
	d.shm[2] = [2]uint64{0, 0x2000} // zero length: no region
	window := make([]byte, 1<<21)
	var mapped, unmapped []uint64
	mapPhys := func(addr uint64, size int) ([]byte, func() error, error) {
		if size != len(window) {
			t.Errorf("mapPhys size %d, want %d", size, len(window))
		}
		mapped = append(mapped, addr)
		return window, func() error { unmapped = append(unmapped, addr); return nil }, nil
	}
	tr := newFake(t, d, mapPhys)
	for range 2 {
		region, addr, ok := tr.SharedMemory(0)
		if !ok || addr != 0x1_0000_0000 || len(region) != 1<<21 {
			t.Fatalf("SharedMemory(0) = %d bytes at %#x, %v; want 2 MiB at 0x100000000", len(region), addr, ok)
		}
	}
	for _, id := range []uint8{1, 2} {
		if _, _, ok := tr.SharedMemory(id); ok {
			t.Errorf("SharedMemory(%d) found a region that does not exist", id)
		}
	}
	if len(mapped) != 1 {
		t.Errorf("region mapped %d times, want once", len(mapped))
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !reflect.DeepEqual(unmapped, []uint64{0x1_0000_0000}) {
		t.Errorf("Close unmapped %#x, want the region", unmapped)
	}
	if _, _, ok := tr.SharedMemory(0); ok {
		t.Errorf("SharedMemory after Close found a region")
	}
}

func TestClose(t *testing.T) {
	d := newFakeDevice(2)
	tr := newFake(t, d, nil)
	tr.interval = time.Millisecond
	if err := tr.SetStatus(virtio.StatusDriverOK); err != nil {
		t.Fatalf("SetStatus: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-tr.Done():
	default:
		t.Errorf("Done not closed by Close")
	}
	if d.status != 0 {
		t.Errorf("status after Close = %d, want 0 (reset)", d.status)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	d.accesses()
	for name, err := range map[string]error{
		"Notify":            tr.Notify(0),
		"SetStatus":         tr.SetStatus(1),
		"ReadConfig":        tr.ReadConfig(0, make([]byte, 4)),
		"SetDriverFeatures": tr.SetDriverFeatures(0),
		"EnableQueue":       tr.EnableQueue(0, virtio.QueueAddrs{}),
	} {
		if !errors.Is(err, virtio.ErrDeviceGone) {
			t.Errorf("%s after Close = %v, want ErrDeviceGone", name, err)
		}
	}
	if _, err := tr.Status(); !errors.Is(err, virtio.ErrDeviceGone) {
		t.Errorf("Status after Close = %v, want ErrDeviceGone", err)
	}
	if got := d.accesses(); len(got) != 0 {
		t.Errorf("registers accessed after Close: %v", got)
	}
}

// TestConcurrentNotifyClose checks that Close waits for Notify calls in
// flight (a Notify after the unmap would fault).
func TestConcurrentNotifyClose(t *testing.T) {
	d := newFakeDevice(2)
	tr := newFake(t, d, nil)
	errc := make(chan error, 4)
	for range 4 {
		go func() {
			for {
				if err := tr.Notify(0); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range 4 {
		if err := <-errc; !errors.Is(err, virtio.ErrDeviceGone) {
			t.Errorf("Notify racing Close = %v, want ErrDeviceGone", err)
		}
	}
}

func TestSnapshot(t *testing.T) {
	d := newFakeDevice(2)
	d.status = 0xf
	d.generation = 7
	tr := newFake(t, d, nil)
	got, err := tr.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	want := Snapshot{
		Magic: MagicValue, Version: 2, DeviceID: DeviceIDFS, VendorID: 0x554d4551,
		DeviceFeatures: d.features, Status: 0xf, ConfigGeneration: 7,
		QueueNumMax: []uint32{1024, 1024}, SHMLen: shmNone,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Snapshot = %v, want %v", got, want)
	}
	if s := got.String(); !strings.Contains(s, "magic=0x74726976 version=2 deviceid=26") {
		t.Errorf("String() = %q", s)
	}
}
