package qemutests

import (
	"strings"
	"testing"
)

// TestHello boots the VM described in the package comment (q35, then microvm) with guest/hello,
// which prints uname and the devices it finds and exits 0 only if the virtio-fs device is there.
func TestHello(t *testing.T) {
	tests := []struct {
		machine string
		args    []string
		want    []string
	}{
		{
			machine: "q35",
			args:    []string{"a b", "c"},
			want: []string{
				"hello: uname Linux ",
				`hello: GOVIRTIOFS_TAG="share" args=["a b" "c"]`,
				"hello: virtio-fs device 1af4:105a present",
			},
		},
		{
			machine: "microvm",
			args:    []string{"-mmio"},
			want: []string{
				"hello: uname Linux ",
				": LNRO0005:",
				"virtio-mmio device(s) present",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.machine, func(t *testing.T) {
			res := RunGuest(t, GuestSpec{Pkg: "./qemu-tests/guest/hello", Machine: tt.machine, Args: tt.args})
			for _, want := range tt.want {
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
		})
	}
}
