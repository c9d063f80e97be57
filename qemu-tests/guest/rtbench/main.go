//go:build linux

// Command rtbench measures FUSE round trips in the guest, at three levels:
//
//   - micro: what time.Now, runtime.Gosched, an atomic load and a
//     non-blocking receive cost here (under TCG, far more than on a host);
//   - driver: the virtio-fs PCI device brought up with driver.New on its own
//     hugepage memory, FUSE_INIT and then, encoded by hand, each through
//     driver.Device.RoundTrip, for each -spin value: -n notifications of
//     the idle hiprio queue (the MMIO write alone), -n GETATTRs of the root,
//     -n LOOKUPs of one name (warm: virtiofsd has the inode), and one LOOKUP
//     of each of -n names never looked up (cold: virtiofsd opens and stats
//     the file; an untimed FORGET follows each), as the stat-cold benchmark
//     makes them;
//   - fs: govirtiofs.Open with CacheNone, then -n FS.Stat of a file (one
//     LOOKUP each: nothing is trusted) and of the root; then a fresh FS with
//     the default cache mode stats each of the -n files once (stat-cold).
//
// With -phases N the driver level ends with N more GETATTR passes, each
// after a line "rtbench: phase I", a pause and the time of a fixed piece of
// guest work (how fast the vCPU runs then): a host script that reads the
// output can move QEMU's and virtiofsd's threads between host CPUs in the
// pause, and compare placements within one boot.
//
// The -n files are created through the FS before the driver level, under
// rtbench.d/, unless they are there already.
//
// It prints the clocksource first, then one line per measurement,
// "rtbench: WHAT p50=... p90=... p99=... min=... n=N".
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
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/govirtiofs/govirtiofs"
	"github.com/govirtiofs/govirtiofs/driver"
	"github.com/govirtiofs/govirtiofs/virtio/dmamem"
	"github.com/govirtiofs/govirtiofs/virtio/pci"
)

// FUSE wire constants (include/uapi/linux/fuse.h, 7.36).
const (
	opLookup     = 1
	opForget     = 2
	opGetattr    = 3
	opInit       = 26
	inHeaderLen  = 40
	outHeaderLen = 16
	initInLen    = 64
	initOutLen   = 64
	getattrInLen = 16
	attrOutLen   = 104
	entryOutLen  = 128
	forgetInLen  = 8
	filesDir     = "rtbench.d"
	rootID       = 1
	dmaPages     = 2
)

