//go:build guest

// The guest body of qemutests.TestVFS: built with -tags=guest and run inside the VM, never by a
// plain go test on the host.

package vfs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs"
	"github.com/govirtiofs/govirtiofs/internal/suite"
)

// TestGuest runs every suite once per cache mode in Setup.Modes, each mode with its own Open and
// Close of the device (Close resets it; the next Open brings it up again).
func TestGuest(t *testing.T) {
	tag := os.Getenv("GOVIRTIOFS_TAG")
	if tag == "" {
		t.Fatal("GOVIRTIOFS_TAG is not set: this test runs as the guest program of qemutests.TestVFS")
	}
	printClocksource()
	defer printClocksource() // the kernel may have switched away from an unstable TSC
	setup := readSetup(t, tag)
	if len(setup.Modes) == 0 {
		t.Fatal("the setup names no cache mode")
	}
	for _, name := range setup.Modes {
		mode, err := govirtiofs.ParseCacheMode(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			runMode(t, tag, mode, setup)
			fmt.Printf("VFSGUEST mode %s: %v\n", name, time.Since(start).Round(time.Millisecond))
		})
	}
	start := time.Now()
	result := "PASS"
	if !t.Run("ZeroCopy", func(t *testing.T) { zeroCopy(t, tag) }) {
		result = "FAIL"
	}
	fmt.Printf("%s%s zerocopy/Write %v\n", ResultPrefix, result, time.Since(start).Round(time.Millisecond))
}

