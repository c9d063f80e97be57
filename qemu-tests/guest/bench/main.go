//go:build linux

// Command bench is the guest half of "govirtiofs bench" (package bench): the whole guest part of
// a benchmark run, in one boot. The VM has five vhost-user-fs-pci devices on the same prepared
// host directory, each with its own virtiofsd (same options for all): one per govirtiofs cache
// mode (tags bench.GovirtiofsTags), one for priming (bench.PrimeTag) and one for the kernel's
// virtiofs (bench.KernelVirtiofsTag); and a virtio-9p-pci device (mount tag -9p-tag). No virtio
// module is loaded at boot.
//
// Set-up (devices.go): it reads each virtio-fs device's tag, writes a driver name that does not
// exist into driver_override of the four userspace devices so that virtio_pci leaves them alone,
// loads the baseline modules (-modules, in order; virtio_pci then binds the kernel's virtio-fs
// device and the 9p device), and opens the four govirtiofs FSes, each once for the whole run.
//
// Then bench.Run runs -rounds rounds of every workload on the seven guest clients in turns
// (govirtiofs none, auto, always; kernel virtiofs; 9p cache=none, loose, mmap), the first client
// rotating from round to round, after the priming FS read the round's file set
// (bench.RunConfig.Prime). The kernel clients mount afresh for each measurement. Every
// measurement is printed as a bench.RecordPrefix line for the host to collect.
//
// With -cpuprofile DIR it takes a CPU profile of the timed pass of every govirtiofs measurement,
// keeps them in memory, and at the end writes them through the govirtiofs-none FS into DIR on
// the share (<client>-<workload>-r<round>.pprof), where the host picks them up.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/govirtiofs/govirtiofs"
	"github.com/govirtiofs/govirtiofs/bench"
)

