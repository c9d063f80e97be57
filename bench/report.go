package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Median returns the median of v (the mean of the two middle values for an even count), or NaN
// for none.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// Aggregate turns single measurements into one median Record per workload and client, ordered
// as [Workloads] and [AllClients] (unknown names last, sorted). Failed measurements do not count;
// a workload and client with only failures gets a Record with the last Err and no Value. P50 and
// P90 are the medians of the rounds' figures, where the rounds have them.
func Aggregate(recs []Record) []Record {
	type key struct{ w, c string }
	groups := map[key]*Record{}
	p50s, p90s := map[key][]float64{}, map[key][]float64{}
	rt50s, rt90s := map[key][]float64{}, map[key][]float64{}
	var keys []key
	for _, r := range recs {
		k := key{r.Workload, r.Client}
		g := groups[k]
		if g == nil {
			g = &Record{Workload: r.Workload, Client: r.Client, Unit: r.Unit}
			groups[k] = g
			keys = append(keys, k)
		}
		if r.Err != "" {
			if len(g.Samples) == 0 {
				g.Err = r.Err
			}
			continue
		}
		g.Err = ""
		g.Samples = append(g.Samples, r.Value)
		g.SampleRounds = append(g.SampleRounds, r.Round)
		if r.P50 > 0 {
			p50s[k] = append(p50s[k], r.P50)
			p90s[k] = append(p90s[k], r.P90)
		}
		if r.RTP50 > 0 {
			rt50s[k] = append(rt50s[k], r.RTP50)
			rt90s[k] = append(rt90s[k], r.RTP90)
		}
	}
	sort.SliceStable(keys, func(i, j int) bool {
		wi, wj := workloadIndex(keys[i].w), workloadIndex(keys[j].w)
		if wi != wj {
			return wi < wj
		}
		if keys[i].w != keys[j].w {
			return keys[i].w < keys[j].w
		}
		ci, cj := clientIndex(keys[i].c), clientIndex(keys[j].c)
		if ci != cj {
			return ci < cj
		}
		return keys[i].c < keys[j].c
	})
	out := make([]Record, 0, len(keys))
	for _, k := range keys {
		g := groups[k]
		if len(g.Samples) > 0 {
			g.Value = Median(g.Samples)
		}
		if len(p50s[k]) > 0 {
			g.P50, g.P90 = Median(p50s[k]), Median(p90s[k])
		}
		if len(rt50s[k]) > 0 {
			g.RTP50, g.RTP90 = Median(rt50s[k]), Median(rt90s[k])
		}
		out = append(out, *g)
	}
	return out
}

func workloadIndex(name string) int {
	for i, w := range Workloads() {
		if w.Name == name {
			return i
		}
	}
	return math.MaxInt
}

func clientIndex(name string) int {
	if i := slices.Index(AllClients, name); i >= 0 {
		return i
	}
	return math.MaxInt
}

// ninePClients are the baselines that ratios are taken against.
var ninePClients = []string{Client9PNone, Client9PLoose, Client9PMmap}

// WholeOperationWorkloads are the metadata workloads that make round trips to virtiofsd, which
// the report compares between govirtiofs-auto in the guest and host-vhostuser for information
// only: a whole operation (path walk, allocations, decoding) costs client CPU that under TCG is
// 10-50x slower than on the host, so these ratios measure TCG more than round trips. The
// round-trip target is judged on the getattr workload instead. stat-warm is not one: it makes no
// round trips.
var WholeOperationWorkloads = []string{"stat-cold", "open-read-close", "readdir", "create", "mixed"}

// Table indexes medians by workload and client.
type Table map[string]map[string]Record

// NewTable indexes medians.
func NewTable(medians []Record) Table {
	t := Table{}
	for _, r := range medians {
		if t[r.Workload] == nil {
			t[r.Workload] = map[string]Record{}
		}
		t[r.Workload][r.Client] = r
	}
	return t
}

