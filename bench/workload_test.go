package bench

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// tinySizes keeps the workloads fast in tests.
func tinySizes() Sizes {
	return Sizes{
		SmallFiles: 7, SmallFileSize: 100,
		BigFileSize: 5*4096 + 123, IOSize: 1000, RandomReads: 9,
		DirEntries: 11, CreateFiles: 3,
		MixedWorkers: 3, MixedOps: 6,
		RoundTrips: 5,
	}
}

func prepared(t *testing.T, s Sizes, rounds int) string {
	t.Helper()
	dir := t.TempDir()
	if err := Prepare(dir, s, rounds); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return dir
}

// TestWorkloadsOverOS runs every workload through the os adapter and checks what it counts.
func TestWorkloadsOverOS(t *testing.T) {
	s := tinySizes()
	dir := prepared(t, s, 1)
	want := map[string]float64{
		"stat-cold":       7,
		"stat-warm":       7,
		"open-read-close": 7,
		"seqread-cold":    float64(s.BigFileSize),
		"seqread-warm":    float64(s.BigFileSize),
		"seqwrite":        float64(s.BigFileSize),
		"randread":        9,
		"readdir":         11,
		"create":          3,
		"mixed":           18,
		"getattr":         5,
	}
	ws := Workloads()
	if len(ws) != len(want) {
		t.Errorf("%d workloads, want %d", len(ws), len(want))
	}
	for _, w := range ws {
		t.Run(w.Name, func(t *testing.T) {
			env := &Env{Sizes: s, Prefix: "t", Set: SetDir(1, w.Name)}
			got, err := w.Run(context.Background(), OS{Root: dir}, env)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got != want[w.Name] {
				t.Errorf("Run = %v, want %v", got, want[w.Name])
			}
			if timesEach := w.Name == "getattr"; timesEach != (len(env.Latencies) > 0) {
				t.Errorf("%d latencies, want them for getattr only", len(env.Latencies))
			}
			if w.Name == "getattr" && len(env.Latencies) != s.RoundTrips {
				t.Errorf("%d latencies, want one per operation (%d)", len(env.Latencies), s.RoundTrips)
			}
			if w.Name == "seqwrite" {
				fi, err := os.Stat(filepath.Join(dir, scratchDir, "t-write"))
				if err != nil || fi.Size() != s.BigFileSize {
					t.Errorf("seqwrite wrote %v, %v; want a file of %d bytes", fi, err, s.BigFileSize)
				}
			}
			if w.Cleanup != nil {
				if err := w.Cleanup(OS{Root: dir}, env); err != nil {
					t.Fatalf("Cleanup: %v", err)
				}
			}
			left, err := os.ReadDir(filepath.Join(dir, scratchDir))
			if err != nil {
				t.Fatal(err)
			}
			if len(left) != 0 {
				t.Errorf("scratch holds %d files after the run, want none", len(left))
			}
		})
	}
}