func main() {
	rounds := flag.Int("rounds", 1, "rounds: each picks its own file sets and first client")
	tag9p := flag.String("9p-tag", bench.NinePTag, "virtio-9p mount tag")
	sizesJSON := flag.String("sizes", "", "bench.Sizes as JSON (default: bench.DefaultSizes)")
	modules := flag.String("modules", "", "comma-separated kernel modules to load for the kernel clients")
	only := flag.String("workloads", "", "comma-separated workloads to run (default all)")
	mnt := flag.String("mnt", "/mnt/bench", "directory below which kernel clients are mounted")
	profDir := flag.String("cpuprofile", "", "directory on the share for CPU profiles of the govirtiofs measurements")
	flag.Parse()
	if err := run(*rounds, *tag9p, *sizesJSON, *modules, *only, *mnt, *profDir); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(rounds int, tag9p, sizesJSON, modules, only, mnt, profDir string) error {
	sizes := bench.DefaultSizes()
	if sizesJSON != "" {
		if err := json.Unmarshal([]byte(sizesJSON), &sizes); err != nil {
			return fmt.Errorf("-sizes: %w", err)
		}
	}
	workloads := bench.Workloads()
	if only != "" {
		workloads = nil
		for _, name := range strings.Split(only, ",") {
			w, ok := bench.WorkloadByName(name)
			if !ok {
				return fmt.Errorf("unknown workload %q", name)
			}
			workloads = append(workloads, w)
		}
	}
	ctx := context.Background()
	t0 := time.Now()
	devs, err := probeTags()
	if err != nil {
		return err
	}
	var userspace []device // the govirtiofs clients' devices, in address order
	for _, d := range devs {
		fmt.Printf("bench: virtio-fs device %s: tag %q\n", d.addr, d.tag)
		if d.tag == bench.KernelVirtiofsTag {
			continue
		}
		if err := keepFromKernel(d.addr); err != nil {
			return err
		}
		userspace = append(userspace, d)
	}
	if modules != "" {
		if err := bench.LoadModules(strings.Split(modules, ",")); err != nil {
			return err
		}
	}
	rts := map[string]*bench.RoundTrips{}
	fss, err := openAll(ctx, userspace, rts)
	defer func() {
		for _, fsys := range fss {
			fsys.Close()
		}
	}()
	if err != nil {
		return err
	}
	fmt.Printf("bench: set-up (tags, modules, %d govirtiofs.Open) took %v\n", len(fss), time.Since(t0).Round(time.Millisecond))
	if busy, err := idleCPU(time.Second); err == nil {
		// The open FSes' goroutines must sleep while idle, or they would slow every other client.
		fmt.Printf("bench: CPU used by this process while idle with %d FSes open: %.1f%% of one CPU\n", len(fss), 100*busy)
	}

	cfg := bench.RunConfig{
		Workloads: workloads, Sizes: sizes, Rounds: rounds, MinWarmTime: bench.WarmTime,
		Emit:     func(r bench.Record) { fmt.Println(bench.FormatRecord(r)) },
		Progress: func(s string) { fmt.Println("bench: " + s) },
	}
	for _, name := range bench.GovirtiofsClients {
		cfg.Clients = append(cfg.Clients, bench.GovirtiofsShared(name, fss[name], rts[name]))
	}
	prime := bench.GovirtiofsShared(primeClient, fss[primeClient], nil)
	cfg.Prime = &prime
	cfg.Clients = append(cfg.Clients, bench.KernelVirtiofsClient(bench.KernelVirtiofsTag, mnt))
	for _, c := range []string{"none", "loose", "mmap"} {
		cfg.Clients = append(cfg.Clients, bench.NinePClient(c, tag9p, mnt))
	}
	profiles := map[string]*bytes.Buffer{} // by file name
	if profDir != "" {
		cfg.Timed = func(r bench.Record) func() {
			if fss[r.Client] == nil {
				return func() {}
			}
			b := new(bytes.Buffer)
			if err := pprof.StartCPUProfile(b); err != nil {
				fmt.Printf("bench: CPU profile: %v\n", err)
				return func() {}
			}
			return func() {
				pprof.StopCPUProfile()
				profiles[fmt.Sprintf("%s-%s-r%d.pprof", r.Client, r.Workload, r.Round)] = b
			}
		}
	}
	t1 := time.Now()
	fmt.Printf("bench: %d rounds x %d workloads x %d clients\n", rounds, len(workloads), len(cfg.Clients))
	// The round-trip workloads come last, after the host has placed QEMU and its servers for
	// them (bench.PlaceLine); the others run as the host's scheduler places things.
	whole, roundTrip := bench.SplitRoundTrip(workloads)
	cfg.Workloads = whole
	if len(whole) > 0 {
		err = bench.Run(ctx, cfg)
	}
	if err == nil && len(roundTrip) > 0 {
		awaitPlacement(fss[bench.ClientGovirtiofsNone])
		cfg.Workloads = roundTrip
		err = bench.Run(ctx, cfg)
	}
	if perr := writeProfiles(fss[bench.ClientGovirtiofsNone], profDir, profiles); err == nil {
		err = perr
	}
	for name, fsys := range fss {
		if cerr := fsys.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("closing %s: %w", name, cerr)
		}
		delete(fss, name)
	}
	fmt.Printf("bench: measurements took %v\n", time.Since(t1).Round(time.Millisecond))
	return err
}

