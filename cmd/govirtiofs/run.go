package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/govirtiofs/govirtiofs/boot"
)

const runUsage = `usage: govirtiofs run [flags] [-- program args]

Builds what is missing (guest kernel, u-root base image, the program), starts virtiofsd on the
shared directory and QEMU (TCG), streams the guest program's output and exits with its status.
The program finds the share's tag in $GOVIRTIOFS_TAG. With neither --share nor --prog it runs a
demo program on a built-in example directory that contains a host tmpfs submount.

flags:
`

// runFlags are run's options.
type runFlags struct {
	share, prog, cache, machine, tag, tags, nineP string
	timeout                                       time.Duration
	cpus, mem                                     int
	test, submounts, xattr, modules, verbose      bool
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f runFlags
	fl := flag.NewFlagSet("run", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() { fmt.Fprint(stderr, runUsage); fl.PrintDefaults() }
	fl.StringVar(&f.share, "share", "", "host `dir`ectory to share (default: a copy of the built-in example)")
	fl.StringVar(&f.prog, "prog", "", "guest program: a main package `dir`ectory or a static linux/amd64 binary (default: the demo)")
	fl.BoolVar(&f.test, "test", false, "--prog is a package with tests: build it with go test -c and pass -test.v")
	fl.StringVar(&f.tags, "tags", "", "build `tags` for the guest program")
	fl.StringVar(&f.cache, "cache", "auto", "virtiofsd cache `mode`: auto, none or always")
	fl.StringVar(&f.machine, "machine", boot.MachineQ35, "QEMU `machine`: q35, pc or microvm")
	fl.StringVar(&f.tag, "tag", boot.DefaultTag, "virtio-fs `tag` of the share")
	fl.DurationVar(&f.timeout, "timeout", 10*time.Minute, "kill the VM after this `duration`")
	fl.IntVar(&f.cpus, "cpus", 1, "number of vCPUs")
	fl.IntVar(&f.mem, "mem", boot.DefaultMemoryMiB, "guest memory in `MiB`")
	fl.BoolVar(&f.submounts, "submounts", false, "pass -o announce_submounts to virtiofsd (on for the example share)")
	fl.BoolVar(&f.xattr, "xattr", false, "pass -o xattr to virtiofsd")
	fl.BoolVar(&f.modules, "load-modules", false, "load the kernel's virtio, virtiofs and 9p modules before the program (baselines)")
	fl.StringVar(&f.nineP, "9p", "", "also export `dir`ectory with virtio-9p, tag p9")
	fl.BoolVar(&f.verbose, "v", false, "show the whole console and debug messages on stderr")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	level := slog.LevelInfo
	if f.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(&progressHandler{w: stderr, level: level, mu: new(sync.Mutex)})
	code, err := run(ctx, f, fl.Args(), stdout, stderr, log)
	if err != nil {
		if ctx.Err() != nil {
			// Everything started is stopped and removed by now.
			fmt.Fprintln(stderr, "govirtiofs: interrupted")
			return 130
		}
		fmt.Fprintf(stderr, "govirtiofs: %v\n", err)
		return 1
	}
	return code
}

func run(ctx context.Context, f runFlags, progArgs []string, stdout, stderr io.Writer, log *slog.Logger) (int, error) {
	cacheDir, err := boot.CacheDir()
	if err != nil {
		d, uerr := os.UserCacheDir()
		if uerr != nil {
			return 0, err
		}
		cacheDir = filepath.Join(d, "govirtiofs")
	}
	share := f.share
	demoShareUsed := false
	if share == "" {
		dir, cleanup, err := prepareDemoShare(log)
		if err != nil {
			return 0, err
		}
		defer cleanup()
		share, demoShareUsed, f.submounts = dir, true, true
		log.Info("sharing a copy of the example directory", "dir", dir)
	}

	kernel, err := boot.Kernel(ctx, cacheDir, log)
	if err != nil {
		return 0, err
	}
	spec := boot.ImageSpec{
		Program: f.prog, Test: f.test, Args: progArgs, Tag: f.tag,
		Kernel: kernel, LoadModules: f.modules,
	}
	if f.tags != "" {
		spec.BuildFlags = []string{"-tags=" + f.tags}
	}
	if f.test {
		spec.Args = boot.TestArgs(progArgs...)
	}
	if spec.Program == "" {
		if spec.Program, err = demoProgram(); err != nil {
			return 0, err
		}
	}
	log.Info("building guest image")
	img, err := boot.BuildImage(ctx, cacheDir, spec, log)
	if err != nil {
		return 0, err
	}
	log.Debug("guest image", "path", img.Path, "bytes", img.Size, "cached", img.Cached)

	console := io.Discard
	if f.verbose {
		console = stderr
	}
	cfg := boot.VMConfig{
		Kernel: kernel.Vmlinuz, Initrd: img.Path, Machine: f.machine, CPUs: f.cpus, MemoryMiB: f.mem,
		Shares: []boot.Share{{Dir: share, Tag: f.tag, Cache: f.cache,
			AnnounceSubmounts: f.submounts, Xattr: f.xattr}},
		Console: console, Output: stdout, Timeout: f.timeout, Log: log,
	}
	if f.nineP != "" {
		cfg.NineP = []boot.NinePShare{{Dir: f.nineP, Tag: "p9"}}
	}
	log.Info("booting the guest (QEMU TCG)", "machine", cfg.Machine, "share", share, "tag", f.tag)
	vm, err := boot.Start(ctx, cfg)
	if err != nil {
		return 0, err
	}
	code, err := vm.Wait()
	t := vm.Timings()
	if err != nil {
		return 0, err
	}
	log.Info("guest finished", "exit", code, "boot_to_first_line", t.GuestStart.Round(time.Millisecond), "total", t.Exit.Round(time.Millisecond))
	if demoShareUsed {
		if b, err := os.ReadFile(filepath.Join(share, demoWrittenFile)); err == nil {
			log.Info("host reads " + demoWrittenFile + ": " + strings.TrimSpace(string(b)))
		}
	}
	return code, nil
}

// demoProgram returns the demo's package directory.
func demoProgram() (string, error) {
	root, err := boot.ModuleRoot()
	if err != nil || !exists(filepath.Join(root, demoPkg)) {
		return "", fmt.Errorf("the demo is built from the govirtiofs source tree: run inside it, or pass --prog")
	}
	return filepath.Join(root, demoPkg), nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// progressHandler prints records as "govirtiofs: msg key=value ..." lines.
type progressHandler struct {
	w     io.Writer
	level slog.Level
	attrs []slog.Attr
	mu    *sync.Mutex // serialises writes; shared by derived handlers
}

func (h *progressHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *progressHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString("govirtiofs: ")
	if r.Level >= slog.LevelWarn {
		b.WriteString(r.Level.String() + ": ")
	}
	b.WriteString(r.Message)
	add := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	b.WriteString("\n")
	if h.mu != nil {
		h.mu.Lock()
		defer h.mu.Unlock()
	}
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *progressHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *progressHandler) WithGroup(string) slog.Handler { return h }
