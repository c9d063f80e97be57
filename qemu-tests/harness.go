package qemutests

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs/boot"
	"github.com/govirtiofs/govirtiofs/internal/syncbuf"
)

// GuestSpec describes one guest run. Only Pkg is required.
type GuestSpec struct {
	// Pkg is the guest program: a package directory relative to the module root
	// ("./qemu-tests/guest/hello") or absolute, or a prebuilt static linux/amd64 binary.
	Pkg string
	// Test builds Pkg with "go test -c" and puts [boot.TestArgs] (-test.v, -test.timeout) in
	// front of Args.
	Test bool
	// BuildFlags are extra go build flags, e.g. "-tags=guest".
	BuildFlags []string
	// Args and Env are the program's arguments and extra KEY=VALUE environment.
	Args, Env []string

	// Share is the host directory behind the virtio-fs device; empty means a fresh t.TempDir().
	Share string
	// Tag defaults to "share"; Cache ("auto", "none", "always") to "auto".
	Tag, Cache string
	// AnnounceSubmounts and Xattr are passed to virtiofsd.
	AnnounceSubmounts, Xattr bool
	// VirtiofsdArgs are appended to virtiofsd's command line (e.g. "-o", "flock").
	VirtiofsdArgs []string
	// NineP, if set, is also exported with virtio-9p under tag "p9".
	NineP string
	// LoadModules loads the baseline kernel modules (virtio_pci, virtiofs, 9p...) before the
	// program starts; needed only by kernel-client baselines.
	LoadModules bool

	// Machine is "q35" (default), "pc" or "microvm".
	Machine string
	// CPUs, MemoryMiB and Hugepages default to 1, 512 and 64.
	CPUs, MemoryMiB, Hugepages int
	// Cmdline holds extra kernel arguments.
	Cmdline []string
	// Timeout bounds the VM's life (default 5 minutes, capped by the test's deadline).
	Timeout time.Duration
	// Quiet keeps the program's lines out of the test log (they are still in Result.Output).
	Quiet bool
}

// Result is what a guest run produced.
type Result struct {
	// ExitCode is the program's exit status (128+signal if it was killed).
	ExitCode int
	// Output holds the program's own output lines (stdout and stderr interleaved).
	Output string
	// Console holds the whole serial console.
	Console string
	// Timings are measured from QEMU's start; Timings.GuestStart is boot-to-first-line.
	Timings boot.Timings
	// Image is the initramfs that was booted.
	Image *boot.Image
}

// RunGuest builds and boots spec and fails t (with the console log) unless the program exits 0.
// Infrastructure failures (build, missing QEMU or virtiofsd, timeouts) are fatal.
func RunGuest(t testing.TB, spec GuestSpec) Result {
	t.Helper()
	res, err := Boot(t, spec)
	if err != nil {
		keepLog(t, res)
		t.Fatalf("guest %s: %v", spec.Pkg, err)
	}
	if res.ExitCode != 0 {
		keepLog(t, res)
		t.Fatalf("guest %s exited with status %d", spec.Pkg, res.ExitCode)
	}
	return res
}

