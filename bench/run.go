package bench

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// Client names in the results.
const (
	ClientGovirtiofsNone   = "govirtiofs-none"
	ClientGovirtiofsAuto   = "govirtiofs-auto"
	ClientGovirtiofsAlways = "govirtiofs-always"
	ClientKernelVirtiofs   = "kernel-virtiofs"
	Client9PNone           = "kernel-9p-none"
	Client9PLoose          = "kernel-9p-loose"
	Client9PMmap           = "kernel-9p-mmap"
	ClientHostVhostuser    = "host-vhostuser"
	ClientHostOS           = "host-os"
)

// AllClients lists the clients in report order.
var AllClients = []string{
	ClientGovirtiofsNone, ClientGovirtiofsAuto, ClientGovirtiofsAlways,
	ClientKernelVirtiofs, Client9PNone, Client9PLoose, Client9PMmap,
	ClientHostVhostuser, ClientHostOS,
}

// Client is one way of reaching the shared directory.
type Client struct {
	// Name is one of the Client* constants.
	Name string
	// Start returns the client's FS in a cold state, as the constructor documents it, and a
	// function that ends its use (closing or unmounting it). Every measurement calls Start once.
	//
	// Errors: the client cannot be set up (device, mount, daemon).
	Start func(ctx context.Context) (fsys FS, stop func() error, err error)
}

// Record is one measurement, or one median in results.json.
type Record struct {
	Workload string  `json:"workload"`
	Client   string  `json:"client"`
	Unit     string  `json:"unit"`
	Value    float64 `json:"value"`
	// Round is the round of a single measurement (from 1); 0 in a median.
	Round int `json:"round,omitempty"`
	// Samples are the measurements a median was taken from, in round order, and
	// SampleRounds their rounds.
	Samples      []float64 `json:"samples,omitempty"`
	SampleRounds []int     `json:"-"`
	// Err is set instead of Value when the measurement failed.
	Err string `json:"error,omitempty"`
	// P50 and P90 are the median and 90th percentile of the latency of one operation, in
	// microseconds, for a workload that times each operation (getattr); in a median Record, the
	// medians of the rounds' figures. 0 otherwise.
	P50 float64 `json:"p50_us,omitempty"`
	P90 float64 `json:"p90_us,omitempty"`
	// RTP50 and RTP90 are the median and 90th percentile of the transport round trip of the
	// operation's FUSE request (the driver's OnRoundTrip: request published to reply seen,
	// without the client's work around it), in microseconds, for a workload that collects them
	// (getattr on a govirtiofs client); medians of the rounds' figures in a median Record.
	RTP50 float64 `json:"rt_p50_us,omitempty"`
	RTP90 float64 `json:"rt_p90_us,omitempty"`
}

// RunConfig configures [Run].
type RunConfig struct {
	Clients   []Client
	Workloads []Workload
	Sizes     Sizes
	// Rounds is the number of rounds (default 1), numbered from FirstRound (default 1): a round's
	// number picks the file sets (SetDir) and the client that goes first.
	Rounds, FirstRound int
	// Emit receives every record as soon as it is measured, errors included.
	Emit func(Record)
	// Progress, if set, receives a line per measurement.
	Progress func(string)
	// Timed, if set, is called just before the timed pass of each measurement (after Start and
	// any warm-up), and the function it returns just after that pass: a CPU profile of exactly
	// the measured work, say.
	Timed func(r Record) (done func())
	// MinWarmTime, if positive, makes a warm workload's measurement repeat its pass until the
	// passes took that long together (at most maxWarmPasses), the figure being all their
	// operations over all their time, as testing.B grows N: a warm pass can take a few
	// milliseconds, of which one host timer tick or preemption is a large share.
	MinWarmTime time.Duration
	// Prime, if set, reads the file set of each round of a workload that reads one (Workload.Uses)
	// once, unmeasured, just before that round's first client (see primeSet), so that the host's
	// caches hold the set for every client alike: a set untouched since Prepare, whose pages the
	// host may have reclaimed since, otherwise slowed whichever client the rotation put first
	// (in a full run the first client's random reads and listings went at half the speed of its
	// rounds in other places). Prime must be a client of its own, whose caches are no measured
	// client's (on a device and server of its own). A failure to prime is reported through
	// Progress and the round goes on.
	Prime *Client
}

