package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Units of a [Record].
const (
	UnitOps     = "ops/s"
	UnitMBs     = "MB/s"
	UnitEntries = "entries/s"
)

// randomReadSize is the size of one random read.
const randomReadSize = 4096

// Env is what a workload run knows besides its FS.
type Env struct {
	Sizes Sizes
	// Prefix makes the names a run creates unique: runs of different clients on the same
	// directory never meet (scratch/<Prefix>-...).
	Prefix string
	// Set is the file set the run reads (SetDir).
	Set string
	// Latencies are set by a workload that times each of its operations (getattr): the
	// per-operation latencies of its last pass. [Run] clears them before the timed pass and
	// reports their p50 and p90 in the Record.
	Latencies []time.Duration
	// RoundTrips are set by a workload that collects the transport round trips of its
	// operations' FUSE requests (getattr on a govirtiofs client, see [RoundTrips]); [Run] clears
	// them before the timed pass and reports their p50 and p90 in the Record.
	RoundTrips []time.Duration

	small []string // smallName(Set, i) for every small file; see names

	// Made by the workloads' Inputs, outside the clock: what seqwrite writes (IOSize bytes),
	// what create writes into each file, and the names create uses.
	bigData, smallData []byte
	creates            []string
	// Per mixed goroutine: the files it creates and its pread offsets.
	mixedCreates [][]string
	mixedOffs    [][]int64
}

// patterns holds the data pattern returns, made once per process.
var patterns struct {
	sync.Mutex
	m map[[2]uint64][]byte
}

// pattern returns n bytes filled from seed (fill), the same slice on every call: the data the
// write workloads write, which they only read. Every measurement's Env takes it without filling
// a megabyte again.
func pattern(n int, seed uint64) []byte {
	patterns.Lock()
	defer patterns.Unlock()
	k := [2]uint64{uint64(n), seed}
	b, ok := patterns.m[k]
	if !ok {
		if patterns.m == nil {
			patterns.m = map[[2]uint64][]byte{}
		}
		b = make([]byte, n)
		fill(b, seed)
		patterns.m[k] = b
	}
	return b
}

// The inputs of the workloads that need more than the small files' names, each made before the
// clock starts (Workload.Inputs), so that generating data and formatting names is no part of a
// measured operation (for every client alike): filling seqwrite's 1 MiB buffer took tens of
// milliseconds under TCG, which a 64 MiB write at 1.5 GB/s would have carried on top of its 40.
// Each makes what is missing only, so that Run may call it again when it runs on its own (tests).

func seqWriteInputs(e *Env) { e.bigData = pattern(e.Sizes.IOSize, 7) }

func createInputs(e *Env) {
	e.smallData = pattern(e.Sizes.SmallFileSize, 9)
	if len(e.creates) != e.Sizes.CreateFiles {
		e.creates = make([]string, e.Sizes.CreateFiles)
		for i := range e.creates {
			e.creates[i] = e.scratch("c%05d", i)
		}
	}
}

func mixedInputs(e *Env) {
	if len(e.mixedCreates) != e.Sizes.MixedWorkers {
		e.mixedCreates = make([][]string, e.Sizes.MixedWorkers)
		e.mixedOffs = make([][]int64, e.Sizes.MixedWorkers)
		for g := range e.mixedCreates {
			e.mixedCreates[g] = make([]string, e.Sizes.MixedOps)
			for i := range e.mixedCreates[g] {
				e.mixedCreates[g][i] = e.scratch("m%d-%05d", g, i)
			}
			e.mixedOffs[g] = randomOffsets(e.Sizes.MixedOps, e.Sizes.BigFileSize, uint64(100+g))
		}
	}
}

// names returns the small files' paths, built once per Env so that formatting names is not
// part of any measured operation (for every client alike).
func (e *Env) names() []string {
	if len(e.small) != e.Sizes.SmallFiles {
		e.small = make([]string, e.Sizes.SmallFiles)
		for i := range e.small {
			e.small[i] = smallName(e.Set, i)
		}
	}
	return e.small
}

func (e *Env) scratch(format string, a ...any) string {
	return scratchDir + "/" + e.Prefix + "-" + fmt.Sprintf(format, a...)
}

