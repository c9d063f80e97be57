package suite

import (
	"fmt"
	"slices"
	"time"

	"github.com/govirtiofs/govirtiofs"
)

// Latency is a summary of n timed calls.
type Latency struct {
	N             int
	P50, P90, Min time.Duration
}

func (l Latency) String() string {
	return fmt.Sprintf("n=%d p50=%v p90=%v min=%v", l.N, l.P50, l.P90, l.Min)
}

// StatLatency times n calls of f.Stat(name), one by one, after one untimed call. With
// govirtiofs.CacheNone every Stat of the share's root is one FUSE GETATTR round trip.
//
// Errors: the first failing Stat's; n < 1.
func StatLatency(f *govirtiofs.FS, name string, n int) (Latency, error) {
	if n < 1 {
		return Latency{}, fmt.Errorf("StatLatency: n = %d", n)
	}
	if _, err := f.Stat(name); err != nil {
		return Latency{}, err
	}
	d := make([]time.Duration, n)
	for i := range d {
		start := time.Now()
		_, err := f.Stat(name)
		d[i] = time.Since(start)
		if err != nil {
			return Latency{}, err
		}
	}
	slices.Sort(d)
	return Latency{N: n, P50: d[n/2], P90: d[n*9/10], Min: d[0]}, nil
}
