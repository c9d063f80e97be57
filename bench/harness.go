package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/govirtiofs/govirtiofs"
	"github.com/govirtiofs/govirtiofs/boot"
)

// GuestProgram is the guest half's package directory, relative to the module root.
const GuestProgram = "qemu-tests/guest/bench"

// Tags of the VM's devices.
const (
	VirtiofsTag = "bench"
	NinePTag    = "bench9p"
)

// Files besides the report that [Harness] writes into the output directory.
const (
	// RawRecords holds every single measurement, one JSON record a line.
	RawRecords = "records.jsonl"
	// ConsoleLog is the VMs' whole serial consoles, one after the other.
	ConsoleLog = "console.log"
)

// HarnessConfig configures [Harness]. The zero value runs the full benchmark once.
type HarnessConfig struct {
	// OutDir receives the report (default "bench-results").
	OutDir string
	// DataDir is the shared directory, prepared by [Prepare] (default: below the boot cache
	// directory, kept and reused across runs with the same sizes).
	DataDir string
	// Rounds is the number of rounds (default 3, 1 with Quick).
	Rounds int
	// Quick uses [QuickSizes] instead of [DefaultSizes]; Sizes, if set, overrides both.
	Quick bool
	Sizes *Sizes
	// Workloads restricts the run to the named workloads.
	Workloads []string
	// SkipHost and SkipVM leave out the host clients or the VM.
	SkipHost, SkipVM bool
	// CPUs and MemoryMiB size the VM (default 1 and 1024).
	CPUs, MemoryMiB int
	// Timeout bounds each VM's life (default 5 minutes plus 15 at full sizes).
	Timeout time.Duration
	// Progress receives a line per measurement and per step; nil discards them.
	Progress io.Writer
	// Log receives boot's messages; nil discards them.
	Log *slog.Logger
}

// Harness runs the benchmark: it prepares DataDir, measures the host clients (host-vhostuser,
// host-os), then per round boots a VM per phase ([VMPhases]; each with both devices on DataDir),
// collects the guest program's records from the console and writes the report and the raw
// records into OutDir. The host clients run before the VM, not next to it, so that they do not share the CPU
// with QEMU.
//
// Errors: preparation, kernel, image or boot failures, a guest program that fails (its records
// so far are still reported), ctx's error. Failed measurements are not errors: they show in the
// report.
func Harness(ctx context.Context, cfg HarnessConfig) (*Report, error) {
	t0 := time.Now()
	if cfg.OutDir == "" {
		cfg.OutDir = "bench-results"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	sizes := DefaultSizes()
	if cfg.Quick {
		sizes = QuickSizes()
	}
	if cfg.Sizes != nil {
		sizes = *cfg.Sizes
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 3
		if cfg.Quick {
			cfg.Rounds = 1
		}
	}
	if cfg.CPUs <= 0 {
		cfg.CPUs = 1
	}
	if cfg.MemoryMiB <= 0 {
		cfg.MemoryMiB = 1024
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5*time.Minute + 15*time.Minute*time.Duration(sizes.BigFileSize)/time.Duration(DefaultSizes().BigFileSize)
	}
	workloads := Workloads()
	if len(cfg.Workloads) > 0 {
		workloads = nil
		for _, n := range cfg.Workloads {
			w, ok := WorkloadByName(n)
			if !ok {
				return nil, fmt.Errorf("bench: unknown workload %q", n)
			}
			workloads = append(workloads, w)
		}
	}
	cacheDir, err := boot.CacheDir()
	if err != nil {
		return nil, err
	}
	if cfg.DataDir == "" {
		cfg.DataDir = filepath.Join(cacheDir, "bench-data", fmt.Sprintf("%d-%d", sizes.SmallFiles, sizes.BigFileSize))
	}
	if err := os.MkdirAll(cfg.OutDir, 0o777); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o777); err != nil {
		return nil, err
	}
	p := &progress{w: cfg.Progress}
	p.printf("preparing %s", cfg.DataDir)
	if err := Prepare(cfg.DataDir, sizes, cfg.Rounds); err != nil {
		return nil, err
	}
	raw, err := os.Create(filepath.Join(cfg.OutDir, RawRecords))
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	var recs []Record
	var mu sync.Mutex // guards recs and raw: the console reader adds to them
	emit := func(r Record) {
		mu.Lock()
		defer mu.Unlock()
		recs = append(recs, r)
		if b, err := json.Marshal(r); err == nil {
			raw.Write(append(b, '\n'))
		}
	}
	var notes []string
	var runErr error

	if !cfg.SkipHost {
		th := time.Now()
		p.printf("host: %d rounds of %d workloads x [host-vhostuser, host-os]", cfg.Rounds, len(workloads))
		err := Run(ctx, RunConfig{
			Clients: []Client{
				HostVhostuserClient(boot.DefaultVirtiofsd, cfg.DataDir, "auto", govirtiofs.Options{Cache: govirtiofs.CacheAuto}),
				HostOSClient(cfg.DataDir),
			},
			Workloads: workloads, Sizes: sizes, Rounds: cfg.Rounds, Emit: emit,
			Progress: func(s string) { p.printf("host: %s", s) },
		})
		if err != nil {
			return nil, err
		}
		notes = append(notes, fmt.Sprintf("Host phase: %v.", time.Since(th).Round(time.Second)))
	}

	if !cfg.SkipVM {
		vmNotes, err := runVMs(ctx, &cfg, sizes, workloads, cacheDir, emit, p)
		notes = append(notes, vmNotes...)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			runErr = err
		}
	}

	mu.Lock()
	rep := &Report{Medians: Aggregate(recs), Sizes: sizes, Rounds: cfg.Rounds}
	mu.Unlock()
	notes = append(notes, fmt.Sprintf("Whole run: %v (%d vCPU, %d MiB guest, QEMU TCG).", time.Since(t0).Round(time.Second), cfg.CPUs, cfg.MemoryMiB))
	rep.Notes = []string{designNote, "## Timing\n\n" + strings.Join(notes, " ")}
	if err := WriteReport(cfg.OutDir, rep); err != nil {
		return nil, err
	}
	p.printf("wrote %s, %s, %s in %s", ResultsMarkdown, ResultsJSON, ResultsSVG, cfg.OutDir)
	return rep, runErr
}