// WarmTime is the MinWarmTime the harness gives the host phase and the guest.
const WarmTime = 200 * time.Millisecond

// maxWarmPasses bounds the passes of a warm measurement.
const maxWarmPasses = 1000

// Run measures each workload with each client, Rounds times. Within a round, for each workload
// the clients take turns, and the client that goes first rotates from round to round (round r
// starts with client r-1 mod n), so that no client always runs right after a given other one;
// with Prime, the round's file set is read before the first of them. Every measurement calls
// [Client.Start] and reads the file set of its round and workload; a warm workload first runs
// once unmeasured (then as many measured passes as MinWarmTime asks), and a warm workload's
// Cleanup runs after each pass. A failing measurement is emitted as a Record with Err and the
// run goes on.
//
// Errors: invalid sizes, or ctx's error when it ends.
func Run(ctx context.Context, cfg RunConfig) error {
	if err := cfg.Sizes.Validate(); err != nil {
		return err
	}
	rounds := max(cfg.Rounds, 1)
	first := max(cfg.FirstRound, 1)
	last := first + rounds - 1
	n := len(cfg.Clients)
	for r := first; r <= last; r++ {
		for _, w := range cfg.Workloads {
			if cfg.Prime != nil && w.Uses != 0 {
				err := prime(ctx, *cfg.Prime, w, &Env{Sizes: cfg.Sizes, Set: SetDir(r, w.Name)})
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if err != nil && cfg.Progress != nil {
					cfg.Progress(fmt.Sprintf("round %d/%d %-16s priming with %s FAILED: %v", r, last, w.Name, cfg.Prime.Name, err))
				}
			}
			for i := range n {
				c := cfg.Clients[(i+r-1)%n]
				rec := Record{Workload: w.Name, Client: c.Name, Unit: w.Unit, Round: r}
				env := &Env{Sizes: cfg.Sizes, Prefix: fmt.Sprintf("%s-r%d-%s", c.Name, r, w.Name), Set: SetDir(r, w.Name)}
				env.names() // outside the clock
				if w.Inputs != nil {
					w.Inputs(env)
				}
				v, d, err := measure(ctx, c, w, env, cfg.Timed, cfg.MinWarmTime, rec)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if err != nil {
					rec.Err = err.Error()
				} else {
					rec.Value = v
					if len(env.Latencies) > 0 {
						rec.P50 = micros(Percentile(env.Latencies, 0.5))
						rec.P90 = micros(Percentile(env.Latencies, 0.9))
					}
					if len(env.RoundTrips) > 0 {
						rec.RTP50 = micros(Percentile(env.RoundTrips, 0.5))
						rec.RTP90 = micros(Percentile(env.RoundTrips, 0.9))
					}
				}
				if cfg.Emit != nil {
					cfg.Emit(rec)
				}
				if cfg.Progress != nil {
					if err != nil {
						cfg.Progress(fmt.Sprintf("round %d/%d %-16s %-18s FAILED: %v", r, last, w.Name, c.Name, err))
					} else if rec.RTP50 > 0 {
						cfg.Progress(fmt.Sprintf("round %d/%d %-16s %-18s %12.1f %s (%v; p50 %.1f us, p90 %.1f us; round trip p50 %.1f us, p90 %.1f us)", r, last, w.Name, c.Name, v, w.Unit, d.Round(time.Millisecond), rec.P50, rec.P90, rec.RTP50, rec.RTP90))
					} else if rec.P50 > 0 {
						cfg.Progress(fmt.Sprintf("round %d/%d %-16s %-18s %12.1f %s (%v; p50 %.1f us, p90 %.1f us)", r, last, w.Name, c.Name, v, w.Unit, d.Round(time.Millisecond), rec.P50, rec.P90))
					} else {
						cfg.Progress(fmt.Sprintf("round %d/%d %-16s %-18s %12.1f %s (%v)", r, last, w.Name, c.Name, v, w.Unit, d.Round(time.Millisecond)))
					}
				}
			}
		}
	}
	return nil
}

