package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
	// KernelVirtiofsTag is the vhost-user-fs-pci device that the guest kernel's virtiofs mounts.
	KernelVirtiofsTag = "bench-kernel"
	// NinePTag is the virtio-9p-pci device's mount tag.
	NinePTag = "bench9p"
	// PrimeTag is the vhost-user-fs-pci device of the guest's priming FS (RunConfig.Prime), a
	// govirtiofs FS of its own with cache none that no measurement uses.
	PrimeTag = "bench-prime"
)

// GovirtiofsTags are the vhost-user-fs-pci devices of the govirtiofs clients: one device, and so
// one virtiofsd and one FS, per cache mode.
var GovirtiofsTags = map[string]string{
	ClientGovirtiofsNone:   "bench-none",
	ClientGovirtiofsAuto:   "bench-auto",
	ClientGovirtiofsAlways: "bench-always",
}

// GovirtiofsClients are the guest's govirtiofs clients, in report order.
var GovirtiofsClients = []string{ClientGovirtiofsNone, ClientGovirtiofsAuto, ClientGovirtiofsAlways}

// VirtiofsdCache is the cache mode of every virtiofsd of a run: the four in the VM and
// host-vhostuser's.
const VirtiofsdCache = "auto"

// Files besides the report that [Harness] writes into the output directory.
const (
	// RawRecords holds every single measurement, one JSON record a line.
	RawRecords = "records.jsonl"
	// ConsoleLog is the VM's whole serial console.
	ConsoleLog = "console.log"
)

// HarnessConfig configures [Harness]. The zero value runs the full benchmark once.
type HarnessConfig struct {
	// OutDir receives the report (default "bench-results").
	OutDir string
	// DataDir is the shared directory, prepared by [Prepare] (default: below the boot cache
	// directory, kept and reused across runs with the same sizes).
	DataDir string
	// Rounds is the number of rounds (default DefaultRounds, 1 with Quick).
	Rounds int
	// Quick uses [QuickSizes] instead of [DefaultSizes]; Sizes, if set, overrides both.
	Quick bool
	Sizes *Sizes
	// Workloads restricts the run to the named workloads.
	Workloads []string
	// SkipHost and SkipVM leave out the host clients or the VM.
	SkipHost, SkipVM bool
	// CPUs and MemoryMiB size the VM (default 1 and [DefaultMemoryMiB]).
	CPUs, MemoryMiB int
	// Timeout bounds the VM's life (default 5 minutes plus 10 per round at full sizes).
	Timeout time.Duration
	// VirtiofsdArgs are appended to the command line of every virtiofsd of the run (the four in
	// the VM and host-vhostuser's), so that all virtiofs clients meet the same server.
	VirtiofsdArgs []string
	// Unpinned leaves every process where the host's scheduler puts it. By default, on a host
	// where the harness may use at least two CPUs, the round-trip workloads (getattr) run with
	// the client and its servers on one host CPU, the servers at SCHED_FIFO and the client side
	// at nice -20, on both sides; the other workloads always run unplaced (see
	// placement_linux.go; results.md says what was done).
	Unpinned bool
	// CPUProfileDir, if set, receives a CPU profile of the timed pass of every govirtiofs
	// measurement in the guest (<client>-<workload>-r<round>.pprof), for go tool pprof.
	CPUProfileDir string
	// Progress receives a line per measurement and per step; nil discards them.
	Progress io.Writer
	// Log receives boot's messages; nil discards them.
	Log *slog.Logger
}

// DefaultMemoryMiB is the VM's default memory: room for three govirtiofs FSes that keep their
// caches for the whole run (CacheAlways keeps every big file it read) and the kernel's page cache.
const DefaultMemoryMiB = 2048