// TestWorkloadsDetectWrongContent checks that the workloads fail, rather than count, when the
// directory does not hold what Prepare wrote.
func TestWorkloadsDetectWrongContent(t *testing.T) {
	s := tinySizes()
	tests := []struct {
		workload string
		damage   func(set string) error
		wantErr  string
	}{
		{"stat-cold", func(d string) error { return os.Truncate(filepath.Join(d, "small/f00003"), 5) }, "size 5"},
		{"open-read-close", func(d string) error { return os.Truncate(filepath.Join(d, "small/f00003"), 5) }, "5 bytes, want 100"},
		{"open-read-close", func(d string) error { return os.Truncate(filepath.Join(d, "small/f00003"), 101) }, "more than 100"},
		{"seqread-cold", func(d string) error { return os.Truncate(filepath.Join(d, "big"), 4096) }, "4096 bytes"},
		{"randread", func(d string) error { return os.Truncate(filepath.Join(d, "big"), 4096) }, "pread sets/r1-randread/big"},
		{"readdir", func(d string) error { return os.Remove(filepath.Join(d, "dir/e000004")) }, "10 entries, want 11"},
		{"stat-cold", func(d string) error { return os.Remove(filepath.Join(d, "small/f00006")) }, "no such file"},
		{"getattr", func(d string) error { return os.Truncate(filepath.Join(d, "small/f00000"), 5) }, "fstat sets/r1-getattr/small/f00000: size 5"},
		{"getattr", func(d string) error { return os.Remove(filepath.Join(d, "small/f00000")) }, "no such file"},
		{"create", func(d string) error { return os.RemoveAll(filepath.Join(d, "../../scratch")) }, "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.workload, func(t *testing.T) {
			dir := prepared(t, s, 1)
			if err := tc.damage(filepath.Join(dir, SetDir(1, tc.workload))); err != nil {
				t.Fatal(err)
			}
			w, _ := WorkloadByName(tc.workload)
			_, err := w.Run(context.Background(), OS{Root: dir}, &Env{Sizes: s, Prefix: "t", Set: SetDir(1, tc.workload)})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Run error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestPrepareKeepsAndRedoes(t *testing.T) {
	s := tinySizes()
	dir := prepared(t, s, 2)
	for _, w := range Workloads() {
		for r := 1; r <= 2; r++ {
			set := filepath.Join(dir, SetDir(r, w.Name))
			for _, part := range []struct {
				uses Uses
				name string
			}{{UsesSmall, smallDir}, {UsesBig, bigFile}, {UsesDir, listDir}} {
				_, err := os.Stat(filepath.Join(set, part.name))
				if has := err == nil; has != (w.Uses&part.uses != 0) {
					t.Errorf("%s: %s present %v, want %v", set, part.name, has, !has)
				}
			}
		}
	}
	marker := filepath.Join(dir, SetDir(2, "stat-cold"), "small/f00000")
	if err := os.WriteFile(marker, []byte("changed"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, scratchDir, "junk"), nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := Prepare(dir, s, 2); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(marker); string(b) != "changed" {
		t.Errorf("Prepare with equal sizes rewrote the small files")
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, scratchDir)); len(ents) != 0 {
		t.Errorf("Prepare left %d files in scratch", len(ents))
	}
	// A directory prepared before a workload existed lacks its file sets: it is prepared again.
	if err := os.RemoveAll(filepath.Join(dir, SetDir(1, "getattr"))); err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(dir, layoutFile)
	b, err := os.ReadFile(layout)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(layout, []byte(strings.Replace(string(b), `,"getattr"`, "", 1)), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := Prepare(dir, s, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, smallName(SetDir(1, "getattr"), 0))); err != nil {
		t.Errorf("after Prepare with a new workload: %v", err)
	}
	s.SmallFiles = 4
	if err := Prepare(dir, s, 2); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, SetDir(2, "stat-cold"), smallDir))
	if len(ents) != 4 {
		t.Errorf("after Prepare with 4 small files: %d files", len(ents))
	}
	if b, _ := os.ReadFile(marker); len(b) != s.SmallFileSize {
		t.Errorf("small file holds %d bytes, want %d", len(b), s.SmallFileSize)
	}
}

func TestSizesValidate(t *testing.T) {
	for _, s := range []Sizes{DefaultSizes(), QuickSizes(), tinySizes()} {
		if err := s.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", s, err)
		}
	}
	bad := tinySizes()
	bad.BigFileSize = 100
	if err := bad.Validate(); err == nil {
		t.Errorf("Validate accepted a big file smaller than one random read")
	}
	bad = tinySizes()
	bad.RoundTrips = 0
	if err := bad.Validate(); err == nil {
		t.Errorf("Validate accepted zero round trips")
	}
	bad = tinySizes()
	bad.MixedWorkers = 0
	if err := bad.Validate(); err == nil {
		t.Errorf("Validate accepted zero mixed workers")
	}
}

