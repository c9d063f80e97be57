package vhostuser

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs/internal/virtiofsdtest"
	"github.com/govirtiofs/govirtiofs/virtio"
)

// FUSE wire constants (include/uapi/linux/fuse.h, 7.36), hand-encoded here
// so that this transport test does not depend on package fuse.
const (
	fuseGetattr       = 3
	fuseInit          = 26
	fuseInHeaderSize  = 40
	fuseOutHeaderSize = 16
	fuseInitInSize    = 64
	fuseInitOutSize   = 64
	fuseAttrOutSize   = 104
	sIFDIR            = 0o040000
)

// fuseInHeader encodes struct fuse_in_header followed by body.
func fuseInHeader(opcode uint32, unique, nodeid uint64, body []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(fuseInHeaderSize+len(body)))
	b = binary.LittleEndian.AppendUint32(b, opcode)
	b = binary.LittleEndian.AppendUint64(b, unique)
	b = binary.LittleEndian.AppendUint64(b, nodeid)
	b = append(b, make([]byte, 16)...) // uid, gid, pid, total_extlen+padding
	return append(b, body...)
}

// session is a vhost-user transport to a fresh virtiofsd with the hiprio
// and first request queue running.
type session struct {
	d      *virtiofsdtest.Daemon
	tr     *Transport
	hiprio *virtio.Queue
	req    *virtio.Queue
	unique uint64
}

func start(t testing.TB) *session {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/hello", []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := virtiofsdtest.Start(t, dir, virtiofsdtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := Dial(ctx, d.Socket, Options{MemorySize: 8 << 20})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { tr.Close() })
	s := &session{d: d, tr: tr}
	s.bringUp(t)
	return s
}

