package boot

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults for [VMConfig].
const (
	DefaultVirtiofsd = "/usr/lib/qemu/virtiofsd"
	DefaultQEMU      = "qemu-system-x86_64"
	DefaultTag       = "share"
	DefaultMemoryMiB = 512
	// DefaultHugepages reserves 64 2-MiB pages (128 MiB) for the userspace driver's DMA memory.
	DefaultHugepages = 64
	DefaultTimeout   = 10 * time.Minute
)

// Errors reported by [VM.Wait].
var (
	// ErrNoExitStatus means QEMU ended without the guest printing its exit sentinel: a kernel
	// panic, a crash of the wrapper, or a killed VM.
	ErrNoExitStatus = errors.New("boot: guest ended without reporting an exit status")
	// ErrTimeout means [VMConfig.Timeout] expired and the VM was killed.
	ErrTimeout = errors.New("boot: VM timed out")
)

// Share is one directory exported through virtio-fs by its own virtiofsd.
type Share struct {
	// Dir is the host directory (virtiofsd's -o source).
	Dir string
	// Tag is the device's tag; default [DefaultTag].
	Tag string
	// Cache is virtiofsd's cache mode: "auto" (default), "none" or "always".
	Cache string
	// AnnounceSubmounts passes -o announce_submounts: host mounts inside Dir show up with their
	// own st_dev in the guest.
	AnnounceSubmounts bool
	// Xattr passes -o xattr.
	Xattr bool
	// VirtiofsdArgs are appended to virtiofsd's command line.
	VirtiofsdArgs []string
}

// NinePShare is a directory exported with virtio-9p (QEMU's own server), for baselines.
type NinePShare struct {
	Dir string
	// Tag is the mount tag (mount -t 9p TAG ...).
	Tag string
	// SecurityModel defaults to "passthrough".
	SecurityModel string
}

// VMConfig describes one VM. Kernel and Initrd are required; the rest has defaults.
type VMConfig struct {
	Kernel, Initrd string
	// Machine is [MachineQ35] (default), [MachinePC] or [MachineMicroVM].
	Machine string
	// CPU is QEMU's -cpu model; empty leaves QEMU's default.
	CPU string
	// CPUs is the number of vCPUs (default 1); MemoryMiB the RAM size (default 512).
	CPUs, MemoryMiB int
	// Hugepages is the number of 2 MiB pages reserved at boot (default [DefaultHugepages]; <0: none).
	Hugepages int
	// Cmdline holds extra kernel arguments.
	Cmdline []string
	Shares  []Share
	NineP   []NinePShare
	// QEMUArgs are appended to QEMU's command line.
	QEMUArgs []string
	// Console receives the raw serial console: firmware, kernel, init, program and sentinels.
	Console io.Writer
	// Output receives only the program's lines (between the start and exit sentinels), with
	// carriage returns removed.
	Output io.Writer
	// Timeout bounds the VM's whole life (default [DefaultTimeout]).
	Timeout time.Duration
	// QEMU and Virtiofsd override the binaries ([DefaultQEMU], [DefaultVirtiofsd]).
	QEMU, Virtiofsd string
	// Log receives progress and virtiofsd's messages; nil discards them.
	Log *slog.Logger
}

// Timings are measured from QEMU's start.
type Timings struct {
	// FirstConsole is when the first console byte arrived; zero if none did.
	FirstConsole time.Duration
	// GuestStart is when the start sentinel arrived: boot to the program's first line.
	GuestStart time.Duration
	// Exit is when QEMU ended.
	Exit time.Duration
}

// VM is a running QEMU with its virtiofsd processes.
type VM struct {
	cfg      VMConfig
	log      *slog.Logger
	args     []string
	started  time.Time
	qemu     *exec.Cmd
	daemons  []*Virtiofsd
	sockDir  string
	done     chan struct{} // closed when everything has stopped and the results below are final
	kill     chan struct{} // closed by Kill
	killOnce sync.Once

	mu sync.Mutex // guards the fields below
	// timings is filled in by the console reader and the supervisor.
	timings Timings
	// exitCode is the sentinel's value, or -1 before it arrived.
	exitCode int
	// tail holds the console's last lines, for error messages.
	tail []string
	// waitErr is the result for Wait.
	waitErr error
}

