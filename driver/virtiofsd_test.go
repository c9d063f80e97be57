package driver_test

// Host integration: the driver over the vhost-user front end
// (virtio/vhostuser) against the real virtiofsd serving a temp directory,
// with FUSE requests encoded by hand (the fuse package is not involved).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs/driver"
	"github.com/govirtiofs/govirtiofs/internal/virtiofsdtest"
	"github.com/govirtiofs/govirtiofs/virtio/vhostuser"
)

// FUSE opcodes and sizes (include/uapi/linux/fuse.h, 7.36).
const (
	opLookup  = 1
	opGetattr = 3
	opInit    = 26

	inHeaderLen   = 40
	outHeaderLen  = 16
	initInLen     = 64
	initOutLen    = 64
	getattrInLen  = 16
	attrOutLen    = 104
	entryOutLen   = 128
	rootID        = 1
	attrInoOff    = 16 // fuse_attr_out: attr_valid, attr_valid_nsec, dummy, then attr.ino
	attrSizeOff   = 24
	attrModeOff   = 16 + 60
	entryAttrOff  = 40 // fuse_entry_out: nodeid, generation, entry_valid, attr_valid, two nsecs
	initOutMaxWr  = 20
	initOutMinor  = 4
	fuseKernelMin = 36
)

var uniques atomic.Uint64

// request encodes a fuse_in_header with a fresh unique, then args.
func request(opcode uint32, nodeid uint64, args ...[]byte) ([][]byte, uint64) {
	n := inHeaderLen
	for _, a := range args {
		n += len(a)
	}
	h := make([]byte, inHeaderLen)
	u := uniques.Add(1)
	binary.LittleEndian.PutUint32(h[0:], uint32(n))
	binary.LittleEndian.PutUint32(h[4:], opcode)
	binary.LittleEndian.PutUint64(h[8:], u)
	binary.LittleEndian.PutUint64(h[16:], nodeid)
	return append([][]byte{h}, args...), u
}

// roundTrip sends a request and checks the reply header; it returns the
// payload.
func roundTrip(ctx context.Context, d *driver.Device, opcode uint32, nodeid uint64, outLen int, args ...[]byte) ([]byte, error) {
	in, u := request(opcode, nodeid, args...)
	out := make([]byte, outHeaderLen+outLen)
	n, err := d.RoundTrip(ctx, in, [][]byte{out})
	if err != nil {
		return nil, err
	}
	if got := binary.LittleEndian.Uint32(out[0:]); int(got) != n {
		return nil, fmt.Errorf("opcode %d: header len %d, device wrote %d", opcode, got, n)
	}
	if got := binary.LittleEndian.Uint64(out[8:]); got != u {
		return nil, fmt.Errorf("opcode %d: unique %d, want %d", opcode, got, u)
	}
	if e := int32(binary.LittleEndian.Uint32(out[4:])); e != 0 {
		return nil, syscall.Errno(-e)
	}
	return out[outHeaderLen:n], nil
}

func fuseInit(ctx context.Context, d *driver.Device) ([]byte, error) {
	arg := make([]byte, initInLen)
	binary.LittleEndian.PutUint32(arg[0:], 7)
	binary.LittleEndian.PutUint32(arg[4:], fuseKernelMin)
	binary.LittleEndian.PutUint32(arg[8:], 128<<10)
	return roundTrip(ctx, d, opInit, 0, initOutLen, arg)
}

func getattr(ctx context.Context, d *driver.Device, nodeid uint64) ([]byte, error) {
	return roundTrip(ctx, d, opGetattr, nodeid, attrOutLen, make([]byte, getattrInLen))
}