// bringUp runs the virtio initialisation (virtio spec 1.2 section 3.1.1)
// and sets up the hiprio and first request queue.
func (s *session) bringUp(t testing.TB) {
	t.Helper()
	tr := s.tr
	feat, err := tr.DeviceFeatures()
	if err != nil {
		t.Fatal(err)
	}
	want := uint64(virtio.FeatureVersion1 | virtio.FeatureEventIdx | virtio.FeatureIndirectDesc)
	if feat&want != want {
		t.Fatalf("device features %#x lack %#x", feat, want)
	}
	steps := []uint8{virtio.StatusAcknowledge, virtio.StatusDriver}
	for _, st := range steps {
		cur, _ := tr.Status()
		if err := tr.SetStatus(cur | st); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.SetDriverFeatures(want); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetStatus(virtio.StatusAcknowledge | virtio.StatusDriver | virtio.StatusFeaturesOK); err != nil {
		t.Fatalf("FEATURES_OK: %v", err)
	}
	for i, q := range []**virtio.Queue{&s.hiprio, &s.req} {
		if *q, err = virtio.NewQueue(tr.Memory(), i, 128, want); err != nil {
			t.Fatal(err)
		}
		if err := tr.EnableQueue(i, (*q).Addrs()); err != nil {
			t.Fatalf("EnableQueue(%d): %v", i, err)
		}
	}
	if err := tr.SetStatus(virtio.StatusAcknowledge | virtio.StatusDriver | virtio.StatusFeaturesOK | virtio.StatusDriverOK); err != nil {
		t.Fatalf("DRIVER_OK: %v", err)
	}
}

// roundTrip sends one FUSE request on the request queue and polls for the
// reply; it returns the reply's out header error and body.
func (s *session) roundTrip(t testing.TB, opcode uint32, nodeid uint64, body []byte, outSize int) (int32, []byte) {
	t.Helper()
	mem := s.tr.Memory()
	s.unique++
	msg := fuseInHeader(opcode, s.unique, nodeid, body)
	in, err := mem.Alloc(len(msg), 8)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Free(in)
	copy(in.Bytes, msg)
	outHdr, err := mem.Alloc(fuseOutHeaderSize, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Free(outHdr)
	out, err := mem.Alloc(outSize, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Free(out)
	notify, err := s.req.Add(context.Background(), []virtio.Buffer{in}, []virtio.Buffer{outHdr, out}, s.unique)
	if err != nil {
		t.Fatal(err)
	}
	if notify {
		if err := s.tr.Notify(1); err != nil {
			t.Fatal(err)
		}
	}
	timeout := make(chan struct{})
	timer := time.AfterFunc(10*time.Second, func() { close(timeout) })
	defer timer.Stop()
	if !virtio.Poll(timeout, nil, s.req.HasUsed) {
		t.Fatalf("opcode %d: no reply within 10s", opcode)
	}
	u, ok, err := s.req.Pop()
	if err != nil || !ok {
		t.Fatalf("Pop = %v, %v", ok, err)
	}
	if u.Cookie != s.unique || u.Len < fuseOutHeaderSize {
		t.Fatalf("used entry %+v, want cookie %d and at least an out header", u, s.unique)
	}
	h := outHdr.Bytes
	if got := binary.LittleEndian.Uint64(h[8:]); got != s.unique {
		t.Fatalf("reply unique %d, want %d", got, s.unique)
	}
	if got := binary.LittleEndian.Uint32(h[0:]); int(got) != u.Len {
		t.Fatalf("reply len %d, used len %d", got, u.Len)
	}
	return int32(binary.LittleEndian.Uint32(h[4:])), append([]byte(nil), out.Bytes[:u.Len-fuseOutHeaderSize]...)
}

func (s *session) init(t testing.TB) []byte {
	t.Helper()
	body := make([]byte, fuseInitInSize)
	binary.LittleEndian.PutUint32(body[0:], 7)       // major
	binary.LittleEndian.PutUint32(body[4:], 36)      // minor
	binary.LittleEndian.PutUint32(body[8:], 128<<10) // max_readahead
	errno, out := s.roundTrip(t, fuseInit, 0, body, fuseInitOutSize)
	if errno != 0 {
		t.Fatalf("FUSE_INIT error %d", errno)
	}
	if len(out) < 24 {
		t.Fatalf("FUSE_INIT reply body of %d bytes", len(out))
	}
	return out
}

func TestDialNegotiates(t *testing.T) {
	s := start(t)
	if n := s.tr.NumQueues(); n < 2 {
		t.Errorf("NumQueues = %d, want at least 2 (hiprio + request)", n)
	}
	if p := s.tr.ProtocolFeatures(); p&protocolReplyAck == 0 {
		t.Errorf("protocol features %#x lack REPLY_ACK", p)
	}
	cfg := make([]byte, fsConfigLen)
	if err := s.tr.ReadConfig(0, cfg); err != nil {
		t.Fatal(err)
	}
	if tag := string(bytes.TrimRight(cfg[:36], "\x00")); tag == "" {
		t.Errorf("config tag is empty")
	}
	if n := binary.LittleEndian.Uint32(cfg[36:]); n < 1 {
		t.Errorf("num_request_queues = %d, want >= 1", n)
	}
	if err := s.tr.ReadConfig(30, make([]byte, 20)); err == nil {
		t.Errorf("ReadConfig beyond the config space succeeded")
	}
	if err := s.tr.EnableQueue(1, s.req.Addrs()); err == nil {
		t.Errorf("EnableQueue of a queue already set up succeeded")
	}
	if _, _, ok := s.tr.SharedMemory(0); ok {
		t.Errorf("SharedMemory(0) ok, want no DAX window")
	}
}

func TestFUSEInit(t *testing.T) {
	s := start(t)
	out := s.init(t)
	major := binary.LittleEndian.Uint32(out[0:])
	minor := binary.LittleEndian.Uint32(out[4:])
	maxWrite := binary.LittleEndian.Uint32(out[20:])
	if major != 7 || minor < 31 {
		t.Errorf("FUSE_INIT answered %d.%d, want 7.>=31", major, minor)
	}
	if maxWrite < 4096 || maxWrite > 16<<20 {
		t.Errorf("max_write = %d, want a sane size", maxWrite)
	}
	t.Logf("FUSE %d.%d, max_write %d", major, minor, maxWrite)

	errno, attr := s.roundTrip(t, fuseGetattr, 1, make([]byte, 16), fuseAttrOutSize)
	if errno != 0 || len(attr) != fuseAttrOutSize {
		t.Fatalf("GETATTR of the root = error %d, %d bytes", errno, len(attr))
	}
	// fuse_attr_out: attr_valid, attr_valid_nsec, dummy, then fuse_attr
	// whose mode sits at offset 60 (ino, size, blocks, atime, mtime,
	// ctime, *nsec x3, mode).
	if mode := binary.LittleEndian.Uint32(attr[16+60:]); mode&0o170000 != sIFDIR {
		t.Errorf("root mode %#o, want a directory", mode)
	}
}

func TestBackendKilled(t *testing.T) {
	s := start(t)
	s.init(t)
	s.d.Kill()
	select {
	case <-s.tr.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed within 5s of killing virtiofsd")
	}
	if err := s.tr.Notify(1); !errors.Is(err, virtio.ErrDeviceGone) {
		t.Errorf("Notify after the back end died = %v, want ErrDeviceGone", err)
	}
	if err := s.tr.SetStatus(0); !errors.Is(err, virtio.ErrDeviceGone) {
		t.Errorf("SetStatus after the back end died = %v, want ErrDeviceGone", err)
	}
}

func TestDialRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Dial(ctx, t.TempDir()+"/nothing", Options{}); err == nil {
		t.Fatal("Dial of a missing socket succeeded")
	}
}

// BenchmarkGetattr is a FUSE GETATTR of the root through virtiofsd: the
// polled round trip the driver's requests pay.
func BenchmarkGetattr(b *testing.B) {
	s := start(b)
	s.init(b)
	body := make([]byte, 16)
	b.ResetTimer()
	for b.Loop() {
		if errno, _ := s.roundTrip(b, fuseGetattr, 1, body, fuseAttrOutSize); errno != 0 {
			b.Fatalf("GETATTR error %d", errno)
		}
	}
}

// TestDialRetriesRefused dials a socket that is bound but never listens, as
// virtiofsd's is for a moment after it appears: Dial retries until its
// context ends.
func TestDialRetriesRefused(t *testing.T) {
	path := t.TempDir() + "/bound"
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = Dial(ctx, path, Options{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial = %v, want it retried until DeadlineExceeded", err)
	}
}

// TestReset stops the running rings with status 0 (GET_VRING_BASE), and
// the back end stays connected.
func TestReset(t *testing.T) {
	s := start(t)
	s.init(t)
	if err := s.tr.SetStatus(0); err != nil {
		t.Fatalf("SetStatus(0): %v", err)
	}
	if st, err := s.tr.Status(); err != nil || st != 0 {
		t.Errorf("Status after reset = %#x, %v; want 0", st, err)
	}
	if err := s.tr.Notify(1); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Notify after reset = %v, want EINVAL (queue not set up)", err)
	}
	select {
	case <-s.tr.Done():
		t.Fatal("Done closed by a reset")
	default:
	}
	t.Logf("virtiofsd: %d queues, protocol features %#x", s.tr.NumQueues(), s.tr.ProtocolFeatures())

	// Initialise again on fresh rings: the back end serves them.
	s.hiprio.Close()
	s.req.Close()
	s.bringUp(t)
	s.init(t)
}

// TestDialTag checks where the tag comes from: the device config when the
// back end serves GET_CONFIG, else the caller's Options.Tag (virtiofsd 7.2
// offers MQ and REPLY_ACK but not CONFIG). num_request_queues follows the
// back end's queue count (GET_QUEUE_NUM with MQ).
func TestDialTag(t *testing.T) {
	d := virtiofsdtest.Start(t, t.TempDir(), virtiofsdtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := Dial(ctx, d.Socket, Options{Tag: "caller-tag", MemorySize: 1 << 20})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer tr.Close()
	cfg := make([]byte, fsConfigLen)
	if err := tr.ReadConfig(0, cfg); err != nil {
		t.Fatal(err)
	}
	tag := string(bytes.TrimRight(cfg[:36], "\x00"))
	if p := tr.ProtocolFeatures(); p&protocolConfig == 0 {
		if tag != "caller-tag" {
			t.Errorf("tag %q without CONFIG, want the caller's %q", tag, "caller-tag")
		}
	} else if tag == "" {
		t.Errorf("empty tag from the device config")
	}
	if n := binary.LittleEndian.Uint32(cfg[36:]); int(n) != tr.NumQueues()-1 {
		t.Errorf("num_request_queues %d with %d queues, want %d", n, tr.NumQueues(), tr.NumQueues()-1)
	}
}
