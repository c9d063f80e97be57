package driver

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"sync"
	"syscall"
	"testing"

	"github.com/govirtiofs/govirtiofs/virtio"
	"github.com/govirtiofs/govirtiofs/virtio/virtiotest"
)

// FUSE opcodes used by the tests (include/uapi/linux/fuse.h).
const (
	opGetattr = 3
	opForget  = 2
)

// inHeader encodes a fuse_in_header followed by args.
func inHeader(opcode uint32, unique, nodeid uint64, args []byte) []byte {
	b := make([]byte, fuseInHeaderLen+len(args))
	binary.LittleEndian.PutUint32(b[0:], uint32(len(b)))
	binary.LittleEndian.PutUint32(b[4:], opcode)
	binary.LittleEndian.PutUint64(b[8:], unique)
	binary.LittleEndian.PutUint64(b[16:], nodeid)
	copy(b[fuseInHeaderLen:], args)
	return b
}

// flat concatenates a chain's buffers.
func flat(bufs [][]byte) []byte {
	var b []byte
	for _, x := range bufs {
		b = append(b, x...)
	}
	return b
}

// putReply writes a fuse_out_header with unique and then payload across
// writable, and returns the bytes written.
func putReply(writable [][]byte, unique uint64, payload []byte) int {
	reply := make([]byte, fuseOutHeaderLen+len(payload))
	binary.LittleEndian.PutUint32(reply[0:], uint32(len(reply)))
	binary.LittleEndian.PutUint64(reply[8:], unique)
	copy(reply[fuseOutHeaderLen:], payload)
	n := 0
	for _, w := range writable {
		n += copy(w, reply[n:])
	}
	return n
}

// echo is a device that answers every request with its arguments.
func echo(readable, writable [][]byte) int {
	req := flat(readable)
	if len(writable) == 0 || len(req) < fuseInHeaderLen {
		return 0
	}
	return putReply(writable, binary.LittleEndian.Uint64(req[8:]), req[fuseInHeaderLen:])
}

// gate blocks handlers until it is opened.
type gate struct {
	started chan []byte // each blocked request, as it arrives
	open    chan struct{}
	once    sync.Once
}

