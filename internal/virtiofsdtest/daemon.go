package virtiofsdtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Path is where Debian's qemu-system-common installs virtiofsd.
const Path = "/usr/lib/qemu/virtiofsd"

// startTimeout bounds the wait for virtiofsd's socket to appear.
const startTimeout = 15 * time.Second

// Options select virtiofsd's command line.
type Options struct {
	// Cache is the -o cache= mode: "auto" (the default when empty),
	// "none" or "always".
	Cache string
	// AnnounceSubmounts adds -o announce_submounts (FUSE_ATTR_SUBMOUNT on
	// host mount points inside the share).
	AnnounceSubmounts bool
	// Xattr adds -o xattr.
	Xattr bool
	// ExtraArgs are appended to the command line as given.
	ExtraArgs []string
}

// Daemon is a running virtiofsd.
type Daemon struct {
	// Socket is the vhost-user socket path. Immutable.
	Socket string
	// PID is the process ID of the started virtiofsd. Immutable.
	PID int
	// Dir is the shared directory. Immutable.
	Dir string

	cmd  *exec.Cmd     // immutable
	done chan struct{} // closed when the process has been waited for

	mu      sync.Mutex    // guards the fields below and stderr's contents
	stderr  *bytes.Buffer // what virtiofsd wrote to stderr, guarded by mu
	waitErr error         // the result of cmd.Wait, set before done closes
}

// lockedWriter appends to a Daemon's stderr buffer under its lock.
type lockedWriter struct{ d *Daemon }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	return w.d.stderr.Write(p)
}

// Args returns virtiofsd's arguments for socket, dir and opts. The
// directory is escaped for virtiofsd's -o option parser (libfuse's
// fuse_opt), which splits an option list at commas and reads a backslash as
// an escape: without it a temporary directory whose name holds a comma
// (a subtest name, say) would be cut short.
func Args(socket, dir string, opts Options) []string {
	cache := opts.Cache
	if cache == "" {
		cache = "auto"
	}
	args := []string{"--socket-path=" + socket, "-o", "source=" + escapeOpt(dir), "-o", "cache=" + cache}
	if opts.AnnounceSubmounts {
		args = append(args, "-o", "announce_submounts")
	}
	if opts.Xattr {
		args = append(args, "-o", "xattr")
	}
	return append(args, opts.ExtraArgs...)
}

// escapeOpt escapes the characters fuse_opt treats specially in an option
// value: the separator (a comma) and the escape character (a backslash).
func escapeOpt(s string) string {
	return strings.NewReplacer(`\`, `\\`, ",", `\,`).Replace(s)
}

// CheckPrerequisites reports why virtiofsd cannot run here, or nil.
func CheckPrerequisites() error {
	if _, err := os.Stat(Path); err != nil {
		return fmt.Errorf("virtiofsd not found at %s (run ./test.sh, which installs qemu-system-x86): %w", Path, err)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("virtiofsd needs root (run ./test.sh as root); euid is %d", os.Geteuid())
	}
	return nil
}

// Start starts virtiofsd sharing dir and waits until its socket listens.
// The daemon is killed when the test ends, and its stderr is logged if the
// test failed. Start fails the test (t.Fatal) if virtiofsd is missing, the
// test is not root, or the socket does not appear in time.
func Start(t testing.TB, dir string, opts Options) *Daemon {
	t.Helper()
	if err := CheckPrerequisites(); err != nil {
		t.Fatal(err)
	}
	sockDir, err := os.MkdirTemp("", "virtiofsd-sock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	d := &Daemon{
		Socket: filepath.Join(sockDir, "vhost.sock"),
		Dir:    dir,
		done:   make(chan struct{}),
		stderr: new(bytes.Buffer),
	}
	d.cmd = exec.Command(Path, Args(d.Socket, dir, opts)...)
	d.cmd.Stderr = lockedWriter{d}
	d.cmd.Stdout = lockedWriter{d}
	// Own process group so Kill reaches the sandboxed child; die with us.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting virtiofsd: %v", err)
	}
	d.PID = d.cmd.Process.Pid
	go func() {
		err := d.cmd.Wait()
		d.mu.Lock()
		d.waitErr = err
		d.mu.Unlock()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.Kill()
		if t.Failed() {
			t.Logf("virtiofsd %v stderr:\n%s", d.cmd.Args, d.Stderr())
		}
	})
	if err := d.waitSocket(); err != nil {
		d.Kill()
		t.Fatalf("virtiofsd %v: %v; stderr:\n%s", d.cmd.Args, err, d.Stderr())
	}
	return d
}

// waitSocket polls until the socket listens, the daemon exits, or
// startTimeout passes. virtiofsd offers no readiness signal other than the
// socket itself, and it binds the socket a moment before it listens, so a
// connect in between is refused. A probing connect is no way to find out:
// virtiofsd serves the first connection it accepts and exits when that one
// closes. So the listening state is read from /proc/net/unix instead.
func (d *Daemon) waitSocket() error {
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if fi, err := os.Stat(d.Socket); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if ok, err := listening(d.Socket); ok || err != nil {
				// Without /proc/net/unix an existing socket is all there
				// is to go on; vhostuser.Dial retries a refused connect.
				return nil
			}
		}
		select {
		case <-d.done:
			return fmt.Errorf("exited before creating its socket: %v", d.Err())
		case <-deadline.C:
			return fmt.Errorf("socket %s did not appear within %v", d.Socket, startTimeout)
		case <-tick.C:
		}
	}
}

// soAcceptCon is __SO_ACCEPTCON, the /proc/net/unix flag of a listening
// socket (include/linux/net.h).
const soAcceptCon = 1 << 16

// listening reports whether /proc/net/unix lists a listening socket bound to
// path. The lines are "Num RefCount Protocol Flags Type St Inode Path", all
// hexadecimal but the inode, with the path last.
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
		flags, err := strconv.ParseUint(f[3], 16, 32)
		if err == nil && flags&soAcceptCon != 0 {
			return true, nil
		}
	}
	return false, nil
}

// Kill kills virtiofsd and its sandboxed child with SIGKILL and waits for
// the started process to be reaped. It may be called more than once.
func (d *Daemon) Kill() {
	select {
	case <-d.done:
		return
	default:
	}
	// The whole process group: the parent and the child serving the device.
	if err := syscall.Kill(-d.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		d.cmd.Process.Kill()
	}
	<-d.done
}

// Done is closed once the started virtiofsd process has exited.
func (d *Daemon) Done() <-chan struct{} { return d.done }

// Err returns how the process exited (nil while it runs or after a clean
// exit).
func (d *Daemon) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.waitErr
}

// Stderr returns what virtiofsd has written to stderr and stdout so far.
func (d *Daemon) Stderr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stderr.String()
}

// ServerPID returns the process that serves the device: the sandboxed
// child once a front end has connected, else the started process.
func (d *Daemon) ServerPID() int {
	pid := d.PID
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil {
			return pid
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return pid
		}
		c, err := strconv.Atoi(f[0])
		if err != nil {
			return pid
		}
		pid = c
	}
}

// FDCount returns the number of open file descriptors (entries in
// /proc/PID/fd) of the process serving the device (see ServerPID). Tests use
// it to check that FORGET and RELEASE give back the host's descriptors.
func (d *Daemon) FDCount() (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.ServerPID()))
	if err != nil {
		return 0, err
	}
	return len(ents), nil
}
