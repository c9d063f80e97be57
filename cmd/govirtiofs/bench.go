package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/govirtiofs/govirtiofs/bench"
)

func init() {
	commands["bench"] = command{summary: "benchmark govirtiofs against the kernel's virtiofs and 9p", run: benchCmd}
}

const benchUsage = `usage: govirtiofs bench [flags]

Prepares a host directory, measures govirtiofs over vhost-user and package os on the host, then
boots one VM with six devices on that directory: a vhost-user-fs-pci each for govirtiofs with
cache none, auto and always, one for priming, one for the kernel's virtiofs, and a virtio-9p-pci
for the kernel's 9p (cache none, loose, mmap). The guest runs every round of every workload on the
seven guest clients in turns, after a priming FS read the round's file set once, unmeasured. Every virtiofsd (cache=auto) gets the same -virtiofsd-arg arguments. The
round-trip target compares the getattr workload (fstat of an open file, one GETATTR each) of
govirtiofs cache none in the guest with host-vhostuser's, which runs it with cache none too. Writes
results.md, results.json, results.svg, records.jsonl and console.log into -o. Run it from inside
the govirtiofs source tree, as root.

flags:
`

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, verbose, code := parseBench(args, stderr)
	if cfg == nil {
		return code
	}
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	cfg.Log = slog.New(&progressHandler{w: stderr, level: level, mu: new(sync.Mutex)})
	cfg.Progress = stdout
	t0 := time.Now()
	rep, err := bench.Harness(ctx, *cfg)
	if rep != nil {
		fmt.Fprintf(stdout, "bench: %d figures in %v; see %s/%s\n", len(rep.Medians), time.Since(t0).Round(time.Second), cfg.OutDir, bench.ResultsMarkdown)
	}
	if err != nil {
		fmt.Fprintf(stderr, "govirtiofs bench: %v\n", err)
		if ctx.Err() != nil {
			return 130
		}
		return 1
	}
	return 0
}

// parseBench parses bench's flags. It returns the configuration, or nil and the exit code (0
// after -h).
func parseBench(args []string, stderr io.Writer) (*bench.HarnessConfig, bool, int) {
	fl := flag.NewFlagSet("bench", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() { fmt.Fprint(stderr, benchUsage); fl.PrintDefaults() }
	var cfg bench.HarnessConfig
	var workloads string
	var verbose bool
	fl.StringVar(&cfg.OutDir, "o", "bench-results", "output `dir`ectory")
	fl.IntVar(&cfg.Rounds, "rounds", 0, "rounds per client and workload (default 5, 1 with -quick)")
	fl.BoolVar(&cfg.Quick, "quick", false, "small sizes for a smoke run: 100 files, 4 MiB file, 1 round")
	fl.StringVar(&cfg.DataDir, "data", "", "shared `dir`ectory to prepare and use (default: in the cache directory)")
	fl.StringVar(&workloads, "workloads", "", "comma-separated `names` of the workloads to run (default all)")
	fl.BoolVar(&cfg.SkipHost, "skip-host", false, "do not measure the host clients")
	fl.BoolVar(&cfg.SkipVM, "skip-vm", false, "do not boot the VM")
	fl.BoolVar(&cfg.Unpinned, "unpinned", false, "leave QEMU, virtiofsd and the harness where the host's scheduler puts them for the round-trip workload too (default: getattr runs with client and servers on one host CPU, servers at SCHED_FIFO, on both sides; see results.md)")
	fl.IntVar(&cfg.CPUs, "cpus", 1, "number of vCPUs")
	fl.IntVar(&cfg.MemoryMiB, "mem", bench.DefaultMemoryMiB, "guest memory in `MiB`")
	fl.StringVar(&cfg.CPUProfileDir, "cpuprofile", "", "write a CPU profile of every govirtiofs measurement in the guest into `dir` (for go tool pprof)")
	fl.Func("virtiofsd-arg", "append `arg` to every virtiofsd's command line (repeatable), e.g. --thread-pool-size=0", func(s string) error {
		cfg.VirtiofsdArgs = append(cfg.VirtiofsdArgs, s)
		return nil
	})
	fl.DurationVar(&cfg.Timeout, "timeout", 0, "kill the VM after this `duration` (default from the sizes and rounds)")
	fl.BoolVar(&verbose, "v", false, "debug messages on stderr")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, false, 0
		}
		return nil, false, 2
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "govirtiofs bench: unexpected arguments %q\n", fl.Args())
		return nil, false, 2
	}
	if workloads != "" {
		cfg.Workloads = strings.Split(workloads, ",")
	}
	return &cfg, verbose, 0
}