// Harness runs the benchmark: it prepares DataDir, measures the host clients (host-vhostuser,
// host-os; host-vhostuser runs the round-trip workloads on a cache-none FS), then boots one VM
// with six devices on DataDir (a vhost-user-fs-pci per govirtiofs cache mode,
// [GovirtiofsTags]; one for priming, [PrimeTag]; one for the kernel's virtiofs,
// [KernelVirtiofsTag]; a virtio-9p-pci, [NinePTag]) that runs every round of every guest
// client, collects the guest program's records from the console and writes the report and the
// raw records into OutDir. The
// host clients run before the VM, not next to it, so that they do not share the CPU with QEMU.
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
		cfg.Rounds = DefaultRounds
		if cfg.Quick {
			cfg.Rounds = 1
		}
	}
	if cfg.CPUs <= 0 {
		cfg.CPUs = 1
	}
	if cfg.MemoryMiB <= 0 {
		cfg.MemoryMiB = DefaultMemoryMiB
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout(cfg.Rounds, sizes)
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
	place := placeCPU(cfg.Unpinned)
	if cfg.CPUs > 1 {
		// One host CPU for several vCPUs would serialize them.
		place = &placement{cpu: -1, why: fmt.Sprintf("the VM has %d vCPUs", cfg.CPUs)}
	}
	var placeNotes []string

	if !cfg.SkipHost {
		th := time.Now()
		p.printf("host: %d rounds of %d workloads x [host-vhostuser, host-os]", cfg.Rounds, len(workloads))
		// The round-trip workloads run on a cache-none FS, as govirtiofs-none in the guest does,
		// so that every operation is one round trip on both sides, and placed (as in the VM);
		// the others on cache auto, where the host's scheduler puts them.
		whole, roundTrip := SplitRoundTrip(workloads)
		var placeMu sync.Mutex // guards place.warn: Start may run on any goroutine
		started := func(pid int) {
			if err := place.server(pid); err != nil {
				placeMu.Lock()
				place.warnf("host-vhostuser's virtiofsd: %v", err)
				placeMu.Unlock()
			}
		}
		hostPlace := place
		// Package os primes the host phase's sets: it keeps nothing of them but the host's caches.
		hostPrime := HostOSClient(cfg.DataDir)
		hostPrime.Name = "package os"
		for _, part := range []struct {
			ws     []Workload
			cache  govirtiofs.CacheMode
			placed bool
		}{{whole, govirtiofs.CacheAuto, false}, {roundTrip, govirtiofs.CacheNone, true}} {
			if len(part.ws) == 0 {
				continue
			}
			restore := func() {}
			onStart := func(int) {}
			if part.placed && place.active() {
				place.used = true
				var err error
				if restore, err = place.self(); err != nil {
					place.warnf("host phase: %v", err)
					restore = func() {}
				}
				onStart = started
			}
			err := Run(ctx, RunConfig{
				Clients: []Client{
					hostVhostuserClient(boot.DefaultVirtiofsd, cfg.DataDir, VirtiofsdCache, cfg.VirtiofsdArgs, govirtiofs.Options{Cache: part.cache}, onStart),
					HostOSClient(cfg.DataDir),
				},
				Workloads: part.ws, Sizes: sizes, Rounds: cfg.Rounds, Emit: emit, MinWarmTime: WarmTime,
				Progress: func(s string) { p.printf("host: %s", s) },
				Prime:    &hostPrime,
			})
			restore()
			if err != nil {
				return nil, err
			}
		}
		notes = append(notes, fmt.Sprintf("Host phase: %v.", time.Since(th).Round(time.Second)))
		placeNotes = append(placeNotes, hostPlace.note("Host"))
		place = &placement{cpu: place.cpu, why: place.why} // the VM phase's warnings of its own
	}

	if !cfg.SkipVM {
		note, err := runVM(ctx, &cfg, sizes, workloads, cacheDir, emit, p, place)
		placeNotes = append(placeNotes, place.note("VM"))
		if note != "" {
			notes = append(notes, note)
		}
		if err != nil {
			p.printf("VM failed: %v", err)
			notes = append(notes, fmt.Sprintf("The VM failed: %v.", err))
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
	rep.Notes = []string{designNote(cfg.VirtiofsdArgs), placementText + "\n\n" + strings.Join(placeNotes, " "), "## Timing\n\n" + strings.Join(notes, " ")}
	if err := WriteReport(cfg.OutDir, rep); err != nil {
		return nil, err
	}
	p.printf("wrote %s, %s, %s in %s", ResultsMarkdown, ResultsJSON, ResultsSVG, cfg.OutDir)
	return rep, runErr
}

// designNote explains in results.md how the run was arranged; args are the extra virtiofsd
// arguments.
func designNote(args []string) string {
	opts := "-o cache=" + VirtiofsdCache
	if len(args) > 0 {
		opts += " " + strings.Join(args, " ")
	}
	return strings.ReplaceAll(designText, "VIRTIOFSD_OPTIONS", opts)
}

const designText = `## How it was run

One VM (QEMU TCG, q35) runs every round of every guest client. It has six devices on the same
prepared host directory: three vhost-user-fs-pci devices for govirtiofs with cache none, auto and
always, one for priming (below), one vhost-user-fs-pci for the kernel's virtiofs, and one
virtio-9p-pci (security_model=passthrough). Each vhost-user-fs-pci device has a virtiofsd of its
own, and every virtiofsd of the run, host-vhostuser's included, has the same options:
VIRTIOFSD_OPTIONS.

The guest program first reads each virtio-fs device's tag and writes a driver name that does not
exist into the driver_override of the four govirtiofs devices, so that virtio_pci, loaded next
(with virtiofs and 9p), binds only the kernel's virtio-fs device and the 9p device: a PCI device
bound by a kernel driver cannot also be driven from userspace. It then opens the four govirtiofs
FSes (govirtiofs.Open: the three clients' and the priming one), each once for the whole run, and
runs the rounds: in each round, for each workload, the seven guest clients take turns (govirtiofs
none, auto, always, kernel virtiofs, 9p cache=none, loose, mmap with msize=512000), and the client
that goes first rotates from round to round. The kernel clients mount afresh for every
measurement. One device per cache mode, opened once, rather than one device opened and closed per
measurement: a bring-up (device reset, FUSE_INIT) is no part of any workload, and four open FSes
cost only their DMA memory (16 MiB of hugepages each). The host clients (host-vhostuser: govirtiofs.Dial to a virtiofsd of its own,
govirtiofs cache auto, cache none for getattr; host-os: package os on the directory) run all
rounds before the VM boots. Every timed pass starts after a garbage collection (runtime.GC, as
testing.B does), so that no earlier pass's garbage is collected during it.
Figures are medians over the rounds.

What cold means: each round of each workload reads a file set of its own (sets/r<round>-<workload>),
which no client has touched in that VM or on that connection. For govirtiofs in the guest, cold is
that: an FS that has never looked up or read those files. For host-vhostuser each measurement also
dials a fresh virtiofsd and FS. For the kernel clients each measurement is a fresh mount followed
by echo 3 > /proc/sys/vm/drop_caches. The host's page cache is never dropped, so host-os "cold"
figures are warm host-cache figures, and so are everyone's: before the first client of each round
of a workload that reads a file set, the set is read once, unmeasured, through a priming client
(in the guest a govirtiofs FS with cache none on a device and virtiofsd of its own, which no
measurement uses; on the host package os): each small file whole, the listing, the big file
whole. Without it the first client of a round met a set the host had not touched since it was
prepared, whose pages the host may have reclaimed since, and took half the speed of its other
rounds at random reads and listings. Warm workloads run once unmeasured on the same client and set
before the measured passes, which repeat until they took 200 ms together (a warm pass of
govirtiofs can take 5 ms, of which one host timer tick is a large share); the figure is all their
operations over all their time. Workloads not named cold or warm start cold.

Round trips: the target "guest metadata round trips within 2x of the host-side vhost-user figure"
is judged on the getattr workload alone: an open small file is fstat'ed RoundTrips times, each
call timed. govirtiofs-none in the guest and host-vhostuser, which runs this workload on a
cache-none FS of its own (same virtiofsd options), both send exactly one GETATTR per call and do
little else, so their ratio compares round trips. The whole-operation comparison of
govirtiofs-auto with host-vhostuser on stat-cold, open-read-close, readdir, create and mixed is
informational only: each operation there also costs client CPU (path walks, allocations,
encoding and decoding), which under TCG runs 10-50x slower than on the host, so those ratios
measure TCG rather than round trips.`

const placementText = `Host CPUs: a round trip starts when the client (the vCPU thread, or the harness on the host)
writes the queue's eventfd and the server's thread wakes; a server woken on another host CPU than
the client's started tens of µs later than one woken on the client's own CPU (an idle CPU of a
host that is itself a virtual machine halts, and wakes slowly), and the scheduler chose either
from one moment to the next, so that the same guest's GETATTR round trip took 13-20 µs in some
phases of a boot and 45-65 µs in others. The round-trip target compares transports, so its
workload (getattr) runs on both sides with the client and its server on one host CPU: with a
one-vCPU VM on a host where the harness may use two CPUs or more, the guest runs getattr last,
after the harness has put QEMU (every thread) and the VM's virtiofsd on one host CPU (the highest
the harness may use), and the host phase runs getattr with the harness and host-vhostuser's
virtiofsd on that CPU. Every server thread (each virtiofsd's, QEMU's other than the vCPU's, where
9p is served) runs at SCHED_FIFO priority 1, so that its wake-up preempts the client at once; the
client side (the vCPU thread, the harness) runs at nice -20. Every other workload runs before
that, where the host's scheduler puts things: one CPU does not suit every client alike (measured
back to back, the kernel's virtiofs and 9p, which sleep and overlap their work with the server's
on another CPU, ran stat-cold, open-read-close and create 20-50% slower placed; govirtiofs, which
spins for its reply, up to 2x faster), so the comparisons between clients are made unplaced.`

// defaultTimeout is the VM's default life for rounds at sizes: 5 minutes plus 10 per round at
// full sizes, scaled by the big file's size (a float: the product in nanoseconds overflows int64).
func defaultTimeout(rounds int, sizes Sizes) time.Duration {
	scale := float64(sizes.BigFileSize) / float64(DefaultSizes().BigFileSize)
	return 5*time.Minute + time.Duration(float64(rounds)*scale*float64(10*time.Minute))
}

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

// runVM boots the VM that runs the guest program (GuestProgram) for all rounds and feeds its
// records to emit. It returns a note for the report.
//
// Errors: kernel, image or boot failures, a guest program that fails, ctx's error.
func runVM(ctx context.Context, cfg *HarnessConfig, sizes Sizes, workloads []Workload, cacheDir string, emit func(Record), p *progress, place *placement) (string, error) {
	root, err := boot.ModuleRoot()
	if err != nil {
		return "", fmt.Errorf("bench: the guest program is built from the source tree; run from inside the govirtiofs module: %w", err)
	}
	prog := filepath.Join(root, filepath.FromSlash(GuestProgram))
	if _, err := os.Stat(prog); err != nil {
		return "", fmt.Errorf("bench: guest program: %w (run from inside the govirtiofs module)", err)
	}
	p.printf("VM: fetching the kernel")
	kernel, err := boot.Kernel(ctx, cacheDir, cfg.Log)
	if err != nil {
		return "", err
	}
	console, err := os.Create(filepath.Join(cfg.OutDir, ConsoleLog))
	if err != nil {
		return "", err
	}
	defer console.Close()
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
		"-rounds", strconv.Itoa(cfg.Rounds), "-9p-tag", NinePTag,
		"-sizes", string(sizesJSON), "-modules", strings.Join(modules, ","),
		"-workloads", strings.Join(names, ","),
	}
	if cfg.CPUProfileDir != "" {
		if err := os.RemoveAll(filepath.Join(cfg.DataDir, guestProfileDir)); err != nil {
			return "", err
		}
		args = append(args, "-cpuprofile", guestProfileDir)
	}
	p.printf("VM: building the guest image")
	img, err := boot.BuildImage(ctx, cacheDir, boot.ImageSpec{
		Program: prog, Args: args, Tag: KernelVirtiofsTag, Kernel: kernel,
	}, cfg.Log)
	if err != nil {
		return "", err
	}
	var shares []boot.Share
	for _, c := range GovirtiofsClients {
		shares = append(shares, boot.Share{Dir: cfg.DataDir, Tag: GovirtiofsTags[c], Cache: VirtiofsdCache, VirtiofsdArgs: cfg.VirtiofsdArgs})
	}
	shares = append(shares, boot.Share{Dir: cfg.DataDir, Tag: PrimeTag, Cache: VirtiofsdCache, VirtiofsdArgs: cfg.VirtiofsdArgs})
	shares = append(shares, boot.Share{Dir: cfg.DataDir, Tag: KernelVirtiofsTag, Cache: VirtiofsdCache, VirtiofsdArgs: cfg.VirtiofsdArgs})
	ack := filepath.Join(cfg.DataDir, PlaceAck)
	if err := os.Remove(ack); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	defer os.Remove(ack)
	var vm *boot.VM
	vmStarted := make(chan struct{})
	out := &guestLines{emit: emit, progress: func(s string) { p.printf("guest: %s", s) }}
	// The guest asks for placement before its round-trip workloads (PlaceLine) and waits for ack.
	out.onPlace = func() {
		<-vmStarted
		if place.active() {
			place.used = true
			qemu, daemons := vm.PIDs()
			for _, pid := range daemons {
				if err := place.server(pid); err != nil {
					place.warnf("virtiofsd %d: %v", pid, err)
				}
			}
			if err := place.qemu(qemu); err != nil {
				place.warnf("QEMU: %v", err)
			}
			p.printf("VM: QEMU and its virtiofsd on host CPU %d for the round trips", place.cpu)
		}
		if err := os.WriteFile(ack, nil, 0o644); err != nil {
			place.warnf("acknowledging the placement: %v", err)
		}
	}
	p.printf("VM: booting: %d rounds of %d workloads x %d guest clients (timeout %v)", cfg.Rounds, len(workloads), len(GovirtiofsClients)+4, cfg.Timeout.Round(time.Second))
	vm, err = boot.Start(ctx, boot.VMConfig{
		Kernel: kernel.Vmlinuz, Initrd: img.Path,
		CPUs: cfg.CPUs, MemoryMiB: cfg.MemoryMiB, Hugepages: boot.DefaultHugepages,
		Shares:  shares,
		NineP:   []boot.NinePShare{{Dir: cfg.DataDir, Tag: NinePTag}},
		Console: console, Output: out, Timeout: cfg.Timeout, Log: cfg.Log,
	})
	if err != nil {
		close(vmStarted) // onPlace finds vm nil only if the VM never started; it cannot run then
		return "", err
	}
	close(vmStarted)
	code, err := vm.Wait()
	out.wait()
	out.flush()
	if cfg.CPUProfileDir != "" {
		n, merr := moveProfiles(filepath.Join(cfg.DataDir, guestProfileDir), cfg.CPUProfileDir)
		p.printf("moved %d CPU profiles into %s", n, cfg.CPUProfileDir)
		if err == nil && merr != nil {
			err = merr
		}
	}
	tm := vm.Timings()
	note := fmt.Sprintf("VM: boot to the guest program %v, whole VM %v.",
		tm.GuestStart.Round(100*time.Millisecond), tm.Exit.Round(time.Second))
	if err != nil {
		return note, err
	}
	if code != 0 {
		return note, fmt.Errorf("bench: guest program exited with status %d (console in %s):\n%s", code, filepath.Join(cfg.OutDir, ConsoleLog), out.tail())
	}
	return note, nil
}

// PlaceLine is what the guest program prints before its round-trip workloads; the harness then
// places QEMU and its servers (placement_linux.go) and creates PlaceAck in the shared directory,
// which the guest waits for.
const (
	PlaceLine = "bench: place for the round trips"
	PlaceAck  = "place-ack"
)

// guestProfileDir is where in the shared directory the guest writes its CPU profiles.
const guestProfileDir = "cpuprofiles"

// moveProfiles moves the files of from into to, creating it, and removes from. It returns how
// many it moved.
//
// Errors: the first failing file operation.
func moveProfiles(from, to string) (int, error) {
	ents, err := os.ReadDir(from)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(to, 0o777); err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			return n, err
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o666); err != nil {
			return n, err
		}
		n++
	}
	return n, os.RemoveAll(from)
}

// guestLines splits the guest program's output into lines: records go to emit, the rest to
// progress.
type guestLines struct {
	emit     func(Record)
	progress func(string)
	// onPlace, if set, runs on a goroutine of its own when the guest prints PlaceLine.
	onPlace func()
	placing sync.WaitGroup

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
	if s == PlaceLine && g.onPlace != nil {
		g.placing.Add(1)
		go func() {
			defer g.placing.Done()
			g.onPlace()
		}()
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

// wait waits for the onPlace calls under way.
func (g *guestLines) wait() { g.placing.Wait() }

func (g *guestLines) tail() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Join(g.last, "\n")
}

// DefaultRounds is how many rounds a run takes unless told otherwise. On a
// shared two-core host one round of a workload can read 2-5x off its
// neighbours (a host tick, another process, where the scheduler put
// virtiofsd); the median of five moves much less than the median of three,
// for about four more minutes of a full run.
const DefaultRounds = 5
