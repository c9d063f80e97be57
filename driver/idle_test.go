package driver_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs"
	"github.com/govirtiofs/govirtiofs/internal/virtiofsdtest"
)

// processCPU is the CPU time (user and system) the process has used.
func processCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestIdleCPU checks that open FSes with nothing to do cost (almost) no
// CPU: three FSes, as the benchmark has, after a warm-up of requests and of
// files closed in a burst (background RELEASEs, which nobody waits for).
func TestIdleCPU(t *testing.T) {
	if err := virtiofsdtest.CheckPrerequisites(); err != nil {
		t.Skip(err)
	}
	var fsys []*govirtiofs.FS
	for i := range 3 {
		dir := t.TempDir()
		for j := range 20 {
			if err := os.WriteFile(fmt.Sprintf("%s/f%d", dir, j), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		d := virtiofsdtest.Start(t, dir, virtiofsdtest.Options{Cache: "none"})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		f, err := govirtiofs.Dial(ctx, d.Socket, govirtiofs.Options{Cache: govirtiofs.CacheNone})
		cancel()
		if err != nil {
			t.Fatalf("Dial %d: %v", i, err)
		}
		t.Cleanup(func() { f.Close() })
		fsys = append(fsys, f)
	}
	for _, f := range fsys {
		var files []*govirtiofs.File
		for j := range 20 {
			name := fmt.Sprintf("f%d", j)
			if _, err := f.Stat(name); err != nil {
				t.Fatal(err)
			}
			file, err := f.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, file)
		}
		for _, file := range files {
			file.Close() // a burst of background RELEASEs
		}
	}
	// measured at once: the RELEASEs may still be in flight
	start, wall := processCPU(t), time.Now()
	time.Sleep(time.Second)
	used, elapsed := processCPU(t)-start, time.Since(wall)
	frac := float64(used) / float64(elapsed)
	t.Logf("idle: %v CPU in %v (%.2f%%)", used, elapsed, 100*frac)
	if frac >= 0.01 {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Errorf("idle FSes used %.2f%% CPU, want < 1%%; goroutines:\n%s", 100*frac, b.String())
	}
	runtime.KeepAlive(fsys)
}