// Value returns the median of workload and client, and whether there is one.
func (t Table) Value(workload, client string) (float64, bool) {
	r, ok := t[workload][client]
	if !ok || r.Err != "" || len(r.Samples) == 0 && r.Value == 0 {
		return 0, false
	}
	return r.Value, true
}

// Best returns the best (highest) median of workload among clients, and which client has it.
func (t Table) Best(workload string, clients []string) (float64, string, bool) {
	best, who, found := 0.0, "", false
	for _, c := range clients {
		if v, ok := t.Value(workload, c); ok && (!found || v > best) {
			best, who, found = v, c, true
		}
	}
	return best, who, found
}

// Best9P returns the best 9p mode's median of workload.
func (t Table) Best9P(workload string) (float64, string, bool) {
	return t.Best(workload, ninePClients)
}

// RoundTripGoal is the round-trip target's goal in [Targets].
const RoundTripGoal = "guest metadata round trips within 2x of host vhost-user"

// Target is one performance goal and how a run fares against it.
type Target struct {
	// Goal describes it, e.g. "metadata >= 10x best 9p".
	Goal     string
	Workload string
	// Client is the govirtiofs client measured: the best mode for the workload, or
	// govirtiofs-none for the round-trip goal; Against the baseline client.
	Client, Against string
	Ratio, Want     float64
	Met             bool
	// Value is Client's figure and Need the one the goal asks of it (Want times the
	// baseline's), in the workload's unit; both 0 for the round-trip goal, whose ratio
	// compares latencies.
	Value, Need float64
	// Rounds counts the rounds in which both clients have a figure, and RoundsMet those in
	// which the goal's ratio held within the round (Client's figure over the baseline's of
	// the same round): how a target that the medians miss by little fares from round to
	// round. Both 0 for the round-trip goal.
	Rounds, RoundsMet int
}

// roundsMet pairs the per-round figures of a and b by round and counts the rounds with both,
// and those in which a's figure is at least want times b's.
func roundsMet(a, b Record, want float64) (rounds, met int) {
	for i, ra := range a.SampleRounds {
		if ra <= 0 {
			continue
		}
		for j, rb := range b.SampleRounds {
			if rb == ra && b.Samples[j] > 0 {
				rounds++
				if a.Samples[i] >= want*b.Samples[j] {
					met++
				}
				break
			}
		}
	}
	return rounds, met
}

// Targets evaluates the project's goals on a table: for metadata workloads, the best govirtiofs
// mode at least 10x the best 9p mode and 3x kernel virtiofs; for data workloads at least 2x the
// best 9p mode when cold (every data workload but seqread-warm starts cold), 1x when warm, and
// 1x kernel virtiofs; and on the round-trip workload (getattr: one GETATTR per operation on
// both sides), govirtiofs-none's median transport round trip (RTP50) within 2x of
// host-vhostuser's, which runs it with cache none too and the same driver: the ratio is the
// host's round trip over the guest's, wanted >= 0.5. Goals whose figures are missing are left
// out.
func Targets(t Table) []Target {
	var out []Target
	add := func(goal, w, client, against string, ref float64, want float64) {
		var g float64
		var ok bool
		if client == "" {
			g, client, ok = t.Best(w, GovirtiofsClients)
		} else {
			g, ok = t.Value(w, client)
		}
		if !ok || ref <= 0 {
			return
		}
		r := g / ref
		n, met := roundsMet(t[w][client], t[w][against], want)
		out = append(out, Target{Goal: goal, Workload: w, Client: client, Against: against, Ratio: r, Want: want, Met: r >= want, Value: g, Need: want * ref,
			Rounds: n, RoundsMet: met})
	}
	for _, w := range Workloads() {
		n9, who9, ok9 := t.Best9P(w.Name)
		kv, okKV := t.Value(w.Name, ClientKernelVirtiofs)
		switch w.Kind {
		case "metadata", "mixed": // the issue counts mixed among the metadata workloads
			if ok9 {
				add("metadata >= 10x best 9p", w.Name, "", who9, n9, 10)
			}
			if okKV {
				add("metadata >= 3x kernel virtiofs", w.Name, "", ClientKernelVirtiofs, kv, 3)
			}
		case "data":
			if ok9 {
				if w.Warm {
					add("data warm >= 1x best 9p", w.Name, "", who9, n9, 1)
				} else {
					add("data cold >= 2x best 9p", w.Name, "", who9, n9, 2)
				}
			}
			if okKV {
				add("data >= 1x kernel virtiofs", w.Name, "", ClientKernelVirtiofs, kv, 1)
			}
		case "roundtrip":
			// Latencies: the ratio is the host's round trip over the guest's.
			g, okG := t[w.Name][ClientGovirtiofsNone]
			h, okH := t[w.Name][ClientHostVhostuser]
			if okG && okH && g.Err == "" && h.Err == "" && g.RTP50 > 0 && h.RTP50 > 0 {
				r := h.RTP50 / g.RTP50
				out = append(out, Target{Goal: RoundTripGoal, Workload: w.Name, Client: ClientGovirtiofsNone,
					Against: ClientHostVhostuser, Ratio: r, Want: 0.5, Met: r >= 0.5})
			}
		}
	}
	return out
}

