package qemutests

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs"
	"github.com/govirtiofs/govirtiofs/internal/suite"
	"github.com/govirtiofs/govirtiofs/internal/virtiofsdtest"
	"github.com/govirtiofs/govirtiofs/qemu-tests/guest/vfs"
)

// TestVFS boots the default VM (q35: vhost-user-fs-pci) and then a microvm (vhost-user-fs-device
// on virtio-mmio), each once, with tag "share" served by virtiofsd with cache=auto, -o xattr,
// -o announce_submounts and -o flock on a directory the host has prepared: the vfs.Setup file
// holding the os-comparison reference recorded on the host (same filesystem as the share), a
// tree written with package os for fstest.TestFS, and a tmpfs mounted at "mnt" inside the share.
// The guest program, guest/vfs (go test -c), opens the device with govirtiofs.Open once per client
// cache mode (none, auto, always) and runs the shared suites of internal/suite: the comparison
// cases, io/fs name checks, names, flock, concurrency and submounts, and fstest.TestFS on a tree
// it writes (cache auto) and on the host's (cache always; fstest's many tiny reads make it the
// slowest suite, and with cache none each is a round trip: minutes under TCG); with cache none it also times GETATTR round trips (Stat of the root).
// After it exits the host checks what it left in the share.
func TestVFS(t *testing.T) {
	hostStat := hostGetattrLatency(t)
	t.Logf("host (vhost-user) Stat(.) with cache none: %v", hostStat)
	for _, machine := range []string{"q35", "microvm"} {
		t.Run(machine, func(t *testing.T) {
			res := runVFS(t, machine)
			guestStat := "(not reported)"
			if m := latencyLine.FindStringSubmatch(res.Output); m != nil {
				guestStat = m[1]
			}
			t.Logf("%s: boot to first line %v, guest suites %v, image %.1f MiB; Stat(.) with cache none: guest %s, host %v",
				machine, res.Timings.GuestStart.Round(time.Millisecond),
				(res.Timings.Exit - res.Timings.GuestStart).Round(time.Millisecond),
				float64(res.Image.Size)/(1<<20), guestStat, hostStat)
		})
	}
}

var (
	latencyLine = regexp.MustCompile(regexp.QuoteMeta(vfs.LatencyPrefix) + `(.*)`)
	failLine    = regexp.MustCompile(`(?m)^\s*(--- FAIL: |` + regexp.QuoteMeta(vfs.ResultPrefix) + `FAIL ).*$`)
)

// guestModes are the client cache modes the guest runs the suites in.
var guestModes = []string{"none", "auto", "always"}

// runVFS prepares a share, boots machine with guest/vfs on it and checks the result.
func runVFS(t *testing.T, machine string) Result {
	share := t.TempDir()
	ref, err := suite.RecordReference(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	setup := &vfs.Setup{
		Reference: ref, Tree: "tree", Submount: "mnt",
		Modes: guestModes, IOFSModes: []string{"auto"}, HostTreeModes: []string{"always"},
		LatencyCalls: 1000, Workers: 8, Rounds: 5,
	}
	if err := os.Mkdir(filepath.Join(share, setup.Tree), 0o755); err != nil {
		t.Fatal(err)
	}
	if setup.TreeNames, err = suite.WriteTree(suite.OS(filepath.Join(share, setup.Tree))); err != nil {
		t.Fatal(err)
	}
	mnt := virtiofsdtest.Submount(t, share, setup.Submount)
	if err := os.WriteFile(filepath.Join(mnt, suite.SubmountInner), []byte(suite.SubmountData), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := vfs.WriteSetup(share, setup); err != nil {
		t.Fatal(err)
	}

	var cmdline []string
	if machine == "microvm" {
		// microvm has no HPET or ACPI PM timer: if the clocksource watchdog, starved on a busy
		// host, marks the TSC unstable, the kernel falls back to jiffies, and every timed wait
		// (the driver's polling back-off included) gets 4 ms coarse.
		cmdline = []string{"tsc=reliable"}
	}
	res := RunGuest(t, GuestSpec{
		Pkg: "./qemu-tests/guest/vfs", Test: true, BuildFlags: []string{"-tags=guest"},
		// Without -test.v: its results come in one burst at the end, which the console may not
		// have sent when the VM powers off; the guest prints a line per suite as it ends.
		Args:    []string{"-test.v=false", "-test.run=^TestGuest$"},
		Machine: machine, Cmdline: cmdline, Share: share, Cache: "auto",
		AnnounceSubmounts: true, Xattr: true, VirtiofsdArgs: []string{"-o", "flock"},
		Timeout: 10 * time.Minute,
	})
	if fails := failLine.FindAllString(res.Output, -1); len(fails) > 0 {
		t.Errorf("guest failures:\n%s", strings.Join(fails, "\n"))
	}
	for _, mode := range guestModes {
		subs := []string{"Compare", "IOFSInvalid", "Names", "Locks", "Concurrency", "Submount"}
		if slices.Contains(setup.IOFSModes, mode) {
			subs = append(subs, "IOFS")
		}
		if slices.Contains(setup.HostTreeModes, mode) {
			subs = append(subs, "IOFSHostTree")
		}
		for _, sub := range subs {
			if want := vfs.ResultPrefix + "PASS " + mode + "/" + sub + " "; !strings.Contains(res.Output, want) {
				t.Errorf("guest output lacks %q", want)
			}
		}
		// What the guest wrote is on the host.
		p := filepath.Join(share, vfs.ModeDir(mode), vfs.FromGuest)
		if b, err := os.ReadFile(p); err != nil || string(b) != vfs.FromGuestData(mode) {
			t.Errorf("host reads %q, %v from %s; want %q", b, err, p, vfs.FromGuestData(mode))
		}
		// So are the trees the comparison cases made.
		if _, err := os.Lstat(filepath.Join(share, vfs.ModeDir(mode), "compare", "c0", "bad")); err != nil {
			t.Errorf("the comparison's tree is not on the host: %v", err)
		}
	}
	// The zero-copy writes: on the host as the guest meant them.
	if want := vfs.ResultPrefix + "PASS zerocopy/Write "; !strings.Contains(res.Output, want) {
		t.Errorf("guest output lacks %q", want)
	}
	if b, err := os.ReadFile(filepath.Join(share, vfs.ZeroCopyFile)); err != nil || !bytes.Equal(b, vfs.ZeroCopyData()) {
		t.Errorf("host reads %d bytes, %v from %s; want vfs.ZeroCopyData's %d", len(b), err, vfs.ZeroCopyFile, vfs.ZeroCopySize)
	}
	if !latencyLine.MatchString(res.Output) {
		t.Errorf("guest output lacks the %q line", vfs.LatencyPrefix)
	}
	if t.Failed() {
		KeepLog(t, res)
	}
	return res
}

// hostGetattrLatency times Stat(".") with cache none over vhost-user to a virtiofsd on the host,
// as the guest does over PCI and MMIO.
func hostGetattrLatency(t *testing.T) suite.Latency {
	t.Helper()
	d := virtiofsdtest.Start(t, t.TempDir(), virtiofsdtest.Options{Cache: "none"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := govirtiofs.Dial(ctx, d.Socket, govirtiofs.Options{Cache: govirtiofs.CacheNone})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := suite.StatLatency(f, ".", 1000)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