// designNote explains in results.md how the run was arranged.
const designNote = `## How it was run

Every VM (QEMU TCG, q35) has a vhost-user-fs-pci device (its own virtiofsd, cache=auto) and a
virtio-9p-pci device (security_model=passthrough) on the same prepared host directory. A PCI device
bound by the kernel's virtio_pci cannot also be driven by the userspace driver, so the
userspace clients and the kernel clients run in separate VMs, and each govirtiofs VM brings the
device up exactly once. A round is four VMs: govirtiofs-none, govirtiofs-auto,
govirtiofs-always (each one govirtiofs.Open for all workloads, no virtio module loaded), and the
kernel clients (the guest loads virtio_pci, virtiofs and 9p, then for each workload mounts
virtiofs and 9p cache=none, loose, mmap with msize=512000 in turn). The VMs' order rotates from
round to round, and so does the order of the kernel clients within a workload. The host clients
(host-vhostuser: govirtiofs.Dial to a virtiofsd of its own, cache=auto; host-os: package os on the
directory) run all rounds before the first VM boots. Figures are medians over the rounds.

What cold means: each round of each workload reads a file set of its own (sets/r<round>-<workload>),
which no client has touched in that VM or on that connection. For govirtiofs in the guest, cold is
that: an FS that has never looked up or read those files. For host-vhostuser each measurement also
dials a fresh virtiofsd and FS. For the kernel clients each measurement is a fresh mount followed
by echo 3 > /proc/sys/vm/drop_caches. The host's page cache is never dropped, so host-os "cold"
figures are warm host-cache figures. Warm workloads run once unmeasured on the same client and set
before the measured pass. Workloads not named cold or warm start cold.`

// progress writes timestamped progress lines.
type progress struct {
	mu sync.Mutex // guards w
	w  io.Writer
	t0 time.Time
}

func (p *progress) printf(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.t0.IsZero() {
		p.t0 = time.Now()
	}
	fmt.Fprintf(p.w, "[%6.1fs] %s\n", time.Since(p.t0).Seconds(), fmt.Sprintf(format, a...))
}

// VMPhases are the guest program's phases, one VM each per round.
var VMPhases = []string{ClientGovirtiofsNone, ClientGovirtiofsAuto, ClientGovirtiofsAlways, "kernel"}

// runVMs boots a VM per phase per round, rotating the phases' order, and feeds the guest's records
// to emit. A failing VM is noted and the others still run. It returns notes for the report.
//
// Errors: the first VM's failure, or ctx's error.
func runVMs(ctx context.Context, cfg *HarnessConfig, sizes Sizes, workloads []Workload, cacheDir string, emit func(Record), p *progress) ([]string, error) {
	root, err := boot.ModuleRoot()
	if err != nil {
		return nil, fmt.Errorf("bench: the guest program is built from the source tree; run from inside the govirtiofs module: %w", err)
	}
	prog := filepath.Join(root, filepath.FromSlash(GuestProgram))
	if _, err := os.Stat(prog); err != nil {
		return nil, fmt.Errorf("bench: guest program: %w (run from inside the govirtiofs module)", err)
	}
	p.printf("VM: fetching the kernel")
	kernel, err := boot.Kernel(ctx, cacheDir, cfg.Log)
	if err != nil {
		return nil, err
	}
	console, err := os.Create(filepath.Join(cfg.OutDir, ConsoleLog))
	if err != nil {
		return nil, err
	}
	defer console.Close()
	var notes []string
	var firstErr error
	t0 := time.Now()
	for r := 1; r <= cfg.Rounds; r++ {
		for i := range VMPhases {
			phase := VMPhases[(i+r-1)%len(VMPhases)]
			fmt.Fprintf(console, "\n===== round %d, VM %s =====\n", r, phase)
			note, err := runVM(ctx, cfg, kernel, prog, phase, r, sizes, workloads, cacheDir, console, emit, p)
			notes = append(notes, note)
			if err != nil {
				if ctx.Err() != nil {
					return notes, ctx.Err()
				}
				p.printf("VM %s round %d failed: %v", phase, r, err)
				notes = append(notes, fmt.Sprintf("VM %s, round %d, failed: %v.", phase, r, err))
				if firstErr == nil {
					firstErr = err
				}
			}
		}
	}
	notes = append(notes, fmt.Sprintf("All VMs: %v.", time.Since(t0).Round(time.Second)))
	return notes, firstErr
}

