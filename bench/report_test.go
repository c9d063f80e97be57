package bench

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{2, 2}, 2},
	}
	for _, tc := range tests {
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Errorf("Median(nil) is not NaN")
	}
	in := []float64{3, 1, 2}
	Median(in)
	if in[0] != 3 {
		t.Errorf("Median sorted its argument")
	}
}

// sample is a run's records: three rounds, with one failure that later rounds make up for and
// one client that always fails.
func sample() []Record {
	var recs []Record
	add := func(w, c, unit string, vals ...float64) {
		for i, v := range vals {
			recs = append(recs, Record{Workload: w, Client: c, Unit: unit, Value: v, Round: i + 1})
		}
	}
	add("readdir", ClientHostOS, UnitEntries, 9000, 10000, 11000)
	add("stat-cold", Client9PLoose, UnitOps, 600, 500, 700)
	add("stat-cold", Client9PNone, UnitOps, 300, 330, 310)
	add("stat-cold", ClientGovirtiofsAuto, UnitOps, 7000, 6000, 6500)
	add("stat-cold", ClientGovirtiofsNone, UnitOps, 1000, 1300, 1200)
	add("stat-cold", ClientKernelVirtiofs, UnitOps, 750, 800, 700)
	add("stat-cold", ClientHostVhostuser, UnitOps, 20000, 21000, 19000)
	add("seqread-cold", Client9PNone, UnitMBs, 300, 200, 250)
	add("seqread-cold", ClientGovirtiofsAlways, UnitMBs, 400)
	recs = append(recs, Record{Workload: "seqread-cold", Client: ClientGovirtiofsAlways, Unit: UnitMBs, Round: 2, Err: "boom"})
	add("seqread-cold", ClientKernelVirtiofs, UnitMBs, 125)
	recs = append(recs, Record{Workload: "seqread-cold", Client: Client9PMmap, Unit: UnitMBs, Round: 1, Err: "mount: no channel"})
	return recs
}

func TestAggregate(t *testing.T) {
	med := Aggregate(sample())
	var got []string
	for _, r := range med {
		got = append(got, r.Workload+"/"+r.Client)
	}
	want := []string{
		"stat-cold/govirtiofs-none", "stat-cold/govirtiofs-auto", "stat-cold/kernel-virtiofs",
		"stat-cold/kernel-9p-none", "stat-cold/kernel-9p-loose", "stat-cold/host-vhostuser",
		"seqread-cold/govirtiofs-always", "seqread-cold/kernel-virtiofs", "seqread-cold/kernel-9p-none",
		"seqread-cold/kernel-9p-mmap", "readdir/host-os",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("order:\n got %v\nwant %v", got, want)
	}
	tab := NewTable(med)
	checks := []struct {
		w, c string
		want float64
		ok   bool
	}{
		{"stat-cold", ClientGovirtiofsAuto, 6500, true},
		{"stat-cold", Client9PLoose, 600, true},
		{"seqread-cold", ClientGovirtiofsAlways, 400, true},
		{"seqread-cold", Client9PMmap, 0, false},
		{"readdir", ClientHostOS, 10000, true},
		{"readdir", ClientGovirtiofsAuto, 0, false},
	}
	for _, c := range checks {
		v, ok := tab.Value(c.w, c.c)
		if v != c.want || ok != c.ok {
			t.Errorf("Value(%s, %s) = %v, %v; want %v, %v", c.w, c.c, v, ok, c.want, c.ok)
		}
	}
	if r := tab["seqread-cold"][Client9PMmap]; r.Err != "mount: no channel" {
		t.Errorf("failed-only record %+v lost its error", r)
	}
	if r := tab["seqread-cold"][ClientGovirtiofsAlways]; r.Err != "" || len(r.Samples) != 1 {
		t.Errorf("record %+v: a failure in one round must not hide the others", r)
	}
	if v, who, ok := tab.Best9P("stat-cold"); v != 600 || who != Client9PLoose || !ok {
		t.Errorf("Best9P(stat-cold) = %v, %s, %v", v, who, ok)
	}
}