// zeroCopy writes ZeroCopyFile through an FS with Options.ZeroCopy (cache none, so every write is
// a WRITE now): large writes from odd offsets of a heap buffer, small ones (copied), and a hole of
// zeros from a fresh buffer whose pages may never have been touched. It checks that the device
// read some writes in place and reads the file back through READs (copies); the host compares it
// again after exit.
func zeroCopy(t *testing.T, tag string) {
	f := open(t, tag, govirtiofs.Options{Cache: govirtiofs.CacheNone, ZeroCopy: true})
	defer func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	want := ZeroCopyData()
	// A copy at an odd offset of a larger heap buffer: runs start and end inside pages.
	src := make([]byte, len(want)+4097)[4097-1000:]
	src = src[:len(want)]
	copy(src, want)
	w, err := f.Create(ZeroCopyFile)
	if err != nil {
		t.Fatal(err)
	}
	cuts := []int{0, 1 << 20, 1<<20 + 5, 1<<20 + 5 + 700001, ZeroCopyHoleOff, ZeroCopyHoleOff + ZeroCopyHole, len(want)}
	for i := 1; i < len(cuts); i++ {
		part := src[cuts[i-1]:cuts[i]]
		if cuts[i-1] == ZeroCopyHoleOff {
			part = make([]byte, ZeroCopyHole)
		}
		if n, err := w.Write(part); n != len(part) || err != nil {
			t.Fatalf("Write of %d bytes at %d: %d, %v", len(part), cuts[i-1], n, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// 1 MiB, 700001 bytes and the 1.2 MiB tail (two WRITEs) at least; the 5 bytes never.
	wrote := f.Stats().ZeroCopyRequests
	if wrote < 3 {
		t.Errorf("the device read %d requests in place, want at least 3", wrote)
	}
	// Read back: with ReadFile, whose fresh buffer's pages are not yet the process's own, so
	// the READs go through DMA memory; then through READs the device writes in place, into
	// buffers written before: the whole file (READs of up to 1 MiB), and 900000 bytes at an odd
	// offset into an odd place of a buffer (runs that start and end inside pages), whose edges
	// must keep their bytes.
	got, err := f.ReadFile(ZeroCopyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("ReadFile: %d bytes, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
	r, err := f.Open(ZeroCopyFile)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	whole := make([]byte, len(want))
	for i := range whole {
		whole[i] = 0xee
	}
	if n, err := r.ReadAt(whole, 0); n != len(want) || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt of the whole file: %d, %v", n, err)
	}
	if !bytes.Equal(whole, want) {
		t.Errorf("ReadAt of the whole file: first difference at %d", firstDiff(whole, want))
	}
	dst := make([]byte, 900000+2*4099)
	for i := range dst {
		dst[i] = 0xee
	}
	const at = 333333
	if n, err := r.ReadAt(dst[4099:4099+900000], at); n != 900000 || err != nil {
		t.Fatalf("ReadAt 900000 at %d: %d, %v", at, n, err)
	}
	if !bytes.Equal(dst[4099:4099+900000], want[at:at+900000]) {
		t.Errorf("ReadAt 900000 at %d: first difference at %d", at, firstDiff(dst[4099:4099+900000], want[at:at+900000]))
	}
	if i := slices.IndexFunc(append(dst[:4099:4099], dst[4099+900000:]...), func(c byte) bool { return c != 0xee }); i >= 0 {
		t.Errorf("ReadAt wrote outside its buffer (byte %d of the edges)", i)
	}
	if n := f.Stats().ZeroCopyRequests - wrote; n < 4 {
		t.Errorf("the device wrote %d replies in place, want at least 4 (3 for the whole file, 1 for the odd ReadAt)", n)
	}
}

// firstDiff returns the first index where a and b differ, or the shorter length.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// open opens the share and fails t if it cannot; the caller closes it.
func open(t *testing.T, tag string, opts govirtiofs.Options) *govirtiofs.FS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := govirtiofs.Open(ctx, tag, opts)
	if err != nil {
		t.Fatalf("Open(%q): %v", tag, err)
	}
	return f
}

// readSetup reads the host's Setup through the share (cache none).
func readSetup(t *testing.T, tag string) *Setup {
	t.Helper()
	f := open(t, tag, govirtiofs.Options{Cache: govirtiofs.CacheNone})
	b, err := f.ReadFile(SetupFile)
	if cerr := f.Close(); cerr != nil {
		t.Errorf("Close: %v", cerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	var s Setup
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s: %v", SetupFile, err)
	}
	if s.Reference == nil {
		t.Fatalf("%s has no reference", SetupFile)
	}
	return &s
}

func runMode(t *testing.T, tag string, mode govirtiofs.CacheMode, setup *Setup) {
	umask := setup.Reference.Umask
	f := open(t, tag, govirtiofs.Options{Cache: mode, Umask: &umask})
	closed := false
	defer func() {
		if !closed {
			f.Close()
		}
	}()
	base := ModeDir(mode.String())
	if err := f.Mkdir(base, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(name string, body func(t *testing.T)) {
		start := time.Now()
		result := "PASS"
		if !t.Run(name, body) {
			result = "FAIL"
		}
		fmt.Printf("%s%s %s/%s %v\n", ResultPrefix, result, mode, name, time.Since(start).Round(time.Millisecond))
	}
	run("Compare", func(t *testing.T) {
		if err := f.Mkdir(base+"/compare", 0o755); err != nil {
			t.Fatal(err)
		}
		suite.Compare(t, f, base+"/compare", setup.Reference)
	})
	if slices.Contains(setup.IOFSModes, mode.String()) {
		// In a directory of its own: fstest.TestFS also walks the base.
		run("IOFS", func(t *testing.T) { suite.IOFS(t, f, base+"/io") })
	}
	if slices.Contains(setup.HostTreeModes, mode.String()) {
		run("IOFSHostTree", func(t *testing.T) { suite.CheckTree(t, f, setup.Tree, setup.TreeNames) })
	}
	run("IOFSInvalid", func(t *testing.T) { suite.IOFSInvalid(t, f, base) })
	run("Names", func(t *testing.T) { suite.Names(t, f, base) })
	run("Locks", func(t *testing.T) { suite.Locks(t, f, base) })
	run("Concurrency", func(t *testing.T) { suite.Concurrency(t, f, base, setup.Workers, setup.Rounds) })
	run("Submount", func(t *testing.T) { suite.Submount(t, f, setup.Submount) })
	if mode == govirtiofs.CacheNone && setup.LatencyCalls > 0 {
		run("GetattrLatency", func(t *testing.T) {
			l, err := suite.StatLatency(f, ".", setup.LatencyCalls)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Printf("%s%s\n", LatencyPrefix, l)
		})
	}
	// Checked by the host after exit.
	if err := f.WriteFile(base+"/"+FromGuest, []byte(FromGuestData(mode.String())), 0o644); err != nil {
		t.Error(err)
	}
	closed = true
	if err := f.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// printClocksource prints the kernel's clocksource: Go's clock, and so the timings, are only as
// fine as that (jiffies: 4 ms).
func printClocksource() {
	if cs, err := os.ReadFile("/sys/devices/system/clocksource/clocksource0/current_clocksource"); err == nil {
		fmt.Printf("VFSGUEST clocksource %s", cs)
	}
}