// TestRunRotation checks the order clients take turns in, that each measurement starts its own
// client and stops it, that warm workloads run twice, and that failures become records.
func TestRunRotation(t *testing.T) {
	s := tinySizes()
	dir := prepared(t, s, 4)
	var order []string
	starts, stops := map[string]int{}, map[string]int{}
	client := func(name string, fail bool) Client {
		return Client{Name: name, Start: func(ctx context.Context) (FS, func() error, error) {
			starts[name]++
			if fail {
				return nil, nil, errors.New("no device")
			}
			order = append(order, name)
			return OS{Root: dir}, func() error { stops[name]++; return nil }, nil
		}}
	}
	var runs int
	var sets []string
	var events strings.Builder // R: a pass of the workload, T and D: Timed and its done
	counting := Workload{Name: "stat-warm", Unit: UnitOps, Warm: true, Run: func(ctx context.Context, fsys FS, env *Env) (float64, error) {
		runs++
		events.WriteString("R")
		sets = append(sets, env.Set)
		return statAll(ctx, fsys, env)
	}}
	var recs []Record
	err := Run(context.Background(), RunConfig{
		Clients:   []Client{client("a", false), client("b", false), client("c", true)},
		Workloads: []Workload{counting},
		Sizes:     s, Rounds: 3, FirstRound: 2,
		Emit: func(r Record) { recs = append(recs, r) },
		Timed: func(r Record) func() {
			if r.Workload != "stat-warm" || r.Round < 2 || r.Round > 4 {
				t.Errorf("Timed(%+v): want a stat-warm record of rounds 2 to 4", r)
			}
			events.WriteString("T")
			return func() { events.WriteString("D") }
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Timed brackets the measured pass only, not the warm-up, and not a client that fails to start.
	if got, want := events.String(), strings.Repeat("RTRD", 6); got != want {
		t.Errorf("passes and Timed calls %q, want %q", got, want)
	}
	// Round 2 starts with the second client, round 3 with the third (which fails), round 4
	// with the first.
	if got, want := strings.Join(order, ""), "ba"+"ab"+"ab"; got != want {
		t.Errorf("order of started clients %q, want %q", got, want)
	}
	if starts["a"] != 3 || stops["a"] != 3 || starts["c"] != 3 {
		t.Errorf("starts %v stops %v, want 3 each (c never stops: it never started)", starts, stops)
	}
	if runs != 12 {
		t.Errorf("warm workload ran %d times, want 12 (2 clients x 3 rounds x 2)", runs)
	}
	if len(recs) != 9 {
		t.Fatalf("%d records, want 9", len(recs))
	}
	for _, r := range recs {
		switch {
		case r.Client == "c" && !strings.Contains(r.Err, "no device"):
			t.Errorf("record %+v: want the start error", r)
		case r.Client != "c" && (r.Err != "" || r.Value <= 0 || r.Unit != UnitOps):
			t.Errorf("record %+v: want a positive ops/s figure", r)
		case r.Round < 2 || r.Round > 4:
			t.Errorf("record %+v: round out of range", r)
		}
	}
	if sets[0] != "sets/r2-stat-warm" || sets[len(sets)-1] != "sets/r4-stat-warm" {
		t.Errorf("file sets used %v, want sets/r2-stat-warm ... sets/r4-stat-warm", sets)
	}
}

// readLog is an FS over package os that logs every file opened and read to its end, and every
// directory listed, as "read <name>" and "list <name>".
type readLog struct {
	OS
	log *[]string
}

func (l readLog) Open(name string) (File, error) {
	f, err := l.OS.Open(name)
	if err != nil {
		return nil, err
	}
	return &loggedFile{File: f, name: name, log: l.log}, nil
}

func (l readLog) ReadDir(name string) ([]fs.DirEntry, error) {
	*l.log = append(*l.log, "list "+name)
	return l.OS.ReadDir(name)
}

type loggedFile struct {
	File
	name string
	log  *[]string
}

func (f *loggedFile) Read(p []byte) (int, error) {
	n, err := f.File.Read(p)
	if err == io.EOF {
		*f.log = append(*f.log, "read "+f.name)
	}
	return n, err
}

// TestRunPrimes checks that RunConfig.Prime reads the file set of each round of a workload that
// uses one, whole and once, before that round's first client starts, and nothing for a workload
// without a set; and that a failing prime is reported and the round goes on.
func TestRunPrimes(t *testing.T) {
	s := tinySizes()
	dir := prepared(t, s, 2)
	var log []string
	primes := 0
	prime := Client{Name: "primer", Start: func(context.Context) (FS, func() error, error) {
		primes++
		return readLog{OS{Root: dir}, &log}, func() error { log = append(log, "prime stop"); return nil }, nil
	}}
	client := func(name string) Client {
		return Client{Name: name, Start: func(context.Context) (FS, func() error, error) {
			log = append(log, "start "+name)
			return OS{Root: dir}, func() error { return nil }, nil
		}}
	}
	byName := func(name string) Workload {
		w, ok := WorkloadByName(name)
		if !ok {
			t.Fatalf("no workload %s", name)
		}
		return w
	}
	var progress []string
	err := Run(context.Background(), RunConfig{
		Clients:   []Client{client("a"), client("b")},
		Workloads: []Workload{byName("stat-cold"), byName("create"), byName("mixed"), byName("readdir")},
		Sizes:     s, Rounds: 2, Prime: &prime,
		Progress: func(line string) { progress = append(progress, line) },
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for r := 1; r <= 2; r++ {
		first, second := "start a", "start b"
		if r == 2 {
			first, second = second, first
		}
		small := func(set string) {
			for i := range s.SmallFiles {
				want = append(want, "read "+smallName(set, i))
			}
		}
		small(SetDir(r, "stat-cold"))
		want = append(want, "prime stop", first, second)
		want = append(want, first, second) // create: no set, no priming
		small(SetDir(r, "mixed"))
		want = append(want, "read "+bigName(SetDir(r, "mixed")), "prime stop", first, second)
		want = append(want, "list "+SetDir(r, "readdir")+"/"+listDir, "prime stop", first, second)
	}
	if strings.Join(log, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}
	if primes != 6 {
		t.Errorf("%d primes, want 6 (3 workloads with a set x 2 rounds)", primes)
	}
	for _, line := range progress {
		if strings.Contains(line, "priming") {
			t.Errorf("progress %q: want no priming failure", line)
		}
	}

	// A prime that fails is reported; the measurements go on.
	log, progress = nil, nil
	broken := Client{Name: "primer", Start: func(context.Context) (FS, func() error, error) {
		return nil, nil, errors.New("no device")
	}}
	var recs []Record
	err = Run(context.Background(), RunConfig{
		Clients: []Client{client("a")}, Workloads: []Workload{byName("stat-cold")}, Sizes: s, Prime: &broken,
		Emit:     func(r Record) { recs = append(recs, r) },
		Progress: func(line string) { progress = append(progress, line) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(progress) != 2 || !strings.Contains(progress[0], "priming with primer FAILED: start: no device") {
		t.Errorf("progress %q, want the priming failure first, then the measurement", progress)
	}
	if len(recs) != 1 || recs[0].Err != "" || recs[0].Value <= 0 {
		t.Errorf("records %+v, want one measurement despite the failed prime", recs)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	s := tinySizes()
	dir := prepared(t, s, 2)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := Run(ctx, RunConfig{
		Clients: []Client{{Name: "a", Start: func(context.Context) (FS, func() error, error) {
			n++
			cancel()
			return OS{Root: dir}, func() error { return nil }, nil
		}}},
		Workloads: Workloads(), Sizes: s, Rounds: 2,
	})
	if !errors.Is(err, context.Canceled) || n != 1 {
		t.Errorf("Run = %v after %d starts, want context.Canceled after 1", err, n)
	}
}

func TestPercentile(t *testing.T) {
	us := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Microsecond)
		}
		return d
	}
	tests := []struct {
		lat  []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{us(7), 0.9, 7 * time.Microsecond},
		{us(5, 1, 4, 2, 3), 0.5, 3 * time.Microsecond},
		{us(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 0.9, 9 * time.Microsecond},
		{us(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 0.5, 5 * time.Microsecond},
		{us(1, 2), 1, 2 * time.Microsecond},
	}
	for _, tc := range tests {
		in := slices.Clone(tc.lat)
		if got := Percentile(tc.lat, tc.p); got != tc.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", tc.lat, tc.p, got, tc.want)
		}
		if !slices.Equal(in, tc.lat) {
			t.Errorf("Percentile sorted its argument")
		}
	}
}

// TestRunLatencies checks that a getattr measurement's record carries its p50 and p90 and
// that other workloads' records carry none.
func TestRunLatencies(t *testing.T) {
	s := tinySizes()
	s.RoundTrips = 50
	dir := prepared(t, s, 1)
	getattr, _ := WorkloadByName("getattr")
	statCold, _ := WorkloadByName("stat-cold")
	var recs []Record
	err := Run(context.Background(), RunConfig{
		Clients: []Client{HostOSClient(dir)}, Workloads: []Workload{getattr, statCold}, Sizes: s,
		Emit: func(r Record) { recs = append(recs, r) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	if r := recs[0]; r.Err != "" || r.P50 <= 0 || r.P90 < r.P50 || r.Value <= 0 {
		t.Errorf("getattr record %+v: want a rate, p50 > 0 and p90 >= p50", r)
	}
	if r := recs[1]; r.P50 != 0 || r.P90 != 0 {
		t.Errorf("stat-cold record %+v: want no latencies", r)
	}
}

// TestMinWarmTime checks that a warm measurement repeats its timed pass until the passes took
// MinWarmTime together, each pass's Cleanup running between passes and after the last, and
// that the figure is all the passes' operations over their time; a cold workload runs once.
func TestMinWarmTime(t *testing.T) {
	s := tinySizes()
	dir := prepared(t, s, 1)
	client := Client{Name: "a", Start: func(ctx context.Context) (FS, func() error, error) {
		return OS{Root: dir}, func() error { return nil }, nil
	}}
	const pass = 5 * time.Millisecond
	var events strings.Builder // R: a pass, C: a cleanup
	sleepy := func(name string, warm bool) Workload {
		return Workload{Name: name, Unit: UnitOps, Warm: warm,
			Run: func(ctx context.Context, fsys FS, env *Env) (float64, error) {
				events.WriteString("R")
				time.Sleep(pass)
				return 10, nil
			},
			Cleanup: func(fsys FS, env *Env) error { events.WriteString("C"); return nil },
		}
	}
	for _, tt := range []struct {
		warm                 bool
		minPasses, maxPasses int
	}{{true, 8, 12}, {false, 1, 1}} {
		events.Reset()
		var recs []Record
		err := Run(context.Background(), RunConfig{
			Clients: []Client{client}, Workloads: []Workload{sleepy("w", tt.warm)}, Sizes: s,
			MinWarmTime: 8 * pass, Emit: func(r Record) { recs = append(recs, r) },
		})
		if err != nil || len(recs) != 1 || recs[0].Err != "" {
			t.Fatalf("warm %v: Run: %v, records %+v", tt.warm, err, recs)
		}
		ev := events.String()
		if tt.warm {
			if !strings.HasPrefix(ev, "RC") {
				t.Errorf("warm: events %q, want the unmeasured pass and its cleanup first", ev)
			}
			ev = ev[2:]
		}
		passes := strings.Count(ev, "R")
		if passes < tt.minPasses || passes > tt.maxPasses || ev != strings.Repeat("RC", passes) {
			t.Errorf("warm %v: measured events %q, want %d-%d passes, each followed by its cleanup", tt.warm, ev, tt.minPasses, tt.maxPasses)
		}
		// 10 operations per pass of at least 5 ms: at most 2000 ops/s, and not far below.
		if v := recs[0].Value; v > 2000 || v < 500 {
			t.Errorf("warm %v: %v ops/s, want 10 per %v pass", tt.warm, v, pass)
		}
	}
}