// Workload is one measurement.
type Workload struct {
	// Name is the workload's name in the results, e.g. "stat-cold".
	Name string
	// Unit is [UnitOps], [UnitMBs] or [UnitEntries].
	Unit string
	// Kind is "metadata", "data", "mixed" or "roundtrip": which targets the workload is judged
	// by ("roundtrip": the guest's round trip against host-vhostuser's, see [Targets]).
	Kind string
	// Uses says which parts of its file set the workload reads.
	Uses Uses
	// Warm makes the runner run the workload once unmeasured before measuring, on the same FS.
	Warm bool
	// Desc says what one operation is.
	Desc string
	// Run does the work once and returns how many operations (or bytes, for MB/s) it did.
	// Files it creates it removes again, unless Cleanup does.
	//
	// Errors: the first failing file operation, or a short read (content that is not what
	// Prepare wrote).
	Run func(ctx context.Context, fsys FS, env *Env) (float64, error)
	// Inputs, if set, makes what Run needs besides the small files' names (Env.names) into
	// env; the runner calls it before the clock starts.
	Inputs func(env *Env)
	// Cleanup, if set, removes what Run left behind; it runs after the clock stopped.
	//
	// Errors: the failing file operation.
	Cleanup func(fsys FS, env *Env) error
}

// Workloads returns the workloads in the order they run.
func Workloads() []Workload {
	return []Workload{
		{Name: "stat-cold", Uses: UsesSmall, Unit: UnitOps, Kind: "metadata", Run: statAll,
			Desc: "stat of each small file, client caches dropped"},
		{Name: "stat-warm", Uses: UsesSmall, Unit: UnitOps, Kind: "metadata", Warm: true, Run: statAll,
			Desc: "stat of each small file, after one unmeasured pass"},
		{Name: "open-read-close", Uses: UsesSmall, Unit: UnitOps, Kind: "metadata", Run: openReadClose,
			Desc: "open, read all (4 KiB), close of each small file"},
		{Name: "seqread-cold", Uses: UsesBig, Unit: UnitMBs, Kind: "data", Run: seqRead,
			Desc: "sequential read of big, IOSize at a time, client caches dropped"},
		{Name: "seqread-warm", Uses: UsesBig, Unit: UnitMBs, Kind: "data", Warm: true, Run: seqRead,
			Desc: "sequential read of big, after one unmeasured pass"},
		{Name: "seqwrite", Unit: UnitMBs, Kind: "data", Run: seqWrite, Inputs: seqWriteInputs, Cleanup: removeWritten,
			Desc: "create, write BigFileSize bytes IOSize at a time, close (no fsync)"},
		{Name: "randread", Uses: UsesBig, Unit: UnitOps, Kind: "data", Run: randRead,
			Desc: "4 KiB pread at random aligned offsets of big"},
		{Name: "readdir", Uses: UsesDir, Unit: UnitEntries, Kind: "metadata", Run: readDir,
			Desc: "ReadDir of a directory of DirEntries files, counted per entry"},
		{Name: "create", Unit: UnitOps, Kind: "metadata", Run: createUnlink, Inputs: createInputs,
			Desc: "create, write 4 KiB, close, unlink"},
		{Name: "mixed", Uses: UsesSmall | UsesBig, Unit: UnitOps, Kind: "mixed", Run: mixed, Inputs: mixedInputs,
			Desc: "MixedWorkers goroutines cycling stat, open+read+close, 4 KiB pread, create+write+close+unlink"},
		{Name: "getattr", Uses: UsesSmall, Unit: UnitOps, Kind: "roundtrip", Run: getattr,
			Desc: "fstat of one open small file, RoundTrips times, each timed (p50 and p90 per operation); " +
				"on a cache-none govirtiofs FS each is one GETATTR round trip to virtiofsd, a kernel client answers from its cache as it sees fit"},
	}
}

// WorkloadByName returns the named workload.
func WorkloadByName(name string) (Workload, bool) {
	for _, w := range Workloads() {
		if w.Name == name {
			return w, true
		}
	}
	return Workload{}, false
}