func TestTargets(t *testing.T) {
	ts := Targets(NewTable(Aggregate(sample())))
	type row struct {
		goal, w, client, against string
		ratio                    float64
		met                      bool
		rounds, roundsMet        int
	}
	want := []row{
		// Per round 7000/600, 6000/500, 6500/700: the last is 9.3x.
		{"metadata >= 10x best 9p", "stat-cold", ClientGovirtiofsAuto, Client9PLoose, 6500.0 / 600, true, 3, 2},
		{"metadata >= 3x kernel virtiofs", "stat-cold", ClientGovirtiofsAuto, ClientKernelVirtiofs, 6500.0 / 750, true, 3, 3},
		// govirtiofs-always has round 1 only (round 2 failed): 400/300.
		{"data cold >= 2x best 9p", "seqread-cold", ClientGovirtiofsAlways, Client9PNone, 400.0 / 250, false, 1, 0},
		{"data >= 1x kernel virtiofs", "seqread-cold", ClientGovirtiofsAlways, ClientKernelVirtiofs, 400.0 / 125, true, 1, 1},
	}
	if len(ts) != len(want) {
		t.Fatalf("%d targets, want %d: %+v", len(ts), len(want), ts)
	}
	for i, w := range want {
		g := ts[i]
		if g.Goal != w.goal || g.Workload != w.w || g.Client != w.client || g.Against != w.against ||
			math.Abs(g.Ratio-w.ratio) > 1e-9 || g.Met != w.met || g.Rounds != w.rounds || g.RoundsMet != w.roundsMet {
			t.Errorf("target %d = %+v, want %+v", i, g, w)
		}
	}
}

// TestRoundTripTargets checks that the round-trip goal compares govirtiofs-none with
// host-vhostuser on getattr only, whatever the other modes and the whole-operation workloads
// measured.
func TestRoundTripTargets(t *testing.T) {
	tab := NewTable(Aggregate([]Record{
		{Workload: "getattr", Client: ClientGovirtiofsNone, Unit: UnitOps, Value: 30000, P50: 60, P90: 90, RTP50: 30, RTP90: 45},
		{Workload: "getattr", Client: ClientGovirtiofsAlways, Unit: UnitOps, Value: 900000, P50: 1, P90: 2},
		{Workload: "getattr", Client: ClientKernelVirtiofs, Unit: UnitOps, Value: 400000, P50: 2, P90: 3},
		{Workload: "getattr", Client: ClientHostVhostuser, Unit: UnitOps, Value: 50000, P50: 20, P90: 30, RTP50: 18, RTP90: 25},
		{Workload: "create", Client: ClientGovirtiofsAuto, Unit: UnitOps, Value: 1000},
		{Workload: "create", Client: ClientHostVhostuser, Unit: UnitOps, Value: 1800},
		{Workload: "stat-warm", Client: ClientGovirtiofsAuto, Unit: UnitOps, Value: 17000},
		{Workload: "stat-warm", Client: ClientHostVhostuser, Unit: UnitOps, Value: 800000},
	}))
	ts := Targets(tab)
	if len(ts) != 1 {
		t.Fatalf("%d targets, want 1 (getattr only: whole operations are informational): %+v", len(ts), ts)
	}
	if g := ts[0]; g.Goal != RoundTripGoal || g.Workload != "getattr" || g.Client != ClientGovirtiofsNone ||
		g.Against != ClientHostVhostuser || math.Abs(g.Ratio-0.6) > 1e-9 || g.Want != 0.5 || !g.Met {
		t.Errorf("target = %+v, want getattr govirtiofs-none / host-vhostuser = 0.6 of 0.5, met", g)
	}
	tab = NewTable(Aggregate([]Record{
		{Workload: "getattr", Client: ClientGovirtiofsNone, Unit: UnitOps, Value: 20000, P50: 50, P90: 70, RTP50: 45, RTP90: 60},
		{Workload: "getattr", Client: ClientHostVhostuser, Unit: UnitOps, Value: 50000, P50: 20, P90: 30, RTP50: 18, RTP90: 25},
	}))
	if ts := Targets(tab); len(ts) != 1 || ts[0].Met || math.Abs(ts[0].Ratio-0.4) > 1e-9 {
		t.Errorf("targets %+v, want one unmet at 0.4", ts)
	}
	// Without round-trip figures (a client that collects none) there is no goal to judge.
	tab = NewTable(Aggregate([]Record{
		{Workload: "getattr", Client: ClientGovirtiofsNone, Unit: UnitOps, Value: 20000, P50: 50, P90: 70},
		{Workload: "getattr", Client: ClientHostVhostuser, Unit: UnitOps, Value: 50000, P50: 20, P90: 30},
	}))
	if ts := Targets(tab); len(ts) != 0 {
		t.Errorf("targets %+v without round trips, want none", ts)
	}
}

