//go:build linux

// Command metabench measures the guest CPU cost of cached metadata
// operations and of directory listing through govirtiofs, the parts of the
// bench's stat-warm and readdir workloads that the client decides:
//
//   - stat: FS.Stat of the -files files below -statdir, once unmeasured,
//     then -rounds measured passes (every name and attribute cached);
//   - readdir: FS.ReadDir of each directory named by -dirs, each listed for
//     the first time by this client, then -listings-1 more times (each
//     listing opens the directory anew, so all its entries come from the
//     server again): the median and best rate of those, and per listing
//     the page faults, allocations and garbage collections, and each
//     opcode's round trips and their time as the driver times them
//     (Options.OnRoundTrip: publish to reply seen, which under one vCPU
//     includes waiting for the client to poll);
//   - cold: for each directory named by -cold, one pass of -coldop (stat,
//     or open+read+close) over its -files files, which this client has
//     never looked up: the rate, and per operation the same figures as for
//     the listings, so that the client's CPU shows as the time not spent
//     in round trips (the bench's stat-cold and open-read-close).
//
// The host prepares the share (the stat files and the directories). Each
// result line is "metabench: NAME RATE UNIT". With -cpuprofile NAME it
// writes a CPU profile of both phases to NAME on the share (through the FS
// itself), for go tool pprof on the host.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/govirtiofs/govirtiofs"
)

// config is what the flags say.
type config struct {
	tag, cache, statDir string
	files, rounds       int
	dirs                string
	listings            int
	cold, coldOp        string
	profile             string
	zeroCopy            bool
	dentries            int
}

func main() {
	var c config
	flag.StringVar(&c.tag, "tag", os.Getenv("GOVIRTIOFS_TAG"), "virtio-fs tag")
	flag.StringVar(&c.cache, "cache", "always", "cache mode: none, auto or always")
	flag.StringVar(&c.statDir, "statdir", "sets/r0-stat-warm/small", "directory of the files to stat")
	flag.IntVar(&c.files, "files", 1000, "files to stat: f00000, f00001, ...")
	flag.IntVar(&c.rounds, "rounds", 5, "measured stat passes")
	flag.StringVar(&c.dirs, "dirs", "", "comma-separated directories to list")
	flag.IntVar(&c.listings, "listings", 1, "listings of each directory in -dirs")
	flag.StringVar(&c.cold, "cold", "", "comma-separated directories for one cold pass each")
	flag.StringVar(&c.coldOp, "coldop", "stat", "the cold pass's operation: stat or orc (open+read+close)")
	flag.StringVar(&c.profile, "cpuprofile", "", "write a CPU profile to this `name` on the share")
	flag.BoolVar(&c.zeroCopy, "zerocopy", true, "Options.ZeroCopy, as the bench's guest clients")
	flag.IntVar(&c.dentries, "dentries", 0, "Options.DentryCacheSize (0: the default)")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintf(os.Stderr, "metabench: %v\n", err)
		os.Exit(1)
	}
}

