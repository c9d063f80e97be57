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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// VirtiofsdConfig describes one virtiofsd serving one vhost-user socket.
type VirtiofsdConfig struct {
	// Bin is the virtiofsd binary (default [DefaultVirtiofsd]).
	Bin string
	// Socket is the vhost-user socket path virtiofsd creates and listens on. Required.
	Socket string
	// Dir is the shared directory (-o source). Required.
	Dir string
	// Cache is -o cache=: "auto" (default), "none" or "always".
	Cache string
	// AnnounceSubmounts passes -o announce_submounts; Xattr passes -o xattr.
	AnnounceSubmounts, Xattr bool
	// Args are appended to the command line as given.
	Args []string
	// Name identifies the daemon in errors and log lines (a share's tag, say).
	Name string
	// ReadyTimeout bounds the wait until the socket listens (default 10 s).
	ReadyTimeout time.Duration
	// Log receives virtiofsd's output lines at debug level; nil discards them.
	Log *slog.Logger
}

// VirtiofsdArgs returns virtiofsd's arguments for cfg: --socket-path, -o source, -o cache,
// --thread-pool-size=0, the flags, then cfg.Args (a later --thread-pool-size there wins). The directory is escaped for virtiofsd's -o parser (libfuse's fuse_opt),
// which splits an option list at commas and reads a backslash as an escape: without it a
// directory whose name holds a comma would be cut short.
func VirtiofsdArgs(cfg VirtiofsdConfig) []string {
	cache := cfg.Cache
	if cache == "" {
		cache = "auto"
	}
	args := []string{"--socket-path=" + cfg.Socket, "-o", "source=" + escapeFuseOpt(cfg.Dir), "-o", "cache=" + cache,
		// Serve each queue's requests on the queue's own thread. Debian's virtiofsd 7.2
		// defaults to this already; said explicitly because a pool (a nonzero size) adds a
		// hand-off per request, and its new worker threads are killed by virtiofsd's own
		// seccomp filter (SIGSYS on sched_getaffinity) once requests overlap.
		"--thread-pool-size=0"}
	if cfg.AnnounceSubmounts {
		args = append(args, "-o", "announce_submounts")
	}
	if cfg.Xattr {
		args = append(args, "-o", "xattr")
	}
	return append(args, cfg.Args...)
}

