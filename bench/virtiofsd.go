package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/govirtiofs/govirtiofs"
)

// daemon is one virtiofsd serving one vhost-user connection.
type daemon struct {
	cmd    *exec.Cmd
	sock   string
	dir    string        // temporary directory holding sock
	exited chan struct{} // closed once cmd.Wait returned
	mu     sync.Mutex    // guards out
	out    bytes.Buffer  // stderr, for error messages
}

// virtiofsdReady is the line C virtiofsd prints once it listens.
const virtiofsdReady = "Waiting for vhost-user socket connection"

// startVirtiofsd starts bin on a fresh socket sharing dir with the cache mode and waits until it
// listens.
//
// Errors: virtiofsd cannot start, exits, or does not listen within 10 s.
func startVirtiofsd(ctx context.Context, bin, dir, cache string) (*daemon, error) {
	tmp, err := os.MkdirTemp("", "govirtiofs-bench-")
	if err != nil {
		return nil, err
	}
	d := &daemon{sock: filepath.Join(tmp, "vfs.sock"), dir: tmp, exited: make(chan struct{})}
	d.cmd = exec.Command(bin, "--socket-path="+d.sock, "-o", "source="+dir, "-o", "cache="+cache)
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := d.cmd.Start(); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("bench: starting %s: %w", bin, err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			d.mu.Lock()
			if d.out.Len() < 16<<10 {
				d.out.WriteString(sc.Text() + "\n")
			}
			d.mu.Unlock()
			if !signalled && strings.Contains(sc.Text(), virtiofsdReady) {
				signalled = true
				close(ready)
			}
		}
		io.Copy(io.Discard, stderr)
		d.cmd.Wait()
		close(d.exited)
	}()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-ready:
		return d, nil
	case <-d.exited:
		err = fmt.Errorf("bench: virtiofsd exited: %s\n%s", d.cmd.ProcessState, d.output())
	case <-timer.C:
		err = fmt.Errorf("bench: virtiofsd did not listen within 10s:\n%s", d.output())
	case <-ctx.Done():
		err = ctx.Err()
	}
	d.stop()
	return nil, err
}

func (d *daemon) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// stop waits for virtiofsd to exit, which it does once its front end disconnects, and kills its
// process group after 5 s.
func (d *daemon) stop() {
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-d.exited:
	case <-t.C:
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.exited
	}
	os.RemoveAll(d.dir)
}

// HostVhostuserClient is govirtiofs over vhost-user on the host (host-vhostuser): each Start
// starts a virtiofsd (bin) on dir with the cache mode and dials it with govirtiofs.Dial using
// opts. Cold means a fresh virtiofsd and FS: the client caches nothing at the start; the host's
// page cache stays warm.
func HostVhostuserClient(bin, dir, cache string, opts govirtiofs.Options) Client {
	return Client{Name: ClientHostVhostuser, Start: func(ctx context.Context) (FS, func() error, error) {
		d, err := startVirtiofsd(ctx, bin, dir, cache)
		if err != nil {
			return nil, nil, err
		}
		fsys, err := govirtiofs.Dial(ctx, d.sock, opts)
		if err != nil {
			syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			d.stop()
			return nil, nil, err
		}
		return Govirtiofs{FS: fsys}, func() error {
			err := fsys.Close()
			d.stop()
			return err
		}, nil
	}}
}