// startDevice starts virtiofsd on dir, dials it and brings the device up,
// with FUSE_INIT done.
func startDevice(t testing.TB, dir string) (*driver.Device, *virtiofsdtest.Daemon) {
	t.Helper()
	vd := virtiofsdtest.Start(t, dir, virtiofsdtest.Options{Cache: "none"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr, err := vhostuser.Dial(ctx, vd.Socket, vhostuser.Options{Tag: "hostshare"})
	if err != nil {
		t.Fatalf("vhostuser.Dial: %v", err)
	}
	d, err := driver.New(ctx, tr, driver.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tr.Close()
		t.Fatalf("driver.New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := fuseInit(ctx, d); err != nil {
		t.Fatalf("FUSE_INIT: %v", err)
	}
	return d, vd
}

func TestVirtiofsdInitGetattrLookup(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello, world\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	vd := virtiofsdtest.Start(t, dir, virtiofsdtest.Options{})
	ctx := context.Background()
	tr, err := vhostuser.Dial(ctx, vd.Socket, vhostuser.Options{Tag: "hostshare"})
	if err != nil {
		t.Fatalf("vhostuser.Dial: %v", err)
	}
	d, err := driver.New(ctx, tr, driver.Options{})
	if err != nil {
		tr.Close()
		t.Fatalf("driver.New: %v", err)
	}
	defer d.Close()
	if got := d.Tag(); got != "hostshare" {
		t.Errorf("Tag = %q", got)
	}
	if got := d.Limits().MaxPages; got < 32 || got > 256 {
		t.Errorf("MaxPages = %d", got)
	}

	initOut, err := fuseInit(ctx, d)
	if err != nil {
		t.Fatalf("FUSE_INIT: %v", err)
	}
	if len(initOut) < 24 || binary.LittleEndian.Uint32(initOut[0:]) != 7 {
		t.Fatalf("FUSE_INIT reply %x", initOut)
	}
	if minor := binary.LittleEndian.Uint32(initOut[initOutMinor:]); minor < 31 {
		t.Errorf("FUSE_INIT minor %d, want >= 31", minor)
	}
	if mw := binary.LittleEndian.Uint32(initOut[initOutMaxWr:]); mw < 4096 {
		t.Errorf("FUSE_INIT max_write %d", mw)
	}

	attr, err := getattr(ctx, d, rootID)
	if err != nil {
		t.Fatalf("GETATTR: %v", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	if len(attr) != attrOutLen {
		t.Fatalf("GETATTR reply of %d bytes, want %d", len(attr), attrOutLen)
	}
	if ino := binary.LittleEndian.Uint64(attr[attrInoOff:]); ino != st.Ino {
		t.Errorf("root ino %d, host %d", ino, st.Ino)
	}
	if mode := binary.LittleEndian.Uint32(attr[attrModeOff:]); mode != st.Mode {
		t.Errorf("root mode %#o, host %#o", mode, st.Mode)
	}

	entry, err := roundTrip(ctx, d, opLookup, rootID, entryOutLen, []byte("hello.txt\x00"))
	if err != nil {
		t.Fatalf("LOOKUP: %v", err)
	}
	if size := binary.LittleEndian.Uint64(entry[entryAttrOff+8:]); size != 13 {
		t.Errorf("hello.txt size %d, want 13", size)
	}
	if _, err := roundTrip(ctx, d, opLookup, rootID, entryOutLen, []byte("missing\x00")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("LOOKUP missing: %v, want ENOENT", err)
	}
}

func TestVirtiofsdConcurrent(t *testing.T) {
	d, _ := startDevice(t, t.TempDir())
	const goroutines, each = 64, 50
	var wg sync.WaitGroup
	errc := make(chan error, goroutines)
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := getattr(context.Background(), d, rootID); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

// TestVirtiofsdKilled: virtiofsd dies with requests in flight; every
// in-flight and later call fails with ENOTCONN within a second, and Close
// leaves no goroutine behind.
func TestVirtiofsdKilled(t *testing.T) {
	before := runtime.NumGoroutine()
	d, vd := startDevice(t, t.TempDir())
	const goroutines = 64
	var wg sync.WaitGroup
	var ok atomic.Int64
	started := make(chan struct{}, goroutines)
	errc := make(chan error, goroutines)
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			for {
				_, err := getattr(context.Background(), d, rootID)
				if first {
					first = false
					started <- struct{}{}
				}
				if err != nil {
					errc <- err
					return
				}
				ok.Add(1)
			}
		}()
	}
	for range goroutines {
		<-started
	}
	vd.Kill()
	killed := time.Now()
	// One deadline for all: every caller fails within 1 s of the kill.
	deadline := time.NewTimer(time.Second)
	defer deadline.Stop()
	for range goroutines {
		select {
		case err := <-errc:
			if !errors.Is(err, syscall.ENOTCONN) {
				t.Errorf("in-flight call: %v, want ENOTCONN", err)
			}
		case <-deadline.C:
			t.Fatal("a call was still waiting 1 s after virtiofsd died")
		}
	}
	wg.Wait()
	t.Logf("%d GETATTRs before the kill; all callers failed %v after it", ok.Load(), time.Since(killed))
	if _, err := getattr(context.Background(), d, rootID); !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("later call: %v, want ENOTCONN", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	leakDeadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(leakDeadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
	}
}

func BenchmarkGetattrRoundTrip(b *testing.B) {
	d, _ := startDevice(b, b.TempDir())
	ctx := context.Background()
	in, _ := request(opGetattr, rootID, make([]byte, getattrInLen))
	out := make([]byte, outHeaderLen+attrOutLen)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		binary.LittleEndian.PutUint64(in[0][8:], uint64(i+1))
		if _, err := d.RoundTrip(ctx, in, [][]byte{out}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVirtiofsdRoundTrip measures single round trips over vhost-user
// for GETATTR of the root, LOOKUP of a name virtiofsd knows (warm) and of
// names it has not seen (cold: it opens and stats the file; 20000 names,
// reused after that, so b.N beyond is warm-ish), with virtiofsd's default
// thread pool and with --thread-pool-size=0 and 64.
func BenchmarkVirtiofsdRoundTrip(b *testing.B) {
	const files = 20000
	dir := b.TempDir()
	for i := range files {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%06d", i)), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for _, pool := range []string{"default", "0", "64"} {
		var extra []string
		if pool != "default" {
			extra = []string{"--thread-pool-size=" + pool}
		}
		for _, op := range []string{"GETATTR", "LOOKUP-warm", "LOOKUP-cold"} {
			b.Run(op+"/pool="+pool, func(b *testing.B) {
				benchVirtiofsd(b, dir, extra, op)
			})
		}
	}
}

func benchVirtiofsd(b *testing.B, dir string, extra []string, op string) {
	vd := virtiofsdtest.Start(b, dir, virtiofsdtest.Options{Cache: "none", ExtraArgs: extra})
	ctx := context.Background()
	tr, err := vhostuser.Dial(ctx, vd.Socket, vhostuser.Options{Tag: "hostshare"})
	if err != nil {
		b.Fatal(err)
	}
	d, err := driver.New(ctx, tr, driver.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tr.Close()
		b.Fatal(err)
	}
	defer d.Close()
	if _, err := fuseInit(ctx, d); err != nil {
		b.Fatal(err)
	}
	var in [][]byte
	outLen := entryOutLen
	switch op {
	case "GETATTR":
		in, _ = request(opGetattr, rootID, make([]byte, getattrInLen))
		outLen = attrOutLen
	default:
		in, _ = request(opLookup, rootID, []byte("f000000\x00"))
	}
	out := [][]byte{make([]byte, outHeaderLen+outLen)}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		binary.LittleEndian.PutUint64(in[0][8:], uint64(i+1))
		if op == "LOOKUP-cold" {
			copy(in[1], fmt.Appendf(in[1][:0], "f%06d", i%20000))
		}
		if _, err := d.RoundTrip(ctx, in, out); err != nil {
			b.Fatal(err)
		}
	}
}

// TestVirtiofsdSendRelease: files opened with OPEN and released with Send
// (as fuse sends RELEASE in the background); each done gets virtiofsd's
// reply, harvested by the next round trip or the completion goroutine, and
// a RELEASE of a directory handle with RELEASEDIR the same.
func TestVirtiofsdSendRelease(t *testing.T) {
	const (
		opOpen         = 14
		opRelease      = 18
		opOpendir      = 27
		opReleasedir   = 29
		openInLen      = 8
		openOutLen     = 16
		releaseInLen   = 24
		filesToRelease = 20
	)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, _ := startDevice(t, dir)
	ctx := context.Background()
	entry, err := roundTrip(ctx, d, opLookup, rootID, entryOutLen, []byte("f\x00"))
	if err != nil {
		t.Fatalf("LOOKUP: %v", err)
	}
	nodeid := binary.LittleEndian.Uint64(entry)
	type done struct {
		n   int
		err error
		out []byte
		u   uint64
	}
	dones := make(chan done, 2*filesToRelease)
	release := func(op uint32, node uint64, openOp uint32) {
		openIn := make([]byte, openInLen) // O_RDONLY
		openOut, err := roundTrip(ctx, d, openOp, node, openOutLen, openIn)
		if err != nil {
			t.Fatalf("OPEN (opcode %d): %v", openOp, err)
		}
		relIn := make([]byte, releaseInLen)
		copy(relIn, openOut[:8]) // fh
		in, u := request(op, node, relIn)
		out := make([]byte, outHeaderLen)
		if err := d.Send(ctx, in, [][]byte{out}, func(n int, err error) { dones <- done{n, err, out, u} }); err != nil {
			t.Fatalf("Send RELEASE: %v", err)
		}
	}
	for range filesToRelease {
		release(opRelease, nodeid, opOpen)
		release(opReleasedir, rootID, opOpendir)
	}
	for range 2 * filesToRelease {
		var r done
		select {
		case r = <-dones:
		case <-time.After(10 * time.Second):
			t.Fatal("a RELEASE's done not called within 10s")
		}
		if r.err != nil || r.n != outHeaderLen {
			t.Fatalf("done(%d, %v), want done(%d, nil)", r.n, r.err, outHeaderLen)
		}
		if got := binary.LittleEndian.Uint64(r.out[8:]); got != r.u {
			t.Errorf("reply unique %d, want %d", got, r.u)
		}
		if e := int32(binary.LittleEndian.Uint32(r.out[4:])); e != 0 {
			t.Errorf("RELEASE failed: %v", syscall.Errno(-e))
		}
	}
	// The device still works, and a RELEASE left in flight is drained by
	// Close (startDevice's cleanup).
	if _, err := getattr(ctx, d, rootID); err != nil {
		t.Fatalf("GETATTR after the RELEASEs: %v", err)
	}
	release(opRelease, nodeid, opOpen)
}
