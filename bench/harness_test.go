package bench

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestGuestLines(t *testing.T) {
	var recs []Record
	var progress []string
	g := &guestLines{emit: func(r Record) { recs = append(recs, r) }, progress: func(s string) { progress = append(progress, s) }}
	rec := FormatRecord(Record{Workload: "readdir", Client: Client9PNone, Unit: UnitEntries, Value: 12, Round: 1})
	input := "bench: phase kernel round 1: 4 clients\n" + rec[:10]
	g.Write([]byte(input))
	g.Write([]byte(rec[10:] + "\r\n\nbench: round 1/1 readdir\npartial"))
	g.flush()
	if len(recs) != 1 || recs[0].Value != 12 || recs[0].Client != Client9PNone {
		t.Errorf("records %+v, want the one readdir record", recs)
	}
	want := []string{"phase kernel round 1: 4 clients", "round 1/1 readdir", "partial"}
	if !slices.Equal(progress, want) {
		t.Errorf("progress %q, want %q", progress, want)
	}
	if tail := g.tail(); !strings.Contains(tail, "partial") || strings.Contains(tail, RecordPrefix) {
		t.Errorf("tail %q: want the progress lines only", tail)
	}
}

// TestHarnessQuick runs "govirtiofs bench -quick" on three workloads: the host clients, then one
// q35 VM with five vhost-user-fs-pci devices (one per govirtiofs cache mode, one for priming and
// one for the kernel's virtiofs, each with its own virtiofsd, all given --thread-pool-size=0 through
// HarnessConfig.VirtiofsdArgs, as host-vhostuser's virtiofsd is) and a virtio-9p-pci device on the same prepared
// directory. It checks that every client measured every workload, that the report files are
// written and say how virtiofsd was run, and that a CPU profile came back per govirtiofs client
// and workload. QEMU and virtiofsd must be installed (the test fails
// otherwise); it takes about a minute under TCG.
func TestHarnessQuick(t *testing.T) {
	out, prof := t.TempDir(), t.TempDir()
	var mu sync.Mutex
	var progress strings.Builder
	rep, err := Harness(context.Background(), HarnessConfig{
		OutDir: out, DataDir: t.TempDir(), Quick: true,
		Workloads:     []string{"stat-cold", "seqread-cold", "readdir", "getattr"},
		VirtiofsdArgs: []string{"--thread-pool-size=0"},
		CPUProfileDir: prof,
		Progress:      writerFunc(func(b []byte) { mu.Lock(); progress.Write(b); mu.Unlock() }),
	})
	if err != nil {
		if b, rerr := os.ReadFile(filepath.Join(out, ConsoleLog)); rerr == nil {
			t.Logf("console:\n%s", b)
		}
		t.Fatalf("Harness: %v\nprogress:\n%s", err, progress.String())
	}
	tab := NewTable(rep.Medians)
	for _, w := range []string{"stat-cold", "seqread-cold", "readdir", "getattr"} {
		for _, c := range AllClients {
			if v, ok := tab.Value(w, c); !ok || v <= 0 {
				t.Errorf("%s / %s: no figure (%+v)", w, c, tab[w][c])
			}
		}
	}
	data, err := os.ReadFile(filepath.Join(out, ResultsJSON))
	if err != nil {
		t.Fatal(err)
	}
	var back []Record
	if err := json.Unmarshal(data, &back); err != nil || len(back) != 4*len(AllClients) {
		t.Errorf("results.json: %d records, %v; want %d", len(back), err, 4*len(AllClients))
	}
	// The round-trip goal is judged on the GETATTR round trips the driver timed, in the guest
	// and on the host alike.
	for _, c := range []string{ClientGovirtiofsNone, ClientHostVhostuser} {
		if r := tab["getattr"][c]; r.RTP50 <= 0 || r.RTP50 > r.P50 {
			t.Errorf("getattr / %s: round trip p50 %v us, whole fstat p50 %v us; want 0 < round trip <= fstat", c, r.RTP50, r.P50)
		}
	}
	if !slices.ContainsFunc(Targets(tab), func(g Target) bool { return g.Goal == RoundTripGoal && g.Ratio > 0 }) {
		t.Errorf("no round-trip target among %+v", Targets(tab))
	}
	md, err := os.ReadFile(filepath.Join(out, ResultsMarkdown))
	if err != nil || !strings.Contains(string(md), "-o cache=auto --thread-pool-size=0") {
		t.Errorf("results.md does not give the virtiofsd options (%v):\n%s", err, md)
	}
	// Each phase on one host CPU where there are two; said either way, and nothing failed.
	want := "VM phase: not placed"
	if placeCPU(false).active() {
		want = "VM phase: round-trip workloads on host CPU"
	}
	if !strings.Contains(string(md), want) || strings.Contains(string(md), "Placement failed") {
		t.Errorf("results.md does not say %q, or says a placement failed:\n%s", want, md)
	}
	if n := strings.Count(progress.String(), "VM: booting"); n != 1 {
		t.Errorf("%d VM boots, want 1:\n%s", n, progress.String())
	}
	// The priming FS (its own device in the guest, package os on the host) read every set.
	if strings.Contains(progress.String(), "priming with") {
		t.Errorf("a priming failed:\n%s", progress.String())
	}
	// One CPU profile per govirtiofs client and workload (one round).
	for _, c := range GovirtiofsClients {
		for _, w := range []string{"stat-cold", "seqread-cold", "readdir"} {
			f := filepath.Join(prof, c+"-"+w+"-r1.pprof")
			if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
				t.Errorf("CPU profile %s: %v, want a non-empty file", f, err)
			}
		}
	}
	for _, f := range []string{ResultsMarkdown, ResultsSVG, RawRecords, ConsoleLog} {
		if fi, err := os.Stat(filepath.Join(out, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v, want a non-empty file", f, err)
		}
	}
}

func TestDefaultTimeout(t *testing.T) {
	tests := []struct {
		rounds int
		sizes  Sizes
		want   time.Duration
	}{
		{3, DefaultSizes(), 35 * time.Minute},
		{1, DefaultSizes(), 15 * time.Minute},
		{1, QuickSizes(), 5*time.Minute + 10*time.Minute/16},
	}
	for _, tt := range tests {
		if got := defaultTimeout(tt.rounds, tt.sizes); got != tt.want {
			t.Errorf("defaultTimeout(%d, big file %d) = %v, want %v", tt.rounds, tt.sizes.BigFileSize, got, tt.want)
		}
	}
}

func TestMoveProfiles(t *testing.T) {
	from, to := filepath.Join(t.TempDir(), "from"), filepath.Join(t.TempDir(), "a", "to")
	if n, err := moveProfiles(from, to); n != 0 || err != nil {
		t.Errorf("moveProfiles of a missing directory = %d, %v; want 0, nil", n, err)
	}
	if err := os.Mkdir(from, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"x.pprof", "y.pprof"} {
		if err := os.WriteFile(filepath.Join(from, name), []byte(name), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := moveProfiles(from, to); n != 2 || err != nil {
		t.Fatalf("moveProfiles = %d, %v; want 2, nil", n, err)
	}
	if b, err := os.ReadFile(filepath.Join(to, "y.pprof")); string(b) != "y.pprof" {
		t.Errorf("moved y.pprof holds %q, %v", b, err)
	}
	if _, err := os.Stat(from); !os.IsNotExist(err) {
		t.Errorf("%s still there after the move: %v", from, err)
	}
}

type writerFunc func([]byte)

func (w writerFunc) Write(b []byte) (int, error) { w(b); return len(b), nil }
