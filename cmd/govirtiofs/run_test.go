package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govirtiofs/govirtiofs/boot"
)

// TestRun boots real guests through the run command (QEMU TCG, q35, one vhost-user-fs-pci device
// served by virtiofsd): the demo on the example share, and a program whose non-zero exit status
// must become the command's.
func TestRun(t *testing.T) {
	root, err := boot.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	hello := filepath.Join(root, "qemu-tests", "guest", "hello")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr string
	}{
		{"demo", nil, 0, []string{
			`govirtiofs demo: share tag "share"`, "1af4:105a  <- virtio-fs",
			"      todo.txt (52 bytes)", "    on-tmpfs.txt (54 bytes)", "readme-link -> docs/readme.md",
			"hello.txt says: Hello from the host!", "wrote and read back written-by-guest.txt",
			"st_dev of /    = ", "mnt is a submount: its st_dev differs from the root's",
		}, "host reads written-by-guest.txt: written by the guest at "},
		{"exit status", []string{"run", "--prog", hello, "--tag", "t1", "--", "-mmio"}, 1,
			[]string{`hello: GOVIRTIOFS_TAG="t1" args=["-mmio"]`, "no virtio-mmio device"}, "guest finished exit=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := dispatch(context.Background(), tt.args, &stdout, &stderr)
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
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			}
		})
	}
}
