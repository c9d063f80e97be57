//go:build linux

// Command bench is the guest half of "govirtiofs bench" (package bench). The VM has a
// vhost-user-fs-pci device (tag -tag) and a virtio-9p-pci device (mount tag -9p-tag) on the same
// prepared host directory, and no virtio module loaded at boot.
//
// It runs one phase (-phase) of one round (-round) and prints every measurement as a
// bench.RecordPrefix line for the host to collect:
//
//   - govirtiofs-none, govirtiofs-auto or govirtiofs-always: one govirtiofs.Open with that cache
//     mode for all workloads (bench.GovirtiofsSession says why once), closed at the end.
//   - kernel: it loads the baseline modules (-modules, in order), then for each workload the
//     kernel clients (virtiofs; 9p cache=none, loose, mmap) take turns, each mounting afresh.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/govirtiofs/govirtiofs"
	"github.com/govirtiofs/govirtiofs/bench"
)

func main() {
	phase := flag.String("phase", "", "govirtiofs-none, govirtiofs-auto, govirtiofs-always or kernel")
	round := flag.Int("round", 1, "round number: picks the file sets and the first client")
	tag := flag.String("tag", os.Getenv("GOVIRTIOFS_TAG"), "virtio-fs tag")
	tag9p := flag.String("9p-tag", "bench9p", "virtio-9p mount tag")
	sizesJSON := flag.String("sizes", "", "bench.Sizes as JSON (default: bench.DefaultSizes)")
	modules := flag.String("modules", "", "comma-separated kernel modules to load for the kernel phase")
	only := flag.String("workloads", "", "comma-separated workloads to run (default all)")
	mnt := flag.String("mnt", "/mnt/bench", "directory below which kernel clients are mounted")
	flag.Parse()
	if err := run(*phase, *round, *tag, *tag9p, *sizesJSON, *modules, *only, *mnt); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(phase string, round int, tag, tag9p, sizesJSON, modules, only, mnt string) error {
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
	cfg := bench.RunConfig{
		Workloads: workloads, Sizes: sizes, Rounds: 1, FirstRound: round,
		Emit:     func(r bench.Record) { fmt.Println(bench.FormatRecord(r)) },
		Progress: func(s string) { fmt.Println("bench: " + s) },
	}
	closeFS := func() error { return nil }
	switch phase {
	case bench.ClientGovirtiofsNone, bench.ClientGovirtiofsAuto, bench.ClientGovirtiofsAlways:
		mode, err := govirtiofs.ParseCacheMode(strings.TrimPrefix(phase, "govirtiofs-"))
		if err != nil {
			return err
		}
		var c bench.Client
		c, closeFS = bench.GovirtiofsSession(phase, func(ctx context.Context) (*govirtiofs.FS, error) {
			return govirtiofs.Open(ctx, tag, govirtiofs.Options{Cache: mode})
		})
		cfg.Clients = []bench.Client{c}
	case "kernel":
		if modules != "" {
			if err := bench.LoadModules(strings.Split(modules, ",")); err != nil {
				return err
			}
		}
		cfg.Clients = []bench.Client{bench.KernelVirtiofsClient(tag, mnt)}
		for _, c := range []string{"none", "loose", "mmap"} {
			cfg.Clients = append(cfg.Clients, bench.NinePClient(c, tag9p, mnt))
		}
	default:
		return fmt.Errorf("unknown phase %q", phase)
	}
	t0 := time.Now()
	fmt.Printf("bench: phase %s round %d: %d clients, %d workloads\n", phase, round, len(cfg.Clients), len(workloads))
	err := bench.Run(context.Background(), cfg)
	if cerr := closeFS(); err == nil && cerr != nil {
		err = fmt.Errorf("closing the share: %w", cerr)
	}
	fmt.Printf("bench: phase %s round %d took %v\n", phase, round, time.Since(t0).Round(time.Millisecond))
	return err
}
