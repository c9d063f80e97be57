//go:build linux

// Command rtbench measures GETATTR round trips in the guest, at two levels:
//
//   - driver: the virtio-fs PCI device brought up with driver.New on its own
//     hugepage memory, FUSE_INIT and then -n GETATTRs of the root encoded by
//     hand, each through driver.Device.RoundTrip, for each -spin value;
//   - fs: govirtiofs.Open with CacheNone, then -n FS.Stat of a file (LOOKUP
//     and GETATTR each time: nothing is trusted) and of the root.
//
// Each line it prints is "rtbench: LEVEL p50=... p90=... p99=... n=N".
// With -cpuprofile NAME it writes a CPU profile of the fs phase to NAME on
// the share (through the FS itself), for go tool pprof on the host.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/govirtiofs/govirtiofs"
	"github.com/govirtiofs/govirtiofs/driver"
	"github.com/govirtiofs/govirtiofs/virtio/dmamem"
	"github.com/govirtiofs/govirtiofs/virtio/pci"
)

// FUSE wire constants (include/uapi/linux/fuse.h, 7.36).
const (
	opGetattr    = 3
	opInit       = 26
	inHeaderLen  = 40
	outHeaderLen = 16
	initInLen    = 64
	initOutLen   = 64
	getattrInLen = 16
	attrOutLen   = 104
	rootID       = 1
	dmaPages     = 2
)

func main() {
	n := flag.Int("n", 2000, "round trips per measurement")
	tag := flag.String("tag", os.Getenv("GOVIRTIOFS_TAG"), "virtio-fs tag")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the fs phase to this `name` on the share")
	level := flag.String("level", "driver,fs", "which measurements: driver, fs or both")
	spins := flag.String("spin", "default", "comma-separated driver.Options.Spin values for the driver level (default: DefaultSpin; -1ns: park at once)")
	eventIdx := flag.Bool("eventidx", false, "negotiate EVENT_IDX at the driver level (virtiofsd 7.2 may die on a later bring-up: see driver.Options.EventIdx)")
	flag.Parse()
	ctx := context.Background()
	if bytes.Contains([]byte(*level), []byte("driver")) {
		for _, sp := range strings.Split(*spins, ",") {
			var spin time.Duration
			if sp != "default" {
				var err error
				if spin, err = time.ParseDuration(sp); err != nil {
					fmt.Fprintf(os.Stderr, "rtbench: -spin: %v\n", err)
					os.Exit(2)
				}
			}
			opts := driver.Options{Spin: spin, EventIdx: *eventIdx, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if err := benchDriver(ctx, *n, fmt.Sprintf("spin=%s event_idx=%v", sp, *eventIdx), opts); err != nil {
				fmt.Fprintf(os.Stderr, "rtbench: driver: %v\n", err)
				os.Exit(1)
			}
		}
	}
	if bytes.Contains([]byte(*level), []byte("fs")) {
		if err := benchFS(ctx, *tag, *n, *profile); err != nil {
			fmt.Fprintf(os.Stderr, "rtbench: fs: %v\n", err)
			os.Exit(1)
		}
	}
	fmt.Println("rtbench: OK")
}

// report prints the percentiles of ds.
func report(name string, ds []time.Duration) {
	slices.Sort(ds)
	p := func(q float64) time.Duration { return ds[int(q*float64(len(ds)-1))] }
	fmt.Printf("rtbench: %s p50=%v p90=%v p99=%v min=%v n=%d\n", name,
		p(0.5).Round(100*time.Nanosecond), p(0.9).Round(100*time.Nanosecond),
		p(0.99).Round(100*time.Nanosecond), ds[0], len(ds))
}

func header(b []byte, opcode uint32, unique, nodeid uint64) {
	binary.LittleEndian.PutUint32(b[0:], uint32(len(b)))
	binary.LittleEndian.PutUint32(b[4:], opcode)
	binary.LittleEndian.PutUint64(b[8:], unique)
	binary.LittleEndian.PutUint64(b[16:], nodeid)
}

func benchDriver(ctx context.Context, n int, name string, opts driver.Options) error {
	mem, err := dmamem.New(dmaPages)
	if err != nil {
		return err
	}
	defer mem.Close()
	addrs, err := pci.Find(pci.DeviceFS)
	if err != nil {
		return err
	}
	if len(addrs) == 0 {
		return errors.New("no virtio-fs PCI device")
	}
	t, err := pci.Open(addrs[0], mem)
	if err != nil {
		return err
	}
	d, err := driver.New(ctx, t, opts)
	if err != nil {
		t.Close()
		return err
	}
	defer d.Close()

	in := make([]byte, inHeaderLen+initInLen)
	header(in, opInit, 1, 0)
	binary.LittleEndian.PutUint32(in[inHeaderLen:], 7)
	binary.LittleEndian.PutUint32(in[inHeaderLen+4:], 36)
	binary.LittleEndian.PutUint32(in[inHeaderLen+8:], 128<<10)
	out := make([]byte, outHeaderLen+initOutLen)
	if _, err := d.RoundTrip(ctx, [][]byte{in}, [][]byte{out}); err != nil {
		return fmt.Errorf("FUSE_INIT: %w", err)
	}
	if e := int32(binary.LittleEndian.Uint32(out[4:])); e != 0 {
		return fmt.Errorf("FUSE_INIT: error %d", e)
	}

	in = make([]byte, inHeaderLen+getattrInLen)
	out = make([]byte, outHeaderLen+attrOutLen)
	ins, outs := [][]byte{in}, [][]byte{out}
	ds := make([]time.Duration, 0, n)
	for i := range n + n/10 {
		header(in, opGetattr, uint64(i+2), rootID)
		start := time.Now()
		if _, err := d.RoundTrip(ctx, ins, outs); err != nil {
			return fmt.Errorf("GETATTR %d: %w", i, err)
		}
		el := time.Since(start)
		if e := int32(binary.LittleEndian.Uint32(out[4:])); e != 0 {
			return fmt.Errorf("GETATTR: error %d", e)
		}
		if i >= n/10 { // warm-up excluded
			ds = append(ds, el)
		}
	}
	report("driver.RoundTrip GETATTR "+name, ds)
	return nil
}

func benchFS(ctx context.Context, tag string, n int, profile string) error {
	fsys, err := govirtiofs.Open(ctx, tag, govirtiofs.Options{Cache: govirtiofs.CacheNone})
	if err != nil {
		return err
	}
	defer fsys.Close()
	if err := fsys.WriteFile("rtbench.txt", []byte("rtbench\n"), 0o644); err != nil {
		return err
	}
	var prof bytes.Buffer
	if profile != "" {
		if err := pprof.StartCPUProfile(&prof); err != nil {
			return err
		}
	}
	for _, name := range []string{"rtbench.txt", "."} {
		ds := make([]time.Duration, 0, n)
		for i := range n + n/10 {
			start := time.Now()
			if _, err := fsys.Stat(name); err != nil {
				return err
			}
			if i >= n/10 {
				ds = append(ds, time.Since(start))
			}
		}
		report(fmt.Sprintf("FS.Stat(%q) cache=none", name), ds)
	}
	if profile != "" {
		pprof.StopCPUProfile()
		if err := fsys.WriteFile(profile, prof.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Printf("rtbench: wrote the CPU profile to %s on the share\n", profile)
	}
	return nil
}
