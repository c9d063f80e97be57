package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/govirtiofs/govirtiofs/boot"
)

// TestRun boots real guests through the run command (QEMU TCG, one vhost-user-fs device served by
// virtiofsd): the demo on the example share over PCI (q35) and virtio-mmio (microvm), a program
// whose non-zero exit status must become the command's, and an interrupted run (the context is
// cancelled once the guest program starts, as Ctrl-C does), which must exit 130. The demo share
// must be unmounted and removed afterwards in every case.
func TestRun(t *testing.T) {
	root, err := boot.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	hello := filepath.Join(root, "qemu-tests", "guest", "hello")
	demoOut := []string{
		`govirtiofs demo: share tag "share"`,
		"      todo.txt (52 bytes)", "    on-tmpfs.txt (54 bytes)", "readme-link -> docs/readme.md",
		"hello.txt says: Hello from the host!", "wrote and read back written-by-guest.txt",
		"st_dev of /    = ", "mnt is a submount: its st_dev differs from the root's",
	}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr string
		// interruptOn cancels the context when stderr shows this text.
		interruptOn string
	}{
		{"demo", nil, 0, append([]string{"1af4:105a  <- virtio-fs"}, demoOut...),
			"host reads written-by-guest.txt: written by the guest at ", ""},
		{"demo microvm", []string{"--machine", "microvm"}, 0, append([]string{"  virtio-mmio window "}, demoOut...),
			"host reads written-by-guest.txt: written by the guest at ", ""},
		{"exit status", []string{"run", "--prog", hello, "--tag", "t1", "--", "-mmio"}, 1,
			[]string{`hello: GOVIRTIOFS_TAG="t1" args=["-mmio"]`, "no virtio-mmio device"}, "guest finished exit=1", ""},
		// -v copies the console to stderr: interrupt when the guest program starts.
		{"interrupt", []string{"-v"}, 130, nil, "govirtiofs: interrupted", "GOVIRTIOFS-START"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var stdout bytes.Buffer
			stderr := &watchWriter{text: tt.interruptOn, found: cancel}
			code := dispatch(ctx, tt.args, &stdout, stderr)
			if code != tt.wantCode {
				t.Errorf("govirtiofs %q exited %d, want %d", tt.args, code, tt.wantCode)
			}
			for _, want := range tt.wantStdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q", want)
				}
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr lacks %q", tt.wantStderr)
			}
			// The demo share is a temporary copy with a tmpfs on mnt: both must be gone.
			if m := regexp.MustCompile(`example directory dir=(\S+)`).FindStringSubmatch(stderr.String()); m != nil {
				if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
					t.Errorf("demo share %s left behind (stat: %v)", m[1], err)
				}
				mounts, err := os.ReadFile("/proc/self/mounts")
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(mounts), m[1]) {
					t.Errorf("a mount below %s is left behind", m[1])
				}
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			}
		})
	}
}

// watchWriter collects what is written and calls found once the collected text contains text.
type watchWriter struct {
	text  string
	found func()
	mu    sync.Mutex // guards buf and done
	buf   bytes.Buffer
	done  bool
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.text != "" && !w.done && strings.Contains(w.buf.String(), w.text) {
		w.done = true
		w.found()
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