// TestReportRoundTrips checks the latencies' medians, the round-trip sections of results.md and
// that results.json keeps its record shape with the latencies added.
func TestReportRoundTrips(t *testing.T) {
	var recs []Record
	add := func(w, c string, vals, p50, p90, rt50, rt90 []float64) {
		for i, v := range vals {
			r := Record{Workload: w, Client: c, Unit: UnitOps, Value: v, Round: i + 1}
			if p50 != nil {
				r.P50, r.P90 = p50[i], p90[i]
			}
			if rt50 != nil {
				r.RTP50, r.RTP90 = rt50[i], rt90[i]
			}
			recs = append(recs, r)
		}
	}
	add("getattr", ClientGovirtiofsNone, []float64{30000, 32000, 28000}, []float64{31, 30, 35}, []float64{40, 38, 50}, []float64{12, 11, 14}, []float64{20, 19, 22})
	add("getattr", ClientHostVhostuser, []float64{50000, 52000, 48000}, []float64{19, 18, 21}, []float64{25, 22, 30}, []float64{7, 6, 9}, []float64{11, 10, 13})
	add("getattr", "kernel-9p-loose", []float64{30000, 30000, 30000}, []float64{8, 8, 8}, []float64{9, 9, 9}, nil, nil)
	add("stat-cold", ClientGovirtiofsAuto, []float64{3000, 3100, 2900}, nil, nil, nil, nil)
	add("stat-cold", ClientHostVhostuser, []float64{12000, 12500, 11500}, nil, nil, nil, nil)
	med := Aggregate(recs)
	tab := NewTable(med)
	if r := tab["getattr"][ClientGovirtiofsNone]; r.P50 != 31 || r.P90 != 40 || r.RTP50 != 12 || r.RTP90 != 20 {
		t.Errorf("govirtiofs-none getattr p50 %v p90 %v, round trip p50 %v p90 %v, want the medians 31, 40, 12, 20", r.P50, r.P90, r.RTP50, r.RTP90)
	}
	if r := tab["stat-cold"][ClientHostVhostuser]; r.P50 != 0 || r.P90 != 0 {
		t.Errorf("stat-cold record %+v has latencies", r)
	}
	dir := t.TempDir()
	if err := WriteReport(dir, &Report{Medians: med, Sizes: QuickSizes(), Rounds: 3}); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, ResultsMarkdown))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| " + RoundTripGoal + " | getattr | govirtiofs-none | host-vhostuser | 0.58x | 0.50x | yes |",
		"1 of 1 targets met.",
		"## Round-trip latency",
		"| getattr | govirtiofs-none | 30000 | 31.0 | 40.0 | 12.0 | 20.0 |",
		"| getattr | host-vhostuser | 50000 | 19.0 | 25.0 | 7.00 | 11.0 |",
		"| getattr | kernel-9p-loose | 30000 | 8.00 | 9.00 | - | - |",
		"## Whole operations, guest (TCG) vs host (native): client CPU included",
		"Informational, not targets",
		"| stat-cold | 3000 | 12000 | 0.25x |",
		"- `getattr` (ops/s): fstat of one open small file",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q; got:\n%s", want, md)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, ResultsJSON))
	if err != nil {
		t.Fatal(err)
	}
	var back []map[string]any
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	for _, r := range back {
		for _, key := range []string{"workload", "client", "unit", "value"} {
			if _, ok := r[key]; !ok {
				t.Errorf("results.json record lacks %q: %v", key, r)
			}
		}
		_, hasP50 := r["p50_us"]
		if hasP50 != (r["workload"] == "getattr") {
			t.Errorf("results.json record %v: want p50_us for getattr only", r)
		}
	}
}

func TestWriteReport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	rep := &Report{Medians: Aggregate(sample()), Sizes: QuickSizes(), Rounds: 3, Notes: []string{"## Design\n\nnote text"}}
	if err := WriteReport(dir, rep); err != nil {
		t.Fatal(err)
	}

	data, err := os.ReadFile(filepath.Join(dir, ResultsJSON))
	if err != nil {
		t.Fatal(err)
	}
	var back []map[string]any
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	if len(back) != len(rep.Medians) {
		t.Fatalf("results.json holds %d records, want %d", len(back), len(rep.Medians))
	}
	for _, key := range []string{"workload", "client", "unit", "value"} {
		if _, ok := back[0][key]; !ok {
			t.Errorf("results.json record lacks %q: %v", key, back[0])
		}
	}
	if back[1]["client"] != ClientGovirtiofsAuto || back[1]["value"] != 6500.0 || back[1]["unit"] != UnitOps {
		t.Errorf("record 1 = %v, want govirtiofs-auto stat-cold 6500 ops/s", back[1])
	}

	md, err := os.ReadFile(filepath.Join(dir, ResultsMarkdown))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| workload | unit | govirtiofs-none | govirtiofs-auto | govirtiofs-always | kernel-virtiofs | kernel-9p-none | kernel-9p-loose | kernel-9p-mmap | host-vhostuser | host-os |",
		// 6500/600 = 10.8: the best 9p mode (loose) is the reference; 9p none is 310/600.
		"| stat-cold | ops/s | 1200 (2.00x) | 6500 (11x) | - | 750 (1.25x) | 310 (0.52x) | 600 (1.00x) | - | 20000 (33x) | - |",
		"| seqread-cold | MB/s | - | - | 400 (1.60x) | 125 (0.50x) | 250 (1.00x) | - | failed | - | - |",
		// No 9p figure: values without ratios.
		"| readdir | entries/s | - | - | - | - | - | - | - | - | 10000 |",
		"| metadata >= 10x best 9p | stat-cold | govirtiofs-auto | kernel-9p-loose | 11x | 10x | yes | 2 of 3 |",
		"| data cold >= 2x best 9p | seqread-cold | govirtiofs-always | kernel-9p-none | 1.60x | 2.00x | no | 0 of 1 |",
		"3 of 4 targets met.",
		"- seqread-cold / kernel-9p-mmap: mount: no channel",
		"## Design\n\nnote text",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q; got:\n%s", want, md)
		}
	}

	svg, err := os.ReadFile(filepath.Join(dir, ResultsSVG))
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(strings.NewReader(string(svg)))
	rects := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("results.svg is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	// One background, one bar per figure (10 non-failed medians), one legend swatch per client (9).
	if want := 1 + 10 + 9; rects != want {
		t.Errorf("results.svg has %d rects, want %d", rects, want)
	}
	if !strings.Contains(string(svg), "6500 ops/s (11x)") {
		t.Errorf("results.svg lacks the stat-cold govirtiofs-auto label")
	}
}