func statAll(ctx context.Context, fsys FS, env *Env) (float64, error) {
	for _, name := range env.names() {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		fi, err := fsys.Stat(name)
		if err != nil {
			return 0, err
		}
		if fi.Size() != int64(env.Sizes.SmallFileSize) {
			return 0, fmt.Errorf("stat %s: size %d, want %d", name, fi.Size(), env.Sizes.SmallFileSize)
		}
	}
	return float64(env.Sizes.SmallFiles), nil
}

// readSmall opens, reads and closes a small file, checking its length; buf is one byte longer
// than the file, so that the read that sees end of file is part of the operation.
func readSmall(fsys FS, name string, buf []byte) error {
	f, err := fsys.Open(name)
	if err != nil {
		return err
	}
	n, err := io.ReadFull(f, buf)
	switch {
	case err == io.ErrUnexpectedEOF && n == len(buf)-1:
		err = nil
	case err == nil:
		err = fmt.Errorf("read %s: more than %d bytes", name, len(buf)-1)
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		err = fmt.Errorf("read %s: %d bytes, want %d", name, n, len(buf)-1)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func openReadClose(ctx context.Context, fsys FS, env *Env) (float64, error) {
	buf := make([]byte, env.Sizes.SmallFileSize+1) // one more: the read that sees EOF
	for _, name := range env.names() {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if err := readSmall(fsys, name, buf); err != nil {
			return 0, err
		}
	}
	return float64(env.Sizes.SmallFiles), nil
}

func seqRead(ctx context.Context, fsys FS, env *Env) (float64, error) {
	f, err := fsys.Open(bigName(env.Set))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, env.Sizes.IOSize)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		n, err := f.Read(buf)
		total += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if total != env.Sizes.BigFileSize {
		return 0, fmt.Errorf("read %s: %d bytes, want %d", bigName(env.Set), total, env.Sizes.BigFileSize)
	}
	return float64(total), f.Close()
}

func seqWrite(ctx context.Context, fsys FS, env *Env) (float64, error) {
	name := env.scratch("write")
	f, err := fsys.Create(name)
	if err != nil {
		return 0, err
	}
	seqWriteInputs(env) // made already unless called on its own (tests)
	buf := env.bigData
	var total int64
	for total < env.Sizes.BigFileSize {
		if err := ctx.Err(); err != nil {
			f.Close()
			return 0, err
		}
		n := min(int64(len(buf)), env.Sizes.BigFileSize-total)
		w, err := f.Write(buf[:n])
		total += int64(w)
		if err != nil {
			f.Close()
			return 0, err
		}
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	return float64(total), nil
}

func removeWritten(fsys FS, env *Env) error { return fsys.Remove(env.scratch("write")) }

// SplitRoundTrip splits ws, in order, into the workloads judged on whole operations and the
// round-trip ones (Kind "roundtrip"), which the harness measures with its client and servers on
// one host CPU (see placement_linux.go).
func SplitRoundTrip(ws []Workload) (whole, roundTrip []Workload) {
	for _, w := range ws {
		if w.Kind == "roundtrip" {
			roundTrip = append(roundTrip, w)
		} else {
			whole = append(whole, w)
		}
	}
	return whole, roundTrip
}

// randomOffsets returns n 4 KiB-aligned offsets inside size, the same for every run.
func randomOffsets(n int, size int64, seed uint64) []int64 {
	r := rand.New(rand.NewPCG(seed, 1))
	blocks := size / randomReadSize
	offs := make([]int64, n)
	for i := range offs {
		offs[i] = r.Int64N(blocks) * randomReadSize
	}
	return offs
}

func randRead(ctx context.Context, fsys FS, env *Env) (float64, error) {
	f, err := fsys.Open(bigName(env.Set))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, randomReadSize)
	for _, off := range randomOffsets(env.Sizes.RandomReads, env.Sizes.BigFileSize, 42) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if n, err := f.ReadAt(buf, off); n != len(buf) {
			return 0, fmt.Errorf("pread %s at %d: %d bytes: %v", bigName(env.Set), off, n, err)
		}
	}
	return float64(env.Sizes.RandomReads), f.Close()
}

func readDir(ctx context.Context, fsys FS, env *Env) (float64, error) {
	ents, err := fsys.ReadDir(env.Set + "/" + listDir)
	if err != nil {
		return 0, err
	}
	if len(ents) != env.Sizes.DirEntries {
		return 0, fmt.Errorf("readdir %s: %d entries, want %d", env.Set+"/"+listDir, len(ents), env.Sizes.DirEntries)
	}
	return float64(len(ents)), nil
}

