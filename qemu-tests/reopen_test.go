package qemutests

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReopen boots q35 once and runs guest/reopen, which brings the same
// virtio-fs device up and down ten times (govirtiofs.Open and Close) with
// requests between bring-ups. virtiofsd 7.2 used to die on the third or
// fourth reset ("fv_panic: libvhost-user: Error writing eventfd") when the
// driver reset the device with requests still in flight; Close now drains
// the queues first. The host checks the file the last round wrote.
func TestReopen(t *testing.T) {
	const rounds = 10
	share := t.TempDir()
	res := RunGuest(t, GuestSpec{
		Pkg:     "./qemu-tests/guest/reopen",
		Share:   share,
		Cache:   "none",
		Args:    []string{"-n", strconv.Itoa(rounds)},
		Timeout: 45 * time.Second,
	})
	if !strings.Contains(res.Output, "reopen: OK") {
		t.Errorf("guest output lacks reopen: OK:\n%s", res.Output)
	}
	if got := strings.Count(res.Output, "reopen: round "); got != rounds {
		t.Errorf("%d rounds reported, want %d:\n%s", got, rounds, res.Output)
	}
	if strings.Contains(res.Console, "fv_panic") || strings.Contains(res.Console, "Unexpected end-of-file") {
		t.Errorf("virtiofsd or QEMU failed:\n%s", res.Console)
	}
	b, err := os.ReadFile(filepath.Join(share, "reopen.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "round 9\n"; string(b) != want {
		t.Errorf("reopen.txt on the host holds %q, want %q", b, want)
	}
}
