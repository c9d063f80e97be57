//go:build linux

// Command metabench measures the guest CPU cost of cached metadata
// operations and of directory listing through govirtiofs, the parts of the
// bench's stat-warm and readdir workloads that the client decides:
//
//   - stat: FS.Stat of the -files files below -statdir, once unmeasured,
//     then -rounds measured passes (every name and attribute cached);
//   - readdir: FS.ReadDir of each directory named by -dirs, each listed for
//     the first time by this client.
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
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/govirtiofs/govirtiofs"
)

func main() {
	tag := flag.String("tag", os.Getenv("GOVIRTIOFS_TAG"), "virtio-fs tag")
	cache := flag.String("cache", "always", "cache mode: none, auto or always")
	statDir := flag.String("statdir", "sets/r0-stat-warm/small", "directory of the files to stat")
	files := flag.Int("files", 1000, "files to stat: f00000, f00001, ...")
	rounds := flag.Int("rounds", 5, "measured stat passes")
	dirs := flag.String("dirs", "", "comma-separated directories to list")
	profile := flag.String("cpuprofile", "", "write a CPU profile to this `name` on the share")
	flag.Parse()
	if err := run(*tag, *cache, *statDir, *files, *rounds, *dirs, *profile); err != nil {
		fmt.Fprintf(os.Stderr, "metabench: %v\n", err)
		os.Exit(1)
	}
}

func run(tag, cache, statDir string, files, rounds int, dirs, profile string) error {
	mode, err := govirtiofs.ParseCacheMode(cache)
	if err != nil {
		return err
	}
	fsys, err := govirtiofs.Open(context.Background(), tag, govirtiofs.Options{Cache: mode})
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
	if files > 0 {
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
			t0 := time.Now()
			ents, err := fsys.ReadDir(dir)
			if err != nil {
				return err
			}
			d := time.Since(t0)
			fmt.Printf("metabench: readdir[%s] %.0f entries/s (%d entries, %v)\n", dir, float64(len(ents))/d.Seconds(), len(ents), d.Round(time.Microsecond))
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
