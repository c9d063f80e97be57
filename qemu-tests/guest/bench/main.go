//go:build linux

// Command bench is the guest half of "govirtiofs bench" (package bench). The VM has a
// vhost-user-fs-pci device (tag -tag) and a virtio-9p-pci device (mount tag -9p-tag) on the same
// prepared host directory, and no virtio module loaded at boot.
//
// It runs in two phases, because a PCI device that the kernel's virtio_pci has bound cannot be
// driven by the userspace driver any more, and modules are not unloaded:
//
//  1. govirtiofs-none, -auto and -always: each measurement opens the device with govirtiofs.Open
//     and closes it again (which resets the device), all rounds.
//  2. It loads the baseline modules (-modules, in order), then kernel-virtiofs and kernel-9p-none,
//     -loose and -mmap: each measurement mounts, drops the caches and unmounts after, all rounds.
//
// Within a phase the clients take turns per workload, the first one rotating per round
// (bench.Run). Every measurement is printed as a bench.RecordPrefix line for the host to collect.
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
	tag := flag.String("tag", os.Getenv("GOVIRTIOFS_TAG"), "virtio-fs tag")
	tag9p := flag.String("9p-tag", "bench9p", "virtio-9p mount tag")
	rounds := flag.Int("rounds", 1, "rounds per phase")
	sizesJSON := flag.String("sizes", "", "bench.Sizes as JSON (default: bench.DefaultSizes)")
	modules := flag.String("modules", "", "comma-separated kernel modules to load before the kernel phase")
	phases := flag.String("phases", "govirtiofs,kernel", "phases to run, comma-separated")
	only := flag.String("workloads", "", "comma-separated workloads to run (default all)")
	mnt := flag.String("mnt", "/mnt/bench", "directory below which kernel clients are mounted")
	flag.Parse()
	if err := run(*tag, *tag9p, *rounds, *sizesJSON, *modules, *phases, *only, *mnt); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(tag, tag9p string, rounds int, sizesJSON, modules, phases, only, mnt string) error {
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
	cfg := bench.RunConfig{
		Workloads: workloads, Sizes: sizes, Rounds: rounds,
		Emit:     func(r bench.Record) { fmt.Println(bench.FormatRecord(r)) },
		Progress: func(s string) { fmt.Println("bench: " + s) },
	}
	for _, phase := range strings.Split(phases, ",") {
		t0 := time.Now()
		switch phase {
		case "govirtiofs":
			cfg.Clients = nil
			for _, m := range []govirtiofs.CacheMode{govirtiofs.CacheNone, govirtiofs.CacheAuto, govirtiofs.CacheAlways} {
				cfg.Clients = append(cfg.Clients, bench.GovirtiofsClient("govirtiofs-"+m.String(), func(ctx context.Context) (*govirtiofs.FS, error) {
					return govirtiofs.Open(ctx, tag, govirtiofs.Options{Cache: m})
				}))
			}
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
		fmt.Printf("bench: phase %s: %d clients, %d workloads, %d rounds\n", phase, len(cfg.Clients), len(workloads), rounds)
		if err := bench.Run(ctx, cfg); err != nil {
			return err
		}
		fmt.Printf("bench: phase %s took %v\n", phase, time.Since(t0).Round(time.Millisecond))
	}
	return nil
}
