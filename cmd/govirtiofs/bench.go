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
per round boots four VMs, each with a vhost-user-fs-pci and a virtio-9p-pci device on that
directory: one each for govirtiofs with cache none, auto and always, and one for the kernel's
virtiofs and 9p (cache none, loose, mmap). Writes results.md, results.json, results.svg,
records.jsonl and console.log into -o. Run it from inside the govirtiofs source tree, as root.

flags:
`

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("bench", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() { fmt.Fprint(stderr, benchUsage); fl.PrintDefaults() }
	var cfg bench.HarnessConfig
	var workloads string
	var verbose bool
	fl.StringVar(&cfg.OutDir, "o", "bench-results", "output `dir`ectory")
	fl.IntVar(&cfg.Rounds, "rounds", 0, "rounds per client and workload (default 3, 1 with -quick)")
	fl.BoolVar(&cfg.Quick, "quick", false, "small sizes for a smoke run: 100 files, 4 MiB file, 1 round")
	fl.StringVar(&cfg.DataDir, "data", "", "shared `dir`ectory to prepare and use (default: in the cache directory)")
	fl.StringVar(&workloads, "workloads", "", "comma-separated `names` of the workloads to run (default all)")
	fl.BoolVar(&cfg.SkipHost, "skip-host", false, "do not measure the host clients")
	fl.BoolVar(&cfg.SkipVM, "skip-vm", false, "do not boot the VM")
	fl.IntVar(&cfg.CPUs, "cpus", 1, "number of vCPUs")
	fl.IntVar(&cfg.MemoryMiB, "mem", 1024, "guest memory in `MiB`")
	fl.DurationVar(&cfg.Timeout, "timeout", 0, "kill the VM after this `duration` (default from the sizes and rounds)")
	fl.BoolVar(&verbose, "v", false, "debug messages on stderr")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "govirtiofs bench: unexpected arguments %q\n", fl.Args())
		return 2
	}
	if workloads != "" {
		cfg.Workloads = strings.Split(workloads, ",")
	}
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	cfg.Log = slog.New(&progressHandler{w: stderr, level: level, mu: new(sync.Mutex)})
	cfg.Progress = stdout
	t0 := time.Now()
	rep, err := bench.Harness(ctx, cfg)
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