// runVM boots one VM running phase for round r. It returns a note for the report.
func runVM(ctx context.Context, cfg *HarnessConfig, kernel *boot.KernelFiles, prog, phase string, r int, sizes Sizes, workloads []Workload, cacheDir string, console io.Writer, emit func(Record), p *progress) (string, error) {
	var modules []string
	for _, m := range kernel.Modules {
		modules = append(modules, path.Join(boot.GuestModulesDir, filepath.Base(m)))
	}
	sizesJSON, err := json.Marshal(sizes)
	if err != nil {
		return "", err
	}
	var names []string
	for _, w := range workloads {
		names = append(names, w.Name)
	}
	args := []string{
		"-phase", phase, "-round", strconv.Itoa(r),
		"-tag", VirtiofsTag, "-9p-tag", NinePTag,
		"-sizes", string(sizesJSON), "-modules", strings.Join(modules, ","),
		"-workloads", strings.Join(names, ","),
	}
	p.printf("VM %s round %d: building the guest image", phase, r)
	img, err := boot.BuildImage(ctx, cacheDir, boot.ImageSpec{
		Program: prog, Args: args, Tag: VirtiofsTag, Kernel: kernel,
	}, cfg.Log)
	if err != nil {
		return "", err
	}
	out := &guestLines{emit: emit, progress: func(s string) { p.printf("guest %s: %s", phase, s) }}
	p.printf("VM %s round %d: booting (timeout %v)", phase, r, cfg.Timeout.Round(time.Second))
	vm, err := boot.Start(ctx, boot.VMConfig{
		Kernel: kernel.Vmlinuz, Initrd: img.Path,
		CPUs: cfg.CPUs, MemoryMiB: cfg.MemoryMiB,
		Shares:  []boot.Share{{Dir: cfg.DataDir, Tag: VirtiofsTag, Cache: "auto"}},
		NineP:   []boot.NinePShare{{Dir: cfg.DataDir, Tag: NinePTag}},
		Console: console, Output: out, Timeout: cfg.Timeout, Log: cfg.Log,
	})
	if err != nil {
		return "", err
	}
	code, err := vm.Wait()
	out.flush()
	tm := vm.Timings()
	note := fmt.Sprintf("VM %s, round %d: boot to the guest program %v, whole VM %v.", phase, r,
		tm.GuestStart.Round(100*time.Millisecond), tm.Exit.Round(time.Second))
	if err != nil {
		return note, err
	}
	if code != 0 {
		return note, fmt.Errorf("bench: guest program exited with status %d (console in %s):\n%s", code, filepath.Join(cfg.OutDir, ConsoleLog), out.tail())
	}
	return note, nil
}

// guestLines splits the guest program's output into lines: records go to emit, the rest to
// progress.
type guestLines struct {
	emit     func(Record)
	progress func(string)

	mu   sync.Mutex // guards the fields below
	buf  bytes.Buffer
	last []string // the last lines, for error messages
}

func (g *guestLines) Write(b []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.buf.Write(b)
	for {
		i := bytes.IndexByte(g.buf.Bytes(), '\n')
		if i < 0 {
			break
		}
		g.line(string(g.buf.Next(i + 1)))
	}
	return len(b), nil
}

// line handles one line. Preconditions: g.mu is held.
func (g *guestLines) line(s string) {
	s = strings.TrimRight(s, "\r\n")
	if r, ok := ParseRecord(s); ok {
		g.emit(r)
		return
	}
	if s == "" {
		return
	}
	g.last = append(g.last, s)
	if len(g.last) > 20 {
		g.last = g.last[1:]
	}
	g.progress(strings.TrimPrefix(s, "bench: "))
}

func (g *guestLines) flush() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.buf.Len() > 0 {
		g.line(g.buf.String())
		g.buf.Reset()
	}
}

func (g *guestLines) tail() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Join(g.last, "\n")
}