// Start launches one virtiofsd per share, waits until each listens, then starts QEMU. The VM is
// torn down (QEMU killed, virtiofsd stopped, sockets removed) when the guest powers off, ctx is
// cancelled, the timeout expires or [VM.Kill] is called; [VM.Wait] reports the result. Every child
// runs in its own process group (a terminal's Ctrl-C reaches only the caller, which cancels ctx)
// and gets SIGKILL if the caller dies.
//
// Errors: missing kernel, initrd, share directory or binaries; a virtiofsd that exits or does not
// listen within 10 s; an unknown machine type.
func Start(ctx context.Context, cfg VMConfig) (*VM, error) {
	if err := fillDefaults(&cfg); err != nil {
		return nil, err
	}
	vm := &VM{cfg: cfg, log: cfg.Log, exitCode: -1, done: make(chan struct{}), kill: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			vm.stopDaemons()
			os.RemoveAll(vm.sockDir)
		}
	}()
	var err error
	if vm.sockDir, err = os.MkdirTemp("", "govirtiofs-vm-"); err != nil {
		return nil, err
	}
	var sockets []string
	for i, sh := range cfg.Shares {
		sock := filepath.Join(vm.sockDir, fmt.Sprintf("vfs%d.sock", i))
		d, err := StartVirtiofsd(ctx, VirtiofsdConfig{
			Bin: cfg.Virtiofsd, Socket: sock, Dir: sh.Dir, Cache: sh.Cache,
			AnnounceSubmounts: sh.AnnounceSubmounts, Xattr: sh.Xattr, Args: sh.VirtiofsdArgs,
			Name: sh.Tag, Log: vm.log,
		})
		if err != nil {
			return nil, err
		}
		vm.daemons = append(vm.daemons, d)
		sockets = append(sockets, sock)
	}
	tsc := 0
	if cfg.Machine == MachineMicroVM {
		if tsc, err = hostTSCKHz(); err != nil {
			return nil, err
		}
	}
	if vm.args, err = qemuArgs(&cfg, sockets, tsc); err != nil {
		return nil, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	vm.qemu = exec.Command(cfg.QEMU, vm.args...)
	vm.qemu.Stdout, vm.qemu.Stderr = pw, pw
	vm.qemu.SysProcAttr = childAttr()
	vm.log.Debug("starting QEMU", "args", vm.args)
	vm.started = time.Now()
	if err := vm.qemu.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("boot: starting %s: %w", cfg.QEMU, err)
	}
	pw.Close()
	ok = true
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		vm.readConsole(pr)
		pr.Close()
	}()
	go vm.supervise(ctx, readerDone)
	return vm, nil
}

func fillDefaults(cfg *VMConfig) error {
	if cfg.Kernel == "" || cfg.Initrd == "" {
		return errors.New("boot: VMConfig needs Kernel and Initrd")
	}
	for _, p := range []string{cfg.Kernel, cfg.Initrd} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("boot: %w", err)
		}
	}
	if cfg.Machine == "" {
		cfg.Machine = MachineQ35
	}
	if cfg.CPUs <= 0 {
		cfg.CPUs = 1
	}
	if cfg.MemoryMiB <= 0 {
		cfg.MemoryMiB = DefaultMemoryMiB
	}
	if cfg.Hugepages == 0 {
		cfg.Hugepages = DefaultHugepages
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.QEMU == "" {
		cfg.QEMU = DefaultQEMU
	}
	if cfg.Virtiofsd == "" {
		cfg.Virtiofsd = DefaultVirtiofsd
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Console == nil {
		cfg.Console = io.Discard
	}
	if cfg.Output == nil {
		cfg.Output = io.Discard
	}
	cfg.Shares = append([]Share(nil), cfg.Shares...)
	for i := range cfg.Shares {
		sh := &cfg.Shares[i]
		if sh.Tag == "" {
			sh.Tag = DefaultTag
		}
		if sh.Cache == "" {
			sh.Cache = "auto"
		}
		if fi, err := os.Stat(sh.Dir); err != nil || !fi.IsDir() {
			return fmt.Errorf("boot: share %q: directory %q: not a directory or missing (%v)", sh.Tag, sh.Dir, err)
		}
	}
	cfg.NineP = append([]NinePShare(nil), cfg.NineP...)
	for i := range cfg.NineP {
		if cfg.NineP[i].SecurityModel == "" {
			cfg.NineP[i].SecurityModel = "passthrough"
		}
		if cfg.NineP[i].Tag == "" {
			return fmt.Errorf("boot: 9p share %q has no tag", cfg.NineP[i].Dir)
		}
	}
	return nil
}

// childAttr puts a child in its own process group and kills it when the caller's thread dies.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func (vm *VM) stopDaemons() {
	for _, d := range vm.daemons {
		d.Stop()
	}
}