// escapeFuseOpt escapes the characters fuse_opt treats specially in an option value: the
// separator (a comma) and the escape character (a backslash).
func escapeFuseOpt(s string) string {
	return strings.NewReplacer(`\`, `\\`, ",", `\,`).Replace(s)
}

// Virtiofsd is a running virtiofsd. It runs in its own process group (with the default
// sandbox=namespace it forks a child that serves the device once a front end connects, and the
// group reaches both) and gets SIGKILL if the thread that started it dies.
type Virtiofsd struct {
	cfg    VirtiofsdConfig // immutable
	cmd    *exec.Cmd       // immutable after start
	exited chan struct{}   // closed after cmd.Wait returned

	mu      sync.Mutex   // guards the fields below
	out     bytes.Buffer // stdout and stderr, up to maxOutput bytes, for error messages
	waitErr error        // cmd.Wait's result, set before exited closes
}

// maxOutput bounds the output a Virtiofsd keeps.
const maxOutput = 64 << 10

// virtiofsdReady is the line C virtiofsd prints once it listens on its socket.
const virtiofsdReady = "Waiting for vhost-user socket connection"

// StartVirtiofsd starts virtiofsd as cfg says and waits until its socket listens: until it
// prints its ready line, or /proc/net/unix shows the socket listening (virtiofsd binds the
// socket a moment before it listens, and a probing connect is no test: virtiofsd serves the
// first connection it accepts and exits when that one closes).
//
// Errors: missing Socket or Dir, the binary cannot start, virtiofsd exits or does not listen
// within cfg.ReadyTimeout (with its output), ctx's error. On error nothing is left running.
func StartVirtiofsd(ctx context.Context, cfg VirtiofsdConfig) (*Virtiofsd, error) {
	if cfg.Socket == "" || cfg.Dir == "" {
		return nil, errors.New("boot: VirtiofsdConfig needs Socket and Dir")
	}
	if cfg.Bin == "" {
		cfg.Bin = DefaultVirtiofsd
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	d := &Virtiofsd{cfg: cfg, exited: make(chan struct{})}
	d.cmd = exec.Command(cfg.Bin, VirtiofsdArgs(cfg)...)
	d.cmd.SysProcAttr = childAttr()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	d.cmd.Stdout, d.cmd.Stderr = pw, pw
	err = d.cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("boot: starting virtiofsd %s: %w", d.name(), err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			if d.out.Len() < maxOutput {
				d.out.WriteString(line + "\n")
			}
			d.mu.Unlock()
			cfg.Log.Debug("virtiofsd", "name", cfg.Name, "line", line)
			if !signalled && strings.Contains(line, virtiofsdReady) {
				signalled = true
				close(ready)
			}
		}
		io.Copy(io.Discard, pr)
		pr.Close()
		err := d.cmd.Wait()
		d.mu.Lock()
		d.waitErr = err
		d.mu.Unlock()
		close(d.exited)
	}()
	timer := time.NewTimer(cfg.ReadyTimeout)
	defer timer.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ready:
		case <-tick.C:
			if !socketListening(cfg.Socket) {
				continue
			}
		case <-d.exited:
			return nil, fmt.Errorf("boot: virtiofsd %s exited: %s\n%s", d.name(), d.cmd.ProcessState, d.Output())
		case <-timer.C:
			d.Kill()
			return nil, fmt.Errorf("boot: virtiofsd %s did not listen within %v:\n%s", d.name(), cfg.ReadyTimeout, d.Output())
		case <-ctx.Done():
			d.Kill()
			return nil, ctx.Err()
		}
		cfg.Log.Debug("virtiofsd listening", "name", cfg.Name, "dir", cfg.Dir, "socket", cfg.Socket)
		return d, nil
	}
}

// name is how messages refer to d.
func (d *Virtiofsd) name() string {
	if d.cfg.Name != "" {
		return fmt.Sprintf("for %q", d.cfg.Name)
	}
	return "on " + d.cfg.Socket
}

// socketListening reports whether path is a socket that listens. Without /proc/net/unix an
// existing socket is all there is to go on (vhost-user front ends retry a refused connect).
func socketListening(path string) bool {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return false
	}
	ok, err := listening(path)
	return ok || err != nil
}

// soAcceptCon is __SO_ACCEPTCON, the /proc/net/unix flag of a listening socket
// (include/linux/net.h).
const soAcceptCon = 1 << 16

// listening reports whether /proc/net/unix lists a listening socket bound to path. The lines are
// "Num RefCount Protocol Flags Type St Inode Path", all hexadecimal but the inode, path last.
func listening(path string) (bool, error) {
	b, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return false, err
	}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSuffix(line, "\n")
		if !strings.HasSuffix(line, " "+path) {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		if flags, err := strconv.ParseUint(f[3], 16, 32); err == nil && flags&soAcceptCon != 0 {
			return true, nil
		}
	}
	return false, nil
}

// Socket returns the vhost-user socket path.
func (d *Virtiofsd) Socket() string { return d.cfg.Socket }

// PID returns the started process's ID (the leader of its process group).
func (d *Virtiofsd) PID() int { return d.cmd.Process.Pid }

// Args returns virtiofsd's command line, program name first.
func (d *Virtiofsd) Args() []string { return append([]string(nil), d.cmd.Args...) }

// Done is closed once the started process has exited and been reaped.
func (d *Virtiofsd) Done() <-chan struct{} { return d.exited }

// Err returns how the process exited: nil while it runs or after a clean exit.
func (d *Virtiofsd) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.waitErr
}

// Output returns what virtiofsd has written to stdout and stderr so far (the first 64 KiB).
func (d *Virtiofsd) Output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// Stop ends virtiofsd: it exits by itself once its front end disconnects; SIGTERM, then SIGKILL
// after 2 s, handle the other cases. Then it ends the rest of the process group: the sandboxed
// child gets SIGTERM only when the parent has gone, so it could outlive Stop by some
// milliseconds. Stop may be called more than once.
func (d *Virtiofsd) Stop() {
	defer d.endGroup()
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case <-d.exited:
	case <-t.C:
		d.cmd.Process.Kill()
		<-d.exited
	}
}

// Kill kills virtiofsd's whole process group with SIGKILL and waits until the started process
// is reaped and no member of the group runs. It may be called more than once.
func (d *Virtiofsd) Kill() {
	if err := syscall.Kill(-d.PID(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		d.cmd.Process.Kill()
	}
	<-d.exited
	d.endGroup()
}

// endGroup kills what is left of the exited virtiofsd's process group and waits up to 2 s until
// none of it runs. Zombies count as ended: the orphans are reaped by init, at its own pace. The
// group's id cannot be reused while a member exists (childAttr made virtiofsd its leader).
func (d *Virtiofsd) endGroup() {
	pgid := d.PID()
	if syscall.Kill(-pgid, syscall.SIGKILL) != nil {
		return // ESRCH: the group is empty
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(liveGroupMembers(pgid)) > 0 && time.Now().Before(deadline) {
		// The members are not our children and cannot be waited for; poll for their end.
		time.Sleep(5 * time.Millisecond)
	}
}

// liveGroupMembers returns the processes of group pgid that are not zombies, from /proc.
func liveGroupMembers(pgid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var live []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		if state, group, ok := parseProcStat(string(b)); ok && group == pgid && state != "Z" && state != "X" {
			live = append(live, pid)
		}
	}
	return live
}

// parseProcStat returns the state and process group fields of a /proc/<pid>/stat line:
// "pid (comm) state ppid pgrp ...", where comm may hold spaces and parentheses.
func parseProcStat(stat string) (state string, pgrp int, ok bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 3 {
		return "", 0, false
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return "", 0, false
	}
	return f[0], pgrp, true
}
