package qemutests

import (
	"strings"
	"testing"
)

// TestHello boots the q35 VM described in the package comment with guest/hello, which prints
// uname and the PCI devices and exits 0 only if the virtio-fs device 1af4:105a is there.
func TestHello(t *testing.T) {
	res := RunGuest(t, GuestSpec{Pkg: "./qemu-tests/guest/hello", Args: []string{"a b", "c"}})
	for _, want := range []string{
		"hello: uname Linux ",
		`hello: GOVIRTIOFS_TAG="share" args=["a b" "c"]`,
		"hello: virtio-fs device 1af4:105a present",
	} {
		if !strings.Contains(res.Output, want) {
			t.Errorf("guest output lacks %q; output:\n%s", want, res.Output)
		}
	}
	if strings.Contains(res.Output, "GOVIRTIOFS-") {
		t.Errorf("sentinels leaked into the program output:\n%s", res.Output)
	}
	if res.Timings.GuestStart <= 0 || res.Timings.GuestStart > res.Timings.Exit {
		t.Errorf("timings %+v: boot-to-first-line not measured", res.Timings)
	}
}