func main() {
	n := flag.Int("n", 2000, "round trips per measurement")
	tag := flag.String("tag", os.Getenv("GOVIRTIOFS_TAG"), "virtio-fs tag")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the fs phase to this `name` on the share")
	level := flag.String("level", "micro,driver,fs", "which measurements: a comma-separated list of micro, driver and fs")
	spins := flag.String("spin", "default", "comma-separated driver.Options.Spin values for the driver level (default: DefaultSpin; -1ns: park at once)")
	phases := flag.Int("phases", 0, "at the driver level, after the other measurements, this many more GETATTR passes, each announced with a line \"rtbench: phase I\" and a pause of -phase-pause, so that a host script can change the host's thread placement in between")
	phasePause := flag.Duration("phase-pause", time.Second, "the pause after each phase line")
	eventIdx := flag.Bool("eventidx", false, "negotiate EVENT_IDX at the driver level (virtiofsd 7.2 may die on a later bring-up: see driver.Options.EventIdx)")
	flag.Parse()
	ctx := context.Background()
	// Under TCG the clocksource decides what time.Now costs: the TSC is
	// read in the vDSO, hpet and acpi_pm take a system call and an
	// emulated device read.
	if cs, err := os.ReadFile("/sys/devices/system/clocksource/clocksource0/current_clocksource"); err == nil {
		fmt.Printf("rtbench: clocksource %s\n", bytes.TrimSpace(cs))
	}
	if bytes.Contains([]byte(*level), []byte("micro")) {
		micro()
	}
	if err := makeFiles(ctx, *tag, *n); err != nil {
		fmt.Fprintf(os.Stderr, "rtbench: creating the files: %v\n", err)
		os.Exit(1)
	}
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
			if err := benchDriver(ctx, *n, fmt.Sprintf("spin=%s event_idx=%v", sp, *eventIdx), opts, *phases, *phasePause); err != nil {
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

// micro prints what the primitives of a polling loop cost here: under TCG
// they are far from their cost on the host.
func micro() {
	const n = 20000
	var sink atomic.Uint32
	ch := make(chan struct{})
	for _, m := range []struct {
		name string
		f    func()
	}{
		{"time.Now", func() { _ = time.Now() }},
		{"runtime.Gosched", runtime.Gosched},
		{"atomic.Load", func() { sink.Load() }},
		{"select-default", func() {
			select {
			case <-ch:
			default:
			}
		}},
	} {
		start := time.Now()
		for range n {
			m.f()
		}
		fmt.Printf("rtbench: micro %s %v\n", m.name, (time.Since(start) / n).Round(time.Nanosecond))
	}
}

// cpuLoop returns what a fixed piece of guest work (a multiply-xorshift
// chain, no memory traffic) costs now: under TCG it shows how fast the vCPU
// thread runs at the moment, apart from any device or wake-up latency.
func cpuLoop() time.Duration {
	const n = 200000
	x := uint64(time.Now().UnixNano())
	start := time.Now()
	for range n {
		x ^= x >> 7
		x *= 0x9e3779b97f4a7c15
	}
	el := time.Since(start)
	sinkLoop.Store(x)
	return (el * 1000 / n).Round(time.Nanosecond) // per 1000 iterations
}

var sinkLoop atomic.Uint64

// report prints the percentiles of ds.
func report(name string, ds []time.Duration) {
	slices.Sort(ds)
	p := func(q float64) time.Duration { return ds[int(q*float64(len(ds)-1))] }
	fmt.Printf("rtbench: %s p50=%v p90=%v p99=%v min=%v n=%d\n", name,
		p(0.5).Round(100*time.Nanosecond), p(0.9).Round(100*time.Nanosecond),
		p(0.99).Round(100*time.Nanosecond), ds[0], len(ds))
}

// fileName is the name of file i under filesDir.
func fileName(i int) string { return fmt.Sprintf("f%05d", i) }

// makeFiles creates n empty files under filesDir unless the last exists.
func makeFiles(ctx context.Context, tag string, n int) error {
	fsys, err := govirtiofs.Open(ctx, tag, govirtiofs.Options{})
	if err != nil {
		return err
	}
	defer fsys.Close()
	if _, err := fsys.Stat(filesDir + "/" + fileName(n-1)); err == nil {
		return nil
	}
	if err := fsys.MkdirAll(filesDir, 0o755); err != nil {
		return err
	}
	for i := range n {
		if err := fsys.WriteFile(filesDir+"/"+fileName(i), nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func header(b []byte, opcode uint32, unique, nodeid uint64) {
	binary.LittleEndian.PutUint32(b[0:], uint32(len(b)))
	binary.LittleEndian.PutUint32(b[4:], opcode)
	binary.LittleEndian.PutUint64(b[8:], unique)
	binary.LittleEndian.PutUint64(b[16:], nodeid)
}

func benchDriver(ctx context.Context, n int, name string, opts driver.Options, phases int, pause time.Duration) error {
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

	// A notification of the idle hiprio queue: the MMIO write, QEMU's
	// eventfd write and virtiofsd finding nothing new, without a request.
	ns := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if err := t.Notify(0); err != nil {
			return fmt.Errorf("notify: %w", err)
		}
		ns = append(ns, time.Since(start))
	}
	report("Transport.Notify(hiprio, idle) "+name, ns)

	unique := uint64(1)
	// rt sends one request and returns its round-trip time and reply.
	rt := func(opcode uint32, nodeid uint64, arg []byte, outLen int) (time.Duration, []byte, error) {
		unique++
		in := make([]byte, inHeaderLen+len(arg))
		header(in, opcode, unique, nodeid)
		copy(in[inHeaderLen:], arg)
		out := make([]byte, outHeaderLen+outLen)
		start := time.Now()
		if _, err := d.RoundTrip(ctx, [][]byte{in}, [][]byte{out}); err != nil {
			return 0, nil, fmt.Errorf("opcode %d: %w", opcode, err)
		}
		el := time.Since(start)
		if e := int32(binary.LittleEndian.Uint32(out[4:])); e != 0 {
			return 0, nil, fmt.Errorf("opcode %d: error %d", opcode, e)
		}
		return el, out[outHeaderLen:], nil
	}
	// measure runs n+n/10 requests from next, the first n/10 as warm-up.
	measure := func(what string, next func(i int) (time.Duration, error)) error {
		ds := make([]time.Duration, 0, n)
		for i := range n + n/10 {
			el, err := next(i)
			if err != nil {
				return fmt.Errorf("%s %d: %w", what, i, err)
			}
			if i >= n/10 {
				ds = append(ds, el)
			}
		}
		report("driver.RoundTrip "+what+" "+name, ds)
		return nil
	}
	if err := measure("GETATTR", func(int) (time.Duration, error) {
		el, _, err := rt(opGetattr, rootID, make([]byte, getattrInLen), attrOutLen)
		return el, err
	}); err != nil {
		return err
	}
	_, entry, err := rt(opLookup, rootID, []byte(filesDir+"\x00"), entryOutLen)
	if err != nil {
		return fmt.Errorf("LOOKUP %s: %w", filesDir, err)
	}
	dir := binary.LittleEndian.Uint64(entry)
	warm := []byte(fileName(0) + "\x00")
	if err := measure("LOOKUP-warm", func(int) (time.Duration, error) {
		el, _, err := rt(opLookup, dir, warm, entryOutLen)
		return el, err
	}); err != nil {
		return err
	}
	// Each name once, then forgotten: virtiofsd drops the inode, and the
	// next pass (another -spin) finds the names cold again.
	if err := measure("LOOKUP-cold", func(i int) (time.Duration, error) {
		el, entry, err := rt(opLookup, dir, []byte(fileName(i%n)+"\x00"), entryOutLen)
		if err != nil {
			return 0, err
		}
		f := make([]byte, inHeaderLen+forgetInLen)
		unique++
		header(f, opForget, unique, binary.LittleEndian.Uint64(entry))
		binary.LittleEndian.PutUint64(f[inHeaderLen:], 1)
		return el, d.SendHiprio(ctx, [][]byte{f})
	}); err != nil {
		return err
	}
	for i := range phases {
		fmt.Printf("rtbench: phase %d\n", i)
		time.Sleep(pause)
		fmt.Printf("rtbench: cpu-loop phase=%d %v\n", i, cpuLoop())
		if err := measure(fmt.Sprintf("GETATTR phase=%d", i), func(int) (time.Duration, error) {
			el, _, err := rt(opGetattr, rootID, make([]byte, getattrInLen), attrOutLen)
			return el, err
		}); err != nil {
			return err
		}
	}
	return nil
}

func benchFS(ctx context.Context, tag string, n int, profile string) error {
	fsys, err := govirtiofs.Open(ctx, tag, govirtiofs.Options{Cache: govirtiofs.CacheNone})
	if err != nil {
		return err
	}
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
	// One FS at a time: a second Open resets the device under the first.
	if err := fsys.Close(); err != nil {
		return err
	}

	// stat-cold: a fresh FS in the default cache mode, each file once.
	cold, err := govirtiofs.Open(ctx, tag, govirtiofs.Options{})
	if err != nil {
		return err
	}
	defer cold.Close()
	ds := make([]time.Duration, 0, n)
	start := time.Now()
	for i := range n {
		s := time.Now()
		if _, err := cold.Stat(filesDir + "/" + fileName(i)); err != nil {
			return err
		}
		ds = append(ds, time.Since(s))
	}
	total := time.Since(start)
	report("FS.Stat cold cache=auto", ds)
	fmt.Printf("rtbench: stat-cold %.0f ops/s\n", float64(n)/total.Seconds())
	return cold.Close()
}