// readConsole splits the console into lines, feeds Console, Output and the sentinel parser.
func (vm *VM) readConsole(r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	inProgram := false
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			now := time.Since(vm.started)
			vm.cfg.Console.Write(line)
			text := strings.TrimRight(strings.ReplaceAll(string(line), "\r", ""), "\n")
			vm.mu.Lock()
			if vm.timings.FirstConsole == 0 {
				vm.timings.FirstConsole = now
			}
			vm.tail = append(vm.tail, text)
			if len(vm.tail) > 60 {
				vm.tail = vm.tail[len(vm.tail)-60:]
			}
			switch {
			case strings.Contains(text, StartSentinel) && vm.timings.GuestStart == 0:
				vm.timings.GuestStart = now
				inProgram = true
				vm.mu.Unlock()
				continue
			case strings.Contains(text, ExitSentinel+" "):
				if code, ok := parseExitSentinel(text); ok {
					vm.exitCode = code
					inProgram = false
					vm.mu.Unlock()
					continue
				}
			}
			vm.mu.Unlock()
			if inProgram {
				// The wrapper's newline before the exit sentinel leaves an empty line behind.
				if text != "" || !isLastBeforeSentinel(br) {
					io.WriteString(vm.cfg.Output, text+"\n")
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// isLastBeforeSentinel reports whether the buffered input continues with the exit sentinel.
func isLastBeforeSentinel(br *bufio.Reader) bool {
	next, _ := br.Peek(len(ExitSentinel) + 1)
	return bytes.HasPrefix(next, []byte(ExitSentinel+" "))
}

// parseExitSentinel extracts the code from a line containing "GOVIRTIOFS-EXIT <code>".
func parseExitSentinel(line string) (int, bool) {
	i := strings.Index(line, ExitSentinel+" ")
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(line[i+len(ExitSentinel)+1:])
	if len(f) == 0 {
		return 0, false
	}
	code, err := strconv.Atoi(f[0])
	if err != nil || code < 0 || code > 255 {
		return 0, false
	}
	return code, true
}

// supervise waits for QEMU to end by itself or kills it on cancellation, timeout or Kill, then
// stops the daemons and records the result.
func (vm *VM) supervise(ctx context.Context, readerDone chan struct{}) {
	exited := make(chan error, 1)
	go func() { exited <- vm.qemu.Wait() }()
	timer := time.NewTimer(vm.cfg.Timeout)
	defer timer.Stop()
	var cause error
	var qerr error
	select {
	case qerr = <-exited:
	case <-ctx.Done():
		cause = ctx.Err()
	case <-timer.C:
		cause = fmt.Errorf("%w after %v", ErrTimeout, vm.cfg.Timeout)
	case <-vm.kill:
		cause = errors.New("boot: VM killed")
	}
	if cause != nil {
		vm.qemu.Process.Kill()
		qerr = <-exited
	}
	<-readerDone
	vm.stopDaemons()
	os.RemoveAll(vm.sockDir)

	vm.mu.Lock()
	defer vm.mu.Unlock()
	vm.timings.Exit = time.Since(vm.started)
	switch {
	case cause != nil:
		vm.waitErr = cause
	case vm.exitCode < 0:
		vm.waitErr = fmt.Errorf("%w (qemu: %v)\nlast console lines:\n%s", ErrNoExitStatus, exitString(qerr), strings.Join(vm.tail, "\n"))
	case qerr != nil:
		vm.log.Warn("QEMU exited with an error after the guest reported its status", "err", qerr)
	}
	close(vm.done)
}

func exitString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Kill stops the VM now; [VM.Wait] then reports an error. It is safe to call more than once and
// concurrently with Wait.
func (vm *VM) Kill() { vm.killOnce.Do(func() { close(vm.kill) }) }

// Wait waits until the VM and its daemons have stopped and returns the guest program's exit
// status from the sentinel.
//
// Errors: [ErrNoExitStatus] (with the last console lines) if the guest never reported one,
// [ErrTimeout], ctx's error if it was cancelled, an error after [VM.Kill]. exitCode is -1 then.
func (vm *VM) Wait() (exitCode int, err error) {
	<-vm.done
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.waitErr != nil {
		return -1, vm.waitErr
	}
	return vm.exitCode, nil
}

// Timings returns the measurements so far (all of them after Wait).
func (vm *VM) Timings() Timings {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.timings
}

// PIDs returns QEMU's process ID and those of the shares' virtiofsd, in [VMConfig].Shares order.
// Each leads a process group of its own (virtiofsd forks its sandboxed server into it); QEMU
// names its threads (-name debug-threads=on: a vCPU's is "CPU 0/TCG").
func (vm *VM) PIDs() (qemu int, virtiofsd []int) {
	for _, d := range vm.daemons {
		virtiofsd = append(virtiofsd, d.PID())
	}
	return vm.qemu.Process.Pid, virtiofsd
}

// Args returns QEMU's command line (without the program name).
func (vm *VM) Args() []string { return append([]string(nil), vm.args...) }