func newGate() *gate {
	return &gate{started: make(chan []byte, 1024), open: make(chan struct{})}
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

// handler echoes after the gate opens. Tests open it before they end
// (deferred), so that the fake device's goroutines can finish.
func (g *gate) handler() virtiotest.Handler {
	return func(readable, writable [][]byte) int {
		g.started <- flat(readable)
		<-g.open
		return echo(readable, writable)
	}
}

func fsConfig(cfg virtiotest.Config) virtiotest.Config {
	if cfg.DeviceConfig == nil {
		cfg.DeviceConfig = virtiotest.FSConfig("myfs", 1)
	}
	return cfg
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newTestDevice brings up a Device on a fake transport.
func newTestDevice(t *testing.T, cfg virtiotest.Config, opts Options) (*Device, *virtiotest.Transport) {
	t.Helper()
	tr := virtiotest.NewTransport(fsConfig(cfg))
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	d, err := New(context.Background(), tr, opts)
	if err != nil {
		tr.Close()
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		d.Close()
		if err := tr.Err(); err != nil {
			t.Errorf("device saw a malformed ring: %v", err)
		}
	})
	return d, tr
}

func TestNew(t *testing.T) {
	all := uint64(virtio.FeatureVersion1 | virtio.FeatureEventIdx | virtio.FeatureIndirectDesc | virtio.FeatureAccessPlat | virtio.FeatureRingPacked | 1) // VIRTIO_FS_F_NOTIFICATION
	tests := []struct {
		name         string
		cfg          virtiotest.Config
		opts         Options
		wantFeatures uint64
		wantTag      string
		wantQueues   int // request queues
		wantPages    int
	}{
		{"defaults", virtiotest.Config{}, Options{}, virtio.FeatureVersion1, "myfs", 1, 256},
		{"event idx when asked", virtiotest.Config{}, Options{EventIdx: true}, virtio.FeatureVersion1 | virtio.FeatureEventIdx, "myfs", 1, 256},
		{"only version 1", virtiotest.Config{Features: virtio.FeatureVersion1}, Options{}, virtio.FeatureVersion1, "myfs", 1, 256},
		{"never indirect, access platform or packed", virtiotest.Config{Features: all}, Options{}, virtio.FeatureVersion1, "myfs", 1, 256},
		{"full-length tag", virtiotest.Config{DeviceConfig: virtiotest.FSConfig("abcdefghijklmnopqrstuvwxyz0123456789", 1)}, Options{}, virtio.FeatureVersion1, "abcdefghijklmnopqrstuvwxyz0123456789", 1, 256},
		{"request queues capped by device", virtiotest.Config{NumQueues: 5, DeviceConfig: virtiotest.FSConfig("q", 2)}, Options{RequestQueues: 8}, virtio.FeatureVersion1, "q", 2, 256},
		{"request queues capped by transport", virtiotest.Config{NumQueues: 3, DeviceConfig: virtiotest.FSConfig("q", 9)}, Options{RequestQueues: 8}, virtio.FeatureVersion1, "q", 2, 256},
		{"request queues default 1", virtiotest.Config{NumQueues: 5, DeviceConfig: virtiotest.FSConfig("q", 4)}, Options{}, virtio.FeatureVersion1, "q", 1, 256},
		{"big queues: FUSE_MAX_MAX_PAGES", virtiotest.Config{MaxQueueSize: 1024}, Options{QueueSize: 1024}, virtio.FeatureVersion1, "myfs", 1, 256},
		{"max_pages not bounded by the queue size", virtiotest.Config{MaxQueueSize: 4}, Options{}, virtio.FeatureVersion1, "myfs", 1, 256},
		{"small memory", virtiotest.Config{MemorySize: 256 << 10}, Options{}, virtio.FeatureVersion1, "myfs", 1, 63},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, tr := newTestDevice(t, tt.cfg, tt.opts)
			if got := d.Features(); got != tt.wantFeatures {
				t.Errorf("Features = %#x, want %#x", got, tt.wantFeatures)
			}
			if got := tr.DriverFeatures(); got != tt.wantFeatures {
				t.Errorf("device saw driver features %#x, want %#x", got, tt.wantFeatures)
			}
			if got := d.Tag(); got != tt.wantTag {
				t.Errorf("Tag = %q, want %q", got, tt.wantTag)
			}
			if got := len(d.reqs); got != tt.wantQueues {
				t.Errorf("request queues = %d, want %d", got, tt.wantQueues)
			}
			if got := d.Limits().MaxPages; got != tt.wantPages {
				t.Errorf("MaxPages = %d, want %d", got, tt.wantPages)
			}
			s, err := tr.Status()
			want := uint8(virtio.StatusAcknowledge | virtio.StatusDriver | virtio.StatusFeaturesOK | virtio.StatusDriverOK)
			if err != nil || s != want {
				t.Errorf("status = %#x, %v; want %#x", s, err, want)
			}
			if d.Window() != nil {
				t.Errorf("Window = %d bytes, want nil", len(d.Window()))
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  virtiotest.Config
		want error
	}{
		{"no VERSION_1", virtiotest.Config{Features: virtio.FeatureEventIdx}, syscall.ENODEV},
		{"empty tag", virtiotest.Config{DeviceConfig: virtiotest.FSConfig("", 1)}, syscall.EINVAL},
		{"no request queues in config", virtiotest.Config{DeviceConfig: virtiotest.FSConfig("x", 0)}, syscall.EINVAL},
		{"one queue only", virtiotest.Config{NumQueues: 1}, syscall.EINVAL},
		{"short config", virtiotest.Config{DeviceConfig: []byte("short")}, syscall.EINVAL},
		{"queues of one descriptor", virtiotest.Config{MaxQueueSize: 1}, syscall.EINVAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := virtiotest.NewTransport(fsConfig(tt.cfg))
			defer tr.Close()
			d, err := New(context.Background(), tr, Options{Logger: quietLogger()})
			if err == nil {
				d.Close()
				t.Fatal("New succeeded")
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("New: %v, want %v", err, tt.want)
			}
			if s, _ := tr.Status(); s&virtio.StatusFailed == 0 {
				t.Errorf("status %#x lacks FAILED", s)
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     []byte
		wantTag string
		wantN   int
		wantErr error
	}{
		{"ok", virtiotest.FSConfig("share", 3), "share", 3, nil},
		{"no NUL", virtiotest.FSConfig("0123456789abcdef0123456789abcdef0123", 1), "0123456789abcdef0123456789abcdef0123", 1, nil},
		{"bytes after NUL ignored", append([]byte("ab\x00cd"), make([]byte, 35)...)[:36:36], "", 0, syscall.EINVAL},
		{"huge count clamped", append(virtiotest.FSConfig("a", 0)[:36], 0xff, 0xff, 0xff, 0xff), "a", 1 << 16, nil},
		{"zero queues", virtiotest.FSConfig("a", 0), "", 0, syscall.EINVAL},
		{"empty", nil, "", 0, syscall.EINVAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tag, n, err := parseConfig(tt.cfg)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tag != tt.wantTag || n != tt.wantN {
				t.Errorf("parseConfig = %q, %d; want %q, %d", tag, n, tt.wantTag, tt.wantN)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add(virtiotest.FSConfig("share", 1))
	f.Add(make([]byte, 40))
	f.Fuzz(func(t *testing.T, cfg []byte) {
		tag, n, err := parseConfig(cfg)
		if err != nil {
			return
		}
		if tag == "" || len(tag) > tagLen || n < 1 {
			t.Errorf("parseConfig = %q, %d, nil", tag, n)
		}
	})
}

func TestWindow(t *testing.T) {
	win := make([]byte, 1<<20)
	d, _ := newTestDevice(t, virtiotest.Config{SharedMemory: map[uint8]virtiotest.SharedRegion{0: {Bytes: win, Addr: 1 << 40}}}, Options{})
	if got := d.Window(); len(got) != len(win) || &got[0] != &win[0] {
		t.Errorf("Window = %d bytes, want the shared region of %d", len(got), len(win))
	}
}