// measure runs w once on a fresh FS of c (a warm w as many times as minWarm asks, see
// RunConfig.MinWarmTime) and returns its rate and the time measured. timed, if not nil,
// brackets the timed passes (RunConfig.Timed); rec names the measurement.
func measure(ctx context.Context, c Client, w Workload, env *Env, timed func(Record) func(), minWarm time.Duration, rec Record) (float64, time.Duration, error) {
	fsys, stop, err := c.Start(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("start: %w", err)
	}
	if w.Warm {
		_, err := w.Run(ctx, fsys, env)
		if err == nil && w.Cleanup != nil {
			err = w.Cleanup(fsys, env)
		}
		if err != nil {
			stop()
			return 0, 0, fmt.Errorf("warm-up: %w", err)
		}
	}
	env.Latencies, env.RoundTrips = nil, nil // the warm-up's are not the measurement's
	// As testing.B does before each benchmark: garbage left by the warm-up, earlier workloads
	// or other clients in this process is collected now, not during the timed pass.
	runtime.GC()
	done := func() {}
	if timed != nil {
		done = timed(rec)
	}
	var count float64
	var d time.Duration
	for pass := 1; ; pass++ {
		t0 := time.Now()
		n, rerr := w.Run(ctx, fsys, env)
		d += time.Since(t0)
		count += n
		if err = rerr; err != nil || !w.Warm || d >= minWarm || pass >= maxWarmPasses {
			break
		}
		if w.Cleanup != nil { // between passes, outside the clock
			if err = w.Cleanup(fsys, env); err != nil {
				err = fmt.Errorf("cleanup: %w", err)
				break
			}
		}
	}
	done()
	if err == nil && w.Cleanup != nil {
		if cerr := w.Cleanup(fsys, env); cerr != nil {
			err = fmt.Errorf("cleanup: %w", cerr)
		}
	}
	if serr := stop(); err == nil && serr != nil {
		err = fmt.Errorf("stop: %w", serr)
	}
	if err != nil {
		return 0, d, err
	}
	return rate(count, d, w.Unit), d, nil
}

// prime reads the parts of env's file set that w uses through a fresh FS of c (primeSet).
func prime(ctx context.Context, c Client, w Workload, env *Env) error {
	fsys, stop, err := c.Start(ctx)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	err = primeSet(ctx, fsys, env, w.Uses)
	if serr := stop(); err == nil && serr != nil {
		err = fmt.Errorf("stop: %w", serr)
	}
	return err
}

// primeSet reads the parts of env's file set that uses names through fsys, as the workloads
// read them: each small file whole (open, read, close), the listing, and big whole.
//
// Errors: the first failing file operation, or content that is not what Prepare wrote.
func primeSet(ctx context.Context, fsys FS, env *Env, uses Uses) error {
	if uses&UsesSmall != 0 {
		if _, err := openReadClose(ctx, fsys, env); err != nil {
			return err
		}
	}
	if uses&UsesDir != 0 {
		if _, err := readDir(ctx, fsys, env); err != nil {
			return err
		}
	}
	if uses&UsesBig != 0 {
		if _, err := seqRead(ctx, fsys, env); err != nil {
			return err
		}
	}
	return nil
}

// rate converts a count over d into the unit's figure.
func rate(count float64, d time.Duration, unit string) float64 {
	s := d.Seconds()
	if s <= 0 {
		s = 1e-9
	}
	if unit == UnitMBs {
		return count / 1e6 / s
	}
	return count / s
}

// micros returns d in microseconds.
func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
