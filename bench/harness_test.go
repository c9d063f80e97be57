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

// TestHarnessQuick runs "govirtiofs bench -quick" on three workloads: the host clients, then per
// VMPhases a q35 VM with a vhost-user-fs-pci device (virtiofsd, cache=auto) and a virtio-9p-pci
// device on the same prepared directory. It checks that every client measured every workload and
// that the report files are written. QEMU and virtiofsd must be installed (the test fails
// otherwise); it takes about a minute under TCG.
func TestHarnessQuick(t *testing.T) {
	out := t.TempDir()
	var mu sync.Mutex
	var progress strings.Builder
	rep, err := Harness(context.Background(), HarnessConfig{
		OutDir: out, DataDir: t.TempDir(), Quick: true,
		Workloads: []string{"stat-cold", "seqread-cold", "readdir"},
		Progress:  writerFunc(func(b []byte) { mu.Lock(); progress.Write(b); mu.Unlock() }),
	})
	if err != nil {
		if b, rerr := os.ReadFile(filepath.Join(out, ConsoleLog)); rerr == nil {
			t.Logf("console:\n%s", b)
		}
		t.Fatalf("Harness: %v\nprogress:\n%s", err, progress.String())
	}
	tab := NewTable(rep.Medians)
	for _, w := range []string{"stat-cold", "seqread-cold", "readdir"} {
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
	if err := json.Unmarshal(data, &back); err != nil || len(back) != 3*len(AllClients) {
		t.Errorf("results.json: %d records, %v; want %d", len(back), err, 3*len(AllClients))
	}
	for _, f := range []string{ResultsMarkdown, ResultsSVG, RawRecords, ConsoleLog} {
		if fi, err := os.Stat(filepath.Join(out, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v, want a non-empty file", f, err)
		}
	}
}

type writerFunc func([]byte)

func (w writerFunc) Write(b []byte) (int, error) { w(b); return len(b), nil }