func run(c config) error {
	tag, cache, statDir, files, rounds, dirs, listings, cold, profile := c.tag, c.cache, c.statDir, c.files, c.rounds, c.dirs, c.listings, c.cold, c.profile
	if cold != "" && c.coldOp != "stat" && c.coldOp != "orc" {
		return fmt.Errorf("-coldop %q: want stat or orc", c.coldOp)
	}
	mode, err := govirtiofs.ParseCacheMode(cache)
	if err != nil {
		return err
	}
	// The round trips of each opcode and their time, summed for the
	// repeated listings. Several goroutines may make requests.
	var rtMu sync.Mutex
	var rtSum [64]time.Duration
	var rtN [64]int
	opts := govirtiofs.Options{Cache: mode, DentryCacheSize: c.dentries, ZeroCopy: c.zeroCopy}
	if listings > 1 || cold != "" {
		opts.OnRoundTrip = func(op uint32, d time.Duration) {
			if op < 64 {
				rtMu.Lock()
				rtSum[op] += d
				rtN[op]++
				rtMu.Unlock()
			}
		}
	}
	fsys, err := govirtiofs.Open(context.Background(), tag, opts)
	if err != nil {
		return err
	}
	defer fsys.Close()
	var prof bytes.Buffer
	if profile != "" {
		if err := pprof.StartCPUProfile(&prof); err != nil {
			return err
		}
	}
	names := make([]string, files)
	for i := range names {
		names[i] = fmt.Sprintf("%s/f%05d", statDir, i)
	}
	if cold != "" {
		if err := coldPasses(fsys, strings.Split(cold, ","), c.coldOp, files, &rtMu, &rtSum, &rtN); err != nil {
			return err
		}
	} else if files > 0 {
		for _, n := range names {
			if _, err := fsys.Stat(n); err != nil {
				return err
			}
		}
		for r := range rounds {
			t0 := time.Now()
			for _, n := range names {
				if _, err := fsys.Stat(n); err != nil {
					return err
				}
			}
			d := time.Since(t0)
			fmt.Printf("metabench: stat-warm[%d] %.0f ops/s (%.2f us/op)\n", r, float64(files)/d.Seconds(), float64(d.Microseconds())/float64(files))
		}
	}
	if dirs != "" {
		for _, dir := range strings.Split(dirs, ",") {
			var ds []time.Duration
			var ru0, ru1 syscall.Rusage
			var ms0, ms1 runtime.MemStats
			for i := range max(listings, 1) {
				if i == 1 {
					rtMu.Lock()
					rtSum, rtN = [64]time.Duration{}, [64]int{}
					rtMu.Unlock()
					syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
					runtime.ReadMemStats(&ms0)
				}
				t0 := time.Now()
				ents, err := fsys.ReadDir(dir)
				if err != nil {
					return err
				}
				d := time.Since(t0)
				ds = append(ds, d)
				if i == 0 {
					fmt.Printf("metabench: readdir[%s] %.0f entries/s (%d entries, %v)\n", dir, float64(len(ents))/d.Seconds(), len(ents), d.Round(time.Microsecond))
				} else if i == listings-1 {
					syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
					runtime.ReadMemStats(&ms1)
					k := int64(listings - 1)
					fmt.Printf("metabench: readdir-again[%s] per listing: %d minor faults, %d bytes allocated, %d mallocs, %.2f GCs\n", dir,
						(ru1.Minflt-ru0.Minflt)/k, int64(ms1.TotalAlloc-ms0.TotalAlloc)/k, int64(ms1.Mallocs-ms0.Mallocs)/k, float64(ms1.NumGC-ms0.NumGC)/float64(k))
					rtMu.Lock()
					for op := range rtN {
						if rtN[op] > 0 {
							fmt.Printf("metabench: readdir-again[%s] per listing: opcode %d: %.2f round trips, %v\n", dir, op, float64(rtN[op])/float64(k), (rtSum[op] / time.Duration(k)).Round(time.Microsecond))
						}
					}
					rtMu.Unlock()
					slices.Sort(ds[1:])
					m := ds[1+(len(ds)-1)/2]
					fmt.Printf("metabench: readdir-again[%s] %.0f entries/s (median of %d listings: %v; best %v)\n", dir, float64(len(ents))/m.Seconds(), len(ds)-1, m.Round(time.Microsecond), ds[1].Round(time.Microsecond))
				}
			}
		}
	}
	if profile != "" {
		pprof.StopCPUProfile()
		if err := fsys.WriteFile(profile, prof.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// coldPasses makes one pass of op over the files of each of dirs, each
// directory new to fsys, and prints per operation its time, faults,
// allocations and each opcode's round trips (rtSum and rtN, which
// OnRoundTrip fills under rtMu).
func coldPasses(fsys *govirtiofs.FS, dirs []string, op string, files int, rtMu *sync.Mutex, rtSum *[64]time.Duration, rtN *[64]int) error {
	buf := make([]byte, 1<<16)
	one := func(name string) error {
		switch op {
		case "stat":
			_, err := fsys.Stat(name)
			return err
		default: // orc
			f, err := fsys.Open(name)
			if err != nil {
				return err
			}
			for err == nil {
				_, err = f.Read(buf)
			}
			if cerr := f.Close(); err == io.EOF {
				err = cerr
			}
			return err
		}
	}
	for _, dir := range dirs {
		names := make([]string, files)
		for i := range names {
			names[i] = fmt.Sprintf("%s/f%05d", dir, i)
		}
		var ru0, ru1 syscall.Rusage
		var ms0, ms1 runtime.MemStats
		rtMu.Lock()
		*rtSum, *rtN = [64]time.Duration{}, [64]int{}
		rtMu.Unlock()
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		runtime.ReadMemStats(&ms0)
		t0 := time.Now()
		for _, n := range names {
			if err := one(n); err != nil {
				return err
			}
		}
		d := time.Since(t0)
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		runtime.ReadMemStats(&ms1)
		k := float64(files)
		var rt time.Duration
		rtMu.Lock()
		var ops []string
		for o := range rtN {
			if rtN[o] > 0 {
				rt += rtSum[o]
				ops = append(ops, fmt.Sprintf("op%d %.2fx %.1fus", o, float64(rtN[o])/k, float64(rtSum[o].Nanoseconds())/1e3/float64(rtN[o])))
			}
		}
		rtMu.Unlock()
		per := func(x time.Duration) float64 { return float64(x.Nanoseconds()) / 1e3 / k }
		fmt.Printf("metabench: cold-%s[%s] %.0f ops/s: per op %.1f us, round trips %.1f us, rest %.1f us; %.2f faults, %.0f bytes, %.1f mallocs, %.3f GCs; %s\n",
			op, dir, k/d.Seconds(), per(d), per(rt), per(d-rt),
			float64(ru1.Minflt-ru0.Minflt)/k, float64(ms1.TotalAlloc-ms0.TotalAlloc)/k, float64(ms1.Mallocs-ms0.Mallocs)/k, float64(ms1.NumGC-ms0.NumGC)/k,
			strings.Join(ops, ", "))
	}
	return nil
}