// Report is what [WriteReport] writes.
type Report struct {
	// Medians are from [Aggregate].
	Medians []Record
	Sizes   Sizes
	Rounds  int
	// Notes are Markdown paragraphs placed after the table: design, timings, failures.
	Notes []string
}

// Files written by [WriteReport].
const (
	ResultsMarkdown = "results.md"
	ResultsJSON     = "results.json"
	ResultsSVG      = "results.svg"
)

// WriteReport writes results.md, results.json and results.svg into dir, creating it.
//
// Errors: file system errors.
func WriteReport(dir string, rep *Report) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	js, err := rep.JSON()
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		ResultsMarkdown: rep.Markdown(),
		ResultsJSON:     js,
		ResultsSVG:      rep.SVG(),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o666); err != nil {
			return err
		}
	}
	return nil
}

// JSON returns results.json: an array of the median records.
func (rep *Report) JSON() ([]byte, error) {
	recs := rep.Medians
	if recs == nil {
		recs = []Record{}
	}
	b, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// clientsPresent returns the clients with at least one record, in report order.
func (rep *Report) clientsPresent() []string {
	seen := map[string]bool{}
	for _, r := range rep.Medians {
		seen[r.Client] = true
	}
	var out []string
	for _, c := range AllClients {
		if seen[c] {
			out = append(out, c)
			delete(seen, c)
		}
	}
	var rest []string
	for c := range seen {
		rest = append(rest, c)
	}
	sort.Strings(rest)
	return append(out, rest...)
}

func (rep *Report) workloadsPresent() []Workload {
	seen := map[string]bool{}
	for _, r := range rep.Medians {
		seen[r.Workload] = true
	}
	var out []Workload
	for _, w := range Workloads() {
		if seen[w.Name] {
			out = append(out, w)
		}
	}
	return out
}

// formatValue prints a figure with three significant digits or more.
func formatValue(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func formatRatio(r float64) string {
	if r >= 10 {
		return fmt.Sprintf("%.0fx", r)
	}
	return fmt.Sprintf("%.2fx", r)
}

// Markdown returns results.md: one table row per workload, one column per client, each cell the
// median and its ratio to the best 9p mode; then the targets and the notes.
func (rep *Report) Markdown() []byte {
	var b bytes.Buffer
	t := NewTable(rep.Medians)
	clients := rep.clientsPresent()
	fmt.Fprintf(&b, "# govirtiofs benchmark\n\n")
	fmt.Fprintf(&b, "Medians over %d round(s); in parentheses the ratio to the best kernel 9p mode for the workload. MB = 10^6 bytes. The govirtiofs clients in the guest open their FS with Options.ZeroCopy: the device reads large writes from, and writes large reads into, the caller's buffer in place, as the kernel's 9p uses pinned user pages.\n\n", rep.Rounds)
	fmt.Fprintf(&b, "| workload | unit |")
	for _, c := range clients {
		fmt.Fprintf(&b, " %s |", c)
	}
	fmt.Fprintf(&b, "\n|---|---|%s\n", strings.Repeat("---:|", len(clients)))
	for _, w := range rep.workloadsPresent() {
		ref, _, hasRef := t.Best9P(w.Name)
		fmt.Fprintf(&b, "| %s | %s |", w.Name, w.Unit)
		for _, c := range clients {
			r, ok := t[w.Name][c]
			switch {
			case !ok:
				b.WriteString(" - |")
			case r.Err != "":
				b.WriteString(" failed |")
			case hasRef && ref > 0:
				fmt.Fprintf(&b, " %s (%s) |", formatValue(r.Value), formatRatio(r.Value/ref))
			default:
				fmt.Fprintf(&b, " %s |", formatValue(r.Value))
			}
		}
		b.WriteString("\n")
	}
	if ts := Targets(t); len(ts) > 0 {
		fmt.Fprintf(&b, "\n## Targets\n\nThe best govirtiofs mode per workload against the baseline. The round-trip goal (%s) is judged on `getattr` alone: govirtiofs-none in the guest against host-vhostuser, which runs that workload on a cache-none FS of its own, so that each side makes exactly one GETATTR round trip per operation. The figure compared is the median round trip of those GETATTRs as the driver times it on both sides (request published and device notified to reply seen), the host's over the guest's; the whole fstat, client CPU under TCG included, is in the round-trip latency table.\n\n", RoundTripGoal)
		fmt.Fprintf(&b, "The last column counts the rounds in which the goal held within the round (each client's figure of that round).\n\n")
		fmt.Fprintf(&b, "| goal | workload | govirtiofs | baseline | ratio | want | met | rounds met |\n|---|---|---|---|---:|---:|---|---:|\n")
		met := 0
		for _, tg := range ts {
			yes := "no"
			if tg.Met {
				yes, met = "yes", met+1
			}
			rounds := "-"
			if tg.Rounds > 0 {
				rounds = fmt.Sprintf("%d of %d", tg.RoundsMet, tg.Rounds)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", tg.Goal, tg.Workload, tg.Client, tg.Against,
				formatRatio(tg.Ratio), formatRatio(tg.Want), yes, rounds)
		}
		fmt.Fprintf(&b, "\n%d of %d targets met.\n", met, len(ts))
		missedTable(&b, t, ts)
	}
	rep.latencyTable(&b, t, clients)
	rep.wholeOperationTable(&b, t)
	var failed []string
	for _, r := range rep.Medians {
		if r.Err != "" {
			failed = append(failed, fmt.Sprintf("- %s / %s: %s", r.Workload, r.Client, r.Err))
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(&b, "\n## Failures\n\n%s\n", strings.Join(failed, "\n"))
	}
	fmt.Fprintf(&b, "\n## Workloads\n\n")
	s := rep.Sizes
	fmt.Fprintf(&b, "Sizes: %d small files of %d bytes, big file %d bytes read and written %d bytes at a time, %d random 4 KiB reads, %d directory entries, %d create cycles, mixed %d goroutines x %d operations.\n\n",
		s.SmallFiles, s.SmallFileSize, s.BigFileSize, s.IOSize, s.RandomReads, s.DirEntries, s.CreateFiles, s.MixedWorkers, s.MixedOps)
	for _, w := range Workloads() {
		fmt.Fprintf(&b, "- `%s` (%s): %s.\n", w.Name, w.Unit, w.Desc)
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(&b, "\n%s\n", strings.TrimSpace(n))
	}
	return b.Bytes()
}

// missedTable writes, for each missed target with a figure to reach (not the round-trip goal),
// what it asks of govirtiofs next to what the host's own clients reached in the same run:
// host-vhostuser (this library natively, over the same virtiofsd) and host-os (package os on the
// shared directory). A goal that asks the TCG guest for more than a native client reached is
// out of the guest's reach on this machine, whatever its client does.
func missedTable(b *bytes.Buffer, t Table, ts []Target) {
	var rows []string
	for _, tg := range ts {
		if tg.Met || tg.Need <= 0 {
			continue
		}
		row := fmt.Sprintf("| %s | %s | %s | %s |", tg.Workload, tg.Goal, formatValue(tg.Need), formatValue(tg.Value))
		for _, c := range []string{ClientHostVhostuser, ClientHostOS} {
			if v, ok := t.Value(tg.Workload, c); ok {
				row += fmt.Sprintf(" %s (%s) |", formatValue(v), formatRatio(tg.Need/v))
			} else {
				row += " - |"
			}
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "\nMissed targets against the host's own clients in this run: the figure each goal asks of the best govirtiofs mode, what that mode reached, and what host-vhostuser (this library natively, over the same virtiofsd) and host-os (package os on the shared directory) reached, in parentheses the goal's figure over theirs (above 1.00x the goal asks the guest under TCG to beat a native client).\n\n")
	b.WriteString("| workload | goal | needed | govirtiofs | host-vhostuser | host-os |\n|---|---|---:|---:|---:|---:|\n")
	b.WriteString(strings.Join(rows, "\n"))
	b.WriteString("\n")
}

// latencyTable writes the per-operation latencies of the workloads that time each operation
// (getattr), one row per workload and client that has them.
func (rep *Report) latencyTable(b *bytes.Buffer, t Table, clients []string) {
	var rows []string
	for _, w := range rep.workloadsPresent() {
		for _, c := range clients {
			r, ok := t[w.Name][c]
			if !ok || r.Err != "" || r.P50 <= 0 {
				continue
			}
			rt50, rt90 := "-", "-"
			if r.RTP50 > 0 {
				rt50, rt90 = formatValue(r.RTP50), formatValue(r.RTP90)
			}
			rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s |", w.Name, c, formatValue(r.Value), formatValue(r.P50), formatValue(r.P90), rt50, rt90))
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "\n## Round-trip latency\n\nPer operation (one fstat of an open file), medians over the rounds of each round's p50 and p90. govirtiofs-none and host-vhostuser each make one GETATTR round trip per operation; the other clients answer from whatever their caches hold, so their figures are informational. The round-trip columns are the GETATTRs' transport round trips as the driver times them (request published and device notified to reply seen), on the govirtiofs clients that made any.\n\n")
	fmt.Fprintf(b, "| workload | client | ops/s | p50 us | p90 us | round trip p50 us | round trip p90 us |\n|---|---|---:|---:|---:|---:|---:|\n%s\n", strings.Join(rows, "\n"))
}

// wholeOperationTable writes the informational comparison of whole operations, govirtiofs-auto
// in the guest against host-vhostuser (the same cache mode on the host), on
// [WholeOperationWorkloads].
func (rep *Report) wholeOperationTable(b *bytes.Buffer, t Table) {
	var rows []string
	for _, w := range WholeOperationWorkloads {
		g, okG := t.Value(w, ClientGovirtiofsAuto)
		h, okH := t.Value(w, ClientHostVhostuser)
		if !okG || !okH || h <= 0 {
			continue
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s |", w, formatValue(g), formatValue(h), formatRatio(g/h)))
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "\n## Whole operations, guest (TCG) vs host (native): client CPU included\n\nInformational, not targets: govirtiofs-auto in the guest against host-vhostuser (govirtiofs cache auto on the host) per whole operation. Each operation's time is its round trips plus the client's own CPU (path walk, allocations, encoding and decoding), which under QEMU TCG runs 10-50x slower than natively, so these ratios measure TCG as much as round trips; the round-trip target above uses `getattr` instead.\n\n")
	fmt.Fprintf(b, "| workload | govirtiofs-auto | host-vhostuser | ratio |\n|---|---:|---:|---:|\n%s\n", strings.Join(rows, "\n"))
}

// clientColors are the SVG bar colours, by client in AllClients order.
var clientColors = []string{
	"#9ecae1", "#3182bd", "#08519c", // govirtiofs none, auto, always
	"#31a354",                       // kernel virtiofs
	"#fdae6b", "#e6550d", "#a63603", // 9p none, loose, mmap
	"#756bb1", "#969696", // host vhost-user, host os
}

func clientColor(name string) string {
	if i := clientIndex(name); i < len(clientColors) {
		return clientColors[i]
	}
	return "#636363"
}

func xmlEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&quot;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// SVG returns results.svg: per workload, a horizontal bar per client giving its ratio to the best
// 9p mode on a log scale (to the best client when no 9p figure exists), with the figure printed.
func (rep *Report) SVG() []byte {
	const (
		width, labelW, chartW, barH, gap, groupGap, top = 980, 130, 560, 11, 2, 12, 40
	)
	t := NewTable(rep.Medians)
	clients := rep.clientsPresent()
	workloads := rep.workloadsPresent()
	ratio := func(w, c string) (float64, bool) {
		v, ok := t.Value(w, c)
		if !ok {
			return 0, false
		}
		ref, _, ok := t.Best9P(w)
		if !ok || ref <= 0 {
			ref, _, ok = t.Best(w, clients)
		}
		if !ok || ref <= 0 || v <= 0 {
			return 0, false
		}
		return v / ref, true
	}
	lo, hi := 0.0, 0.0 // log10 bounds, always including 1x
	for _, w := range workloads {
		for _, c := range clients {
			if r, ok := ratio(w.Name, c); ok {
				lo, hi = math.Min(lo, math.Floor(math.Log10(r))), math.Max(hi, math.Ceil(math.Log10(r)))
			}
		}
	}
	if hi == lo {
		hi = lo + 1
	}
	x := func(r float64) float64 { return labelW + (math.Log10(r)-lo)/(hi-lo)*chartW }
	groupH := len(clients)*(barH+gap) + groupGap
	legendY := top + len(workloads)*groupH + 10
	height := legendY + 20*((len(clients)+2)/3) + 10
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="10">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="16" font-size="13">govirtiofs benchmark: ratio to the best kernel 9p mode (log scale), medians over %d round(s)</text>`+"\n", labelW, rep.Rounds)
	for e := lo; e <= hi; e++ {
		px := x(math.Pow(10, e))
		stroke := "#dddddd"
		if e == 0 {
			stroke = "#444444"
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", px, top-6, px, legendY-8, stroke)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%sx</text>`+"\n", px, top-9, formatValue(math.Pow(10, e)))
	}
	for i, w := range workloads {
		y0 := top + i*groupH
		fmt.Fprintf(&b, `<text x="4" y="%d" font-weight="bold">%s</text>`+"\n", y0+len(clients)*(barH+gap)/2+4, xmlEscape(w.Name))
		for j, c := range clients {
			y := y0 + j*(barH+gap)
			rec, ok := t[w.Name][c]
			if !ok {
				continue
			}
			r, ok := ratio(w.Name, c)
			if !ok {
				fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#a00">%s: failed</text>`+"\n", labelW+2, y+barH-2, xmlEscape(c))
				continue
			}
			x1 := x(r)
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"><title>%s %s: %s %s</title></rect>`+"\n",
				labelW, y, math.Max(x1-labelW, 0.5), barH, clientColor(c), xmlEscape(w.Name), xmlEscape(c), formatValue(rec.Value), xmlEscape(rec.Unit))
			fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s %s (%s)</text>`+"\n", x1+3, y+barH-2, formatValue(rec.Value), xmlEscape(rec.Unit), formatRatio(r))
		}
	}
	for i, c := range clients {
		lx, ly := labelW+(i%3)*200, legendY+(i/3)*20
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", lx, ly, clientColor(c), lx+16, ly+10, xmlEscape(c))
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}
