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
	if c.cold != "" && c.coldOp != "stat" && c.coldOp != "orc" {
		return fmt.Errorf("-coldop %q: want stat or orc", c.coldOp)
	}
	mode, err := govirtiofs.ParseCacheMode(c.cache)
	if err != nil {
		return err
	}
	var rts tally
	opts := govirtiofs.Options{Cache: mode, DentryCacheSize: c.dentries, ZeroCopy: c.zeroCopy}
	if c.listings > 1 || c.cold != "" {
		opts.OnRoundTrip = rts.observe
	}
	fsys, err := govirtiofs.Open(context.Background(), c.tag, opts)
	if err != nil {
		return err
	}
	defer fsys.Close()
	var prof bytes.Buffer
	if c.profile != "" {
		if err := pprof.StartCPUProfile(&prof); err != nil {
			return err
		}
	}
	if c.cold != "" {
		if err := coldPasses(fsys, strings.Split(c.cold, ","), c.coldOp, c.files, &rts); err != nil {
			return err
		}
	} else if c.files > 0 {
		names := fileNames(c.statDir, c.files)
		for _, n := range names {
			if _, err := fsys.Stat(n); err != nil {
				return err
			}
		}
		for r := range c.rounds {
			t0 := time.Now()
			for _, n := range names {
				if _, err := fsys.Stat(n); err != nil {
					return err
				}
			}
			d := time.Since(t0)
			fmt.Printf("metabench: stat-warm[%d] %.0f ops/s (%.2f us/op)\n", r, float64(c.files)/d.Seconds(), float64(d.Microseconds())/float64(c.files))
		}
	}
	if c.dirs != "" {
		for _, dir := range strings.Split(c.dirs, ",") {
			if err := listings(fsys, dir, c.listings, &rts); err != nil {
				return err
			}
		}
	}
	if c.profile != "" {
		pprof.StopCPUProfile()
		if err := fsys.WriteFile(c.profile, prof.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// fileNames returns the names of the first n files below dir: f00000, f00001, ...
func fileNames(dir string, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s/f%05d", dir, i)
	}
	return names
}

// tally sums the round trips of each opcode and their time as
// Options.OnRoundTrip reports them; several goroutines may make requests.
type tally struct {
	mu  sync.Mutex
	sum [64]time.Duration // guarded by mu
	n   [64]int           // guarded by mu
}

// observe is the FS's Options.OnRoundTrip.
func (t *tally) observe(op uint32, d time.Duration) {
	if op < 64 {
		t.mu.Lock()
		t.sum[op] += d
		t.n[op]++
		t.mu.Unlock()
	}
}

func (t *tally) reset() {
	t.mu.Lock()
	t.sum, t.n = [64]time.Duration{}, [64]int{}
	t.mu.Unlock()
}

// each calls f with every opcode that made round trips since reset, their
// number and total time, in opcode order.
func (t *tally) each(f func(op, n int, sum time.Duration)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for op, n := range t.n {
		if n > 0 {
			f(op, n, t.sum[op])
		}
	}
}

// usage is what the process used up to a moment: page faults, and the Go
// runtime's allocations and collections.
type usage struct {
	faults         int64
	bytes, mallocs uint64
	gcs            uint32
}

func usageNow() usage {
	var ru syscall.Rusage
	var ms runtime.MemStats
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	runtime.ReadMemStats(&ms)
	return usage{faults: ru.Minflt, bytes: ms.TotalAlloc, mallocs: ms.Mallocs, gcs: ms.NumGC}
}

// since returns what was used between u0 and u.
func (u usage) since(u0 usage) usage {
	return usage{faults: u.faults - u0.faults, bytes: u.bytes - u0.bytes, mallocs: u.mallocs - u0.mallocs, gcs: u.gcs - u0.gcs}
}

// listings lists dir n times (at least once) and prints the first
// listing's rate, and for the others the median and best rate and, per
// listing, what they used and their round trips.
func listings(fsys *govirtiofs.FS, dir string, n int, rts *tally) error {
	var ds []time.Duration
	var u0 usage
	for i := range max(n, 1) {
		if i == 1 {
			rts.reset()
			u0 = usageNow()
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
		} else if i == n-1 {
			u := usageNow().since(u0)
			k := int64(n - 1)
			fmt.Printf("metabench: readdir-again[%s] per listing: %d minor faults, %d bytes allocated, %d mallocs, %.2f GCs\n", dir,
				u.faults/k, int64(u.bytes)/k, int64(u.mallocs)/k, float64(u.gcs)/float64(k))
			rts.each(func(op, rn int, sum time.Duration) {
				fmt.Printf("metabench: readdir-again[%s] per listing: opcode %d: %.2f round trips, %v\n", dir, op, float64(rn)/float64(k), (sum / time.Duration(k)).Round(time.Microsecond))
			})
			slices.Sort(ds[1:])
			m := ds[1+(len(ds)-1)/2]
			fmt.Printf("metabench: readdir-again[%s] %.0f entries/s (median of %d listings: %v; best %v)\n", dir, float64(len(ents))/m.Seconds(), len(ds)-1, m.Round(time.Microsecond), ds[1].Round(time.Microsecond))
		}
	}
	return nil
}

// coldPasses makes one pass of op over the files of each of dirs, each
// directory new to fsys, and prints per operation its time, what it used
// and each opcode's round trips, as rts tallies them.
func coldPasses(fsys *govirtiofs.FS, dirs []string, op string, files int, rts *tally) error {
	buf := make([]byte, 1<<16)
	one := func(name string) error {
		if op == "stat" {
			_, err := fsys.Stat(name)
			return err
		}
		f, err := fsys.Open(name) // orc
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
	for _, dir := range dirs {
		names := fileNames(dir, files)
		rts.reset()
		u0 := usageNow()
		t0 := time.Now()
		for _, n := range names {
			if err := one(n); err != nil {
				return err
			}
		}
		d := time.Since(t0)
		u := usageNow().since(u0)
		k := float64(files)
		var rt time.Duration
		var ops []string
		rts.each(func(o, n int, sum time.Duration) {
			rt += sum
			ops = append(ops, fmt.Sprintf("op%d %.2fx %.1fus", o, float64(n)/k, float64(sum.Nanoseconds())/1e3/float64(n)))
		})
		per := func(x time.Duration) float64 { return float64(x.Nanoseconds()) / 1e3 / k }
		fmt.Printf("metabench: cold-%s[%s] %.0f ops/s: per op %.1f us, round trips %.1f us, rest %.1f us; %.2f faults, %.0f bytes, %.1f mallocs, %.3f GCs; %s\n",
			op, dir, k/d.Seconds(), per(d), per(rt), per(d-rt),
			float64(u.faults)/k, float64(u.bytes)/k, float64(u.mallocs)/k, float64(u.gcs)/k,
			strings.Join(ops, ", "))
	}
	return nil
}