// createOne creates name, writes data, closes and unlinks it.
func createOne(fsys FS, name string, data []byte) error {
	f, err := fsys.Create(name)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		fsys.Remove(name)
		return err
	}
	if err := f.Close(); err != nil {
		fsys.Remove(name)
		return err
	}
	return fsys.Remove(name)
}

func createUnlink(ctx context.Context, fsys FS, env *Env) (float64, error) {
	createInputs(env)
	data := env.smallData
	for _, name := range env.creates {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if err := createOne(fsys, name, data); err != nil {
			return 0, err
		}
	}
	return float64(env.Sizes.CreateFiles), nil
}

// mixed runs MixedWorkers goroutines that do MixedOps operations each, cycling through: stat of a
// small file, open+read+close of a small file, a 4 KiB pread of big (on a handle of the
// goroutine's own), create+write+close+unlink of a file of the goroutine's own.
func mixed(ctx context.Context, fsys FS, env *Env) (float64, error) {
	s := env.Sizes
	env.names() // built before the goroutines share them
	mixedInputs(env)
	var ops atomic.Int64
	errs := make([]error, s.MixedWorkers)
	var wg sync.WaitGroup
	for g := range s.MixedWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[g] = mixedWorker(ctx, fsys, env, g, &ops)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return float64(ops.Load()), nil
}

func mixedWorker(ctx context.Context, fsys FS, env *Env, g int, ops *atomic.Int64) error {
	s := env.Sizes
	big, err := fsys.Open(bigName(env.Set))
	if err != nil {
		return err
	}
	defer big.Close()
	offs := env.mixedOffs[g]
	small := make([]byte, s.SmallFileSize+1)
	page := make([]byte, randomReadSize)
	data := small[:s.SmallFileSize]
	names := env.names()
	created := env.mixedCreates[g]
	for i := range s.MixedOps {
		if err := ctx.Err(); err != nil {
			return err
		}
		file := (g*s.MixedOps + i*7) % s.SmallFiles
		switch i % 4 {
		case 0:
			if _, err := fsys.Stat(names[file]); err != nil {
				return err
			}
		case 1:
			if err := readSmall(fsys, names[file], small); err != nil {
				return err
			}
		case 2:
			if n, err := big.ReadAt(page, offs[i]); n != len(page) {
				return fmt.Errorf("pread %s at %d: %d bytes: %v", bigName(env.Set), offs[i], n, err)
			}
		case 3:
			if err := createOne(fsys, created[i], data); err != nil {
				return err
			}
		}
		ops.Add(1)
	}
	return big.Close()
}

// getattr opens a small file and stats it RoundTrips times through the open file (fstat), timing
// each Stat into env.Latencies. Through govirtiofs with CacheNone every File.Stat is one GETATTR
// round trip, so the guest and the host can be compared on the round trip alone, without the
// path walks and allocations that make a stat-cold operation cost far more client CPU under TCG;
// on a govirtiofs client that collects them ([Govirtiofs.RT]) the GETATTRs' transport round trips
// go into env.RoundTrips.
func getattr(ctx context.Context, fsys FS, env *Env) (float64, error) {
	name := env.names()[0]
	f, err := fsys.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	lat := make([]time.Duration, env.Sizes.RoundTrips)
	want := int64(env.Sizes.SmallFileSize)
	var rt *RoundTrips
	if r, ok := fsys.(roundTripper); ok {
		rt = r.roundTrips()
	}
	if rt != nil {
		rt.start()
		defer func() { env.RoundTrips = rt.stop() }()
	}
	for i := range lat {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		t0 := time.Now()
		fi, err := f.Stat()
		lat[i] = time.Since(t0)
		if err != nil {
			return 0, err
		}
		if fi.Size() != want {
			return 0, fmt.Errorf("fstat %s: size %d, want %d", name, fi.Size(), want)
		}
	}
	env.Latencies = lat
	return float64(len(lat)), f.Close()
}

// Percentile returns the p-th percentile (0 < p <= 1, nearest rank) of lat, or 0 for none.
func Percentile(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}
