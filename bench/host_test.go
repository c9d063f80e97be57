package bench

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govirtiofs/govirtiofs"
	"github.com/govirtiofs/govirtiofs/boot"
)

// TestHostClients runs every workload through govirtiofs over vhost-user against the real
// virtiofsd (one per measurement for host-vhostuser, one for the whole session otherwise) and
// through package os, and checks that every measurement succeeded. It fails if virtiofsd is
// missing or the test does not run as root.
func TestHostClients(t *testing.T) {
	s := tinySizes()
	dir := prepared(t, s, 2)
	ctx := context.Background()
	sessionDaemon, err := boot.StartVirtiofsd(ctx, boot.VirtiofsdConfig{Socket: filepath.Join(t.TempDir(), "s.sock"), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer sessionDaemon.Kill()
	rt := NewRoundTrips(OpGetattr)
	sessionFS, err := govirtiofs.Dial(ctx, sessionDaemon.Socket(), govirtiofs.Options{Cache: govirtiofs.CacheNone, OnRoundTrip: rt.Observe})
	if err != nil {
		t.Fatal(err)
	}
	session := GovirtiofsShared("govirtiofs-shared", sessionFS, rt)
	var recs []Record
	err = Run(ctx, RunConfig{
		Clients: []Client{
			HostVhostuserClient(boot.DefaultVirtiofsd, dir, "auto", nil, govirtiofs.Options{}),
			session,
			HostOSClient(dir),
		},
		Workloads: Workloads(), Sizes: s, Rounds: 2,
		Emit: func(r Record) { recs = append(recs, r) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sessionFS.Close(); err != nil {
		t.Errorf("closing the shared FS: %v", err)
	}
	if want := 3 * 2 * len(Workloads()); len(recs) != want {
		t.Errorf("%d records, want %d", len(recs), want)
	}
	for _, r := range recs {
		if r.Err != "" || r.Value <= 0 {
			t.Errorf("%s / %s round %d: value %v, error %q", r.Workload, r.Client, r.Round, r.Value, r.Err)
		}
		// The shared cache-none FS makes one GETATTR per fstat: its round trips are collected,
		// and each is shorter than the whole fstat at the same percentile; package os has none.
		// (host-vhostuser runs cache auto here: its fstats come from the attribute cache.)
		if r.Client == ClientHostVhostuser {
			continue
		}
		wantRT := r.Workload == "getattr" && r.Client == "govirtiofs-shared"
		if got := r.RTP50 > 0 && r.RTP90 >= r.RTP50; got != wantRT {
			t.Errorf("%s / %s round %d: round trip p50 %v p90 %v, want them: %v", r.Workload, r.Client, r.Round, r.RTP50, r.RTP90, wantRT)
		}
		if wantRT && r.RTP50 > r.P50 {
			t.Errorf("%s / %s round %d: round trip p50 %v us above the whole fstat's %v us", r.Workload, r.Client, r.Round, r.RTP50, r.P50)
		}
	}
}

// TestHostVhostuserClientFails checks that a virtiofsd that cannot start is a failed
// measurement with the reason, not a hang.
func TestHostVhostuserClientFails(t *testing.T) {
	c := HostVhostuserClient(boot.DefaultVirtiofsd, "/nonexistent/dir", "auto", nil, govirtiofs.Options{})
	_, _, err := c.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "virtiofsd") {
		t.Errorf("Start on a missing directory = %v, want a virtiofsd error", err)
	}
}
