package virtiofsdtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs/boot"
)

// Path is where Debian's qemu-system-common installs virtiofsd.
const Path = boot.DefaultVirtiofsd

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

	v *boot.Virtiofsd // immutable
}

// Args returns virtiofsd's arguments for socket, dir and opts
// (boot.VirtiofsdArgs: the directory is escaped for virtiofsd's -o parser).
func Args(socket, dir string, opts Options) []string {
	return boot.VirtiofsdArgs(config(socket, dir, opts))
}

func config(socket, dir string, opts Options) boot.VirtiofsdConfig {
	return boot.VirtiofsdConfig{
		Bin: Path, Socket: socket, Dir: dir, Cache: opts.Cache,
		AnnounceSubmounts: opts.AnnounceSubmounts, Xattr: opts.Xattr, Args: opts.ExtraArgs,
		ReadyTimeout: startTimeout,
	}
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

// Start starts virtiofsd sharing dir (boot.StartVirtiofsd) and waits until
// its socket listens. The daemon is killed when the test ends, and its
// output is logged if the test failed. Start fails the test (t.Fatal) if
// virtiofsd is missing, the test is not root, or the socket does not listen
// in time.
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
	sock := filepath.Join(sockDir, "vhost.sock")
	v, err := boot.StartVirtiofsd(context.Background(), config(sock, dir, opts))
	if err != nil {
		t.Fatalf("virtiofsd %q: %v", Args(sock, dir, opts), err)
	}
	d := &Daemon{Socket: sock, PID: v.PID(), Dir: dir, v: v}
	t.Cleanup(func() {
		d.Kill()
		if t.Failed() {
			t.Logf("virtiofsd %q output:\n%s", v.Args(), v.Output())
		}
	})
	return d
}

// Kill kills virtiofsd and its sandboxed child with SIGKILL and waits for
// the started process to be reaped. It may be called more than once.
func (d *Daemon) Kill() { d.v.Kill() }

// Done is closed once the started virtiofsd process has exited.
func (d *Daemon) Done() <-chan struct{} { return d.v.Done() }

// Err returns how the process exited (nil while it runs or after a clean
// exit).
func (d *Daemon) Err() error { return d.v.Err() }

// Stderr returns what virtiofsd has written to stderr and stdout so far.
func (d *Daemon) Stderr() string { return d.v.Output() }

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
