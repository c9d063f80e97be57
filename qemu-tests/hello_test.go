package qemutests

import (
	"fmt"
	"regexp"
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
		// clock is the clocksource the kernel must still use when the program has ended; empty
		// means any.
		clock string
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
			// microvm has no other clocksource than jiffies: tsc=reliable keeps the TSC.
			clock: "tsc",
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
			m := regexp.MustCompile(`guestinit: clocksource (\S+)`).FindStringSubmatch(res.Console)
			switch {
			case m == nil:
				t.Errorf("console lacks the wrapper's clocksource line")
			case tt.clock != "" && m[1] != tt.clock:
				t.Errorf("clocksource %s after the program, want %s", m[1], tt.clock)
			default:
				t.Logf("clocksource %s", m[1])
			}
			if res.Timings.GuestStart <= 0 || res.Timings.GuestStart > res.Timings.Exit {
				t.Errorf("timings %+v: boot-to-first-line not measured", res.Timings)
			}
		})
	}
}

// TestLargeOutput boots guest/flood, which writes 500 kB to stdout in one write, a last line to
// stderr, and exits 3 at once. All of it and the exit status must reach the host: the wrapper gives
// the program the console itself and drains it before powering off.
func TestLargeOutput(t *testing.T) {
	const lines = 5000 // of 100 bytes: 500 kB, 2.5 s of serial port under TCG
	res, err := Boot(t, GuestSpec{
		Pkg: "./qemu-tests/guest/flood", Args: []string{fmt.Sprint(lines), "3"}, Quiet: true,
	})
	if err != nil {
		KeepLog(t, res)
		t.Fatal(err)
	}
	if res.ExitCode != 3 {
		t.Errorf("exit status %d, want 3", res.ExitCode)
	}
	got := strings.Split(strings.TrimSuffix(res.Output, "\n"), "\n")
	if len(got) != lines+1 {
		t.Fatalf("got %d output lines, want %d; last: %q", len(got), lines+1, got[len(got)-1])
	}
	for i, line := range got[:lines] {
		if want := fmt.Sprintf("flood %07d ", i); len(line) != 99 || !strings.HasPrefix(line, want) {
			t.Fatalf("output line %d is %q, want %q padded to 99 bytes", i, line, want)
		}
	}
	if got[lines] != "flood: last line" {
		t.Errorf("last output line %q, want %q", got[lines], "flood: last line")
	}
}