// Boot builds and boots spec and returns what happened, without judging the exit status; the
// program's lines are also logged with t.Logf as they arrive (unless Quiet). Call [KeepLog] to
// keep the console.
//
// Errors: build failures, missing peers, VM timeouts, a guest that ended without an exit status.
func Boot(t testing.TB, spec GuestSpec) (Result, error) {
	t.Helper()
	env, err := setup(t)
	if err != nil {
		return Result{}, err
	}
	ctx := context.Background()
	if tc, ok := t.(interface{ Context() context.Context }); ok {
		ctx = tc.Context()
	}
	timeout := spec.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok && time.Until(dl)-10*time.Second < timeout {
			timeout = time.Until(dl) - 10*time.Second
		}
	}

	prog := spec.Pkg
	if !filepath.IsAbs(prog) {
		prog = filepath.Join(env.root, prog)
	}
	args := spec.Args
	if spec.Test {
		args = boot.TestArgs(args...)
	}
	tag := spec.Tag
	if tag == "" {
		tag = boot.DefaultTag
	}
	img, err := boot.BuildImage(ctx, env.cache, boot.ImageSpec{
		Program: prog, Test: spec.Test, BuildFlags: spec.BuildFlags,
		Args: args, Env: spec.Env, Tag: tag,
		Kernel: env.kernel, LoadModules: spec.LoadModules,
	}, env.log)
	if err != nil {
		return Result{}, err
	}
	share := spec.Share
	if share == "" {
		share = t.TempDir()
	}
	var console bytes.Buffer
	var output syncbuf.Buffer
	out := &lineLogger{t: t, buf: &output, quiet: spec.Quiet}
	cfg := boot.VMConfig{
		Kernel: env.kernel.Vmlinuz, Initrd: img.Path,
		Machine: spec.Machine, CPUs: spec.CPUs, MemoryMiB: spec.MemoryMiB, Hugepages: spec.Hugepages,
		Cmdline: spec.Cmdline,
		Shares: []boot.Share{{Dir: share, Tag: tag, Cache: spec.Cache,
			AnnounceSubmounts: spec.AnnounceSubmounts, Xattr: spec.Xattr,
			VirtiofsdArgs: spec.VirtiofsdArgs}},
		Console: &console, Output: out, Timeout: timeout, Log: env.log,
	}
	if spec.NineP != "" {
		cfg.NineP = []boot.NinePShare{{Dir: spec.NineP, Tag: "p9"}}
	}
	vm, err := boot.Start(ctx, cfg)
	if err != nil {
		return Result{Image: img}, err
	}
	code, err := vm.Wait()
	res := Result{
		ExitCode: code, Output: output.String(), Console: console.String(),
		Timings: vm.Timings(), Image: img,
	}
	t.Logf("guest %s: exit %d, boot to first line %v, total %v", spec.Pkg, code,
		res.Timings.GuestStart.Round(time.Millisecond), res.Timings.Exit.Round(time.Millisecond))
	return res, err
}

// KeepLog writes res's console to .cache/logs/<test>-<time>.log and logs it with t.Log.
func KeepLog(t testing.TB, res Result) { t.Helper(); keepLog(t, res) }

func keepLog(t testing.TB, res Result) {
	t.Helper()
	if res.Console == "" {
		return
	}
	t.Logf("console:\n%s", res.Console)
	env, err := setup(t)
	if err != nil {
		return
	}
	dir := filepath.Join(env.cache, "logs")
	name := regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "_")
	p := filepath.Join(dir, fmt.Sprintf("%s-%s.log", name, time.Now().Format("20060102-150405")))
	if err := os.MkdirAll(dir, 0o755); err == nil {
		if err := os.WriteFile(p, []byte(res.Console), 0o644); err == nil {
			t.Logf("console log kept in %s", p)
		}
	}
}

// env is the per-process state shared by all guest runs: the kernel is fetched once.
type env struct {
	root, cache string
	kernel      *boot.KernelFiles
	log         *slog.Logger
}

var (
	envOnce sync.Once
	envVal  *env
	envErr  error
)

func setup(t testing.TB) (*env, error) {
	envOnce.Do(func() {
		root, err := boot.ModuleRoot()
		if err != nil {
			envErr = err
			return
		}
		cache, err := boot.CacheDir()
		if err != nil {
			envErr = err
			return
		}
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		k, err := boot.Kernel(context.Background(), cache, log)
		if err != nil {
			envErr = err
			return
		}
		envVal = &env{root: root, cache: cache, kernel: k, log: log}
	})
	return envVal, envErr
}

// lineLogger copies program output into buf and, unless quiet, logs it line by line.
type lineLogger struct {
	t     testing.TB
	buf   *syncbuf.Buffer
	quiet bool
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.buf.Write(p)
	if l.quiet {
		return len(p), nil
	}
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		l.t.Logf("guest: %s", line)
	}
	return len(p), nil
}