// awaitPlacement asks the host to place QEMU and its servers for the round-trip workloads
// (bench.PlaceLine) and waits until the host acknowledges it by creating bench.PlaceAck on the
// share, which fsys (cache none: every Stat is a LOOKUP) sees. Without an answer within
// placeWait it goes on unplaced, and says so: the host's report tells how it was placed.
func awaitPlacement(fsys *govirtiofs.FS) {
	fmt.Println(bench.PlaceLine)
	deadline := time.Now().Add(placeWait)
	for time.Now().Before(deadline) {
		if _, err := fsys.Stat(bench.PlaceAck); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Printf("bench: no placement acknowledged within %v; the round trips run as placed so far\n", placeWait)
}

// placeWait bounds awaitPlacement's wait.
const placeWait = 60 * time.Second

// idleCPU sleeps for d and returns the CPU time this process used meanwhile, as a fraction of d.
//
// Errors: getrusage's.
func idleCPU(d time.Duration) (float64, error) {
	var a, b syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &a); err != nil {
		return 0, err
	}
	time.Sleep(d)
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &b); err != nil {
		return 0, err
	}
	used := time.Duration(b.Utime.Nano()+b.Stime.Nano()-a.Utime.Nano()-a.Stime.Nano()) * time.Nanosecond
	return used.Seconds() / d.Seconds(), nil
}

// writeProfiles writes the profiles through fsys into dir.
//
// Errors: the first failing file operation.
func writeProfiles(fsys *govirtiofs.FS, dir string, profiles map[string]*bytes.Buffer) error {
	if len(profiles) == 0 {
		return nil
	}
	if err := fsys.MkdirAll(dir, 0o777); err != nil {
		return fmt.Errorf("CPU profiles: %w", err)
	}
	for name, b := range profiles {
		if err := fsys.WriteFile(path.Join(dir, name), b.Bytes(), 0o666); err != nil {
			return fmt.Errorf("CPU profiles: %w", err)
		}
	}
	fmt.Printf("bench: wrote %d CPU profiles into %s on the share\n", len(profiles), dir)
	return nil
}

// primeClient names the priming FS (bench.PrimeTag) among the FSes of openAll.
const primeClient = "prime"

// openAll opens the govirtiofs FS of every client in bench.GovirtiofsTags, and the priming FS on
// bench.PrimeTag; devs are their devices in address order. The FSes are opened from the highest
// address down: govirtiofs.Open brings up (and so resets) every unbound virtio-fs device it meets,
// in address order, until one has the tag, so each Open must find its device before it reaches
// one that is already open. It returns the FSes opened so far, by client name, also on error.
//
// Each client's FS reports its GETATTR round trips to rts[name], set here (bench.RoundTrips).
func openAll(ctx context.Context, devs []device, rts map[string]*bench.RoundTrips) (map[string]*govirtiofs.FS, error) {
	byTag := map[string]string{bench.PrimeTag: primeClient}
	for name, tag := range bench.GovirtiofsTags {
		byTag[tag] = name
	}
	fss := map[string]*govirtiofs.FS{}
	for i := len(devs) - 1; i >= 0; i-- {
		name, ok := byTag[devs[i].tag]
		if !ok {
			return fss, fmt.Errorf("virtio-fs device %s has tag %q, which no client uses", devs[i].addr, devs[i].tag)
		}
		// The priming FS reads each set once: cache none, so that it keeps none of their data.
		opts := govirtiofs.Options{Cache: govirtiofs.CacheNone}
		var rt *bench.RoundTrips
		if name != primeClient {
			mode, err := govirtiofs.ParseCacheMode(strings.TrimPrefix(name, "govirtiofs-"))
			if err != nil {
				return fss, err
			}
			rt = bench.NewRoundTrips(bench.OpGetattr)
			opts = govirtiofs.Options{Cache: mode, ZeroCopy: true, OnRoundTrip: rt.Observe}
		}
		t := time.Now()
		fsys, err := govirtiofs.Open(ctx, devs[i].tag, opts)
		if err != nil {
			return fss, fmt.Errorf("%s: %w", name, err)
		}
		fss[name] = fsys
		if rt != nil {
			rts[name] = rt
		}
		fmt.Printf("bench: %s: govirtiofs.Open(%q) on %s took %v\n", name, devs[i].tag, devs[i].addr, time.Since(t).Round(time.Millisecond))
	}
	for tag, name := range byTag {
		if fss[name] == nil {
			return fss, fmt.Errorf("no virtio-fs device with tag %q for %s", tag, name)
		}
	}
	return fss, nil
}