// TestMixedTargets checks that the mixed workload is judged by the metadata goals, as the
// issue lists it among the metadata workloads.
func TestMixedTargets(t *testing.T) {
	ts := Targets(NewTable(Aggregate([]Record{
		{Workload: "mixed", Client: ClientGovirtiofsAlways, Unit: UnitOps, Value: 4000},
		{Workload: "mixed", Client: Client9PMmap, Unit: UnitOps, Value: 500},
		{Workload: "mixed", Client: ClientKernelVirtiofs, Unit: UnitOps, Value: 1000},
	})))
	if len(ts) != 2 {
		t.Fatalf("%d targets, want 2: %+v", len(ts), ts)
	}
	if g := ts[0]; g.Goal != "metadata >= 10x best 9p" || g.Against != Client9PMmap || g.Met || math.Abs(g.Ratio-8) > 1e-9 {
		t.Errorf("target 0 = %+v", g)
	}
	if g := ts[1]; g.Goal != "metadata >= 3x kernel virtiofs" || !g.Met || math.Abs(g.Ratio-4) > 1e-9 {
		t.Errorf("target 1 = %+v", g)
	}
}

// TestMissedTargetsTable checks the report's table of missed targets: the figure each missed
// goal asks for, the govirtiofs figure, and the host clients' figures with the goal's over
// theirs; met goals and the round-trip goal stay out of it.
func TestMissedTargetsTable(t *testing.T) {
	var recs []Record
	add := func(w, c, unit string, v float64) {
		recs = append(recs, Record{Workload: w, Client: c, Unit: unit, Value: v, Round: 1})
	}
	add("readdir", Client9PLoose, UnitEntries, 100000)
	add("readdir", ClientGovirtiofsAuto, UnitEntries, 700000)
	add("readdir", ClientKernelVirtiofs, UnitEntries, 60000)
	add("readdir", ClientHostVhostuser, UnitEntries, 800000)
	add("readdir", ClientHostOS, UnitEntries, 740000)
	add("create", Client9PLoose, UnitOps, 100)
	add("create", ClientGovirtiofsAlways, UnitOps, 1500)
	add("mixed", Client9PLoose, UnitOps, 500)
	add("mixed", ClientGovirtiofsAuto, UnitOps, 4000)
	md := string((&Report{Medians: Aggregate(recs), Sizes: QuickSizes(), Rounds: 1}).Markdown())
	for _, want := range []string{
		"Missed targets against the host's own clients",
		"| workload | goal | needed | govirtiofs | host-vhostuser | host-os |",
		"| readdir | metadata >= 10x best 9p | 1000000 | 700000 | 800000 (1.25x) | 740000 (1.35x) |",
		"| mixed | metadata >= 10x best 9p | 5000 | 4000 | - | - |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "| create | metadata >= 10x best 9p | 1000 |") || strings.Contains(md, "| readdir | metadata >= 3x kernel virtiofs | 180000") {
		t.Errorf("a met target is among the missed:\n%s", md)
	}
	// Nothing missed: no table.
	md = string((&Report{Medians: Aggregate(recs[5:7]), Sizes: QuickSizes(), Rounds: 1}).Markdown())
	if strings.Contains(md, "Missed targets") {
		t.Errorf("table of missed targets without a missed target:\n%s", md)
	}
}
