package bench

import (
	"sync"
	"sync/atomic"
	"time"
)

// OpGetattr is FUSE_GETATTR's opcode (include/uapi/linux/fuse.h), the one the getattr workload's
// round trips are collected for.
const OpGetattr = 3

// RoundTrips collects the transport round trips of one FUSE opcode that a govirtiofs FS
// reports through its Options.OnRoundTrip, while a workload has it recording: the round trip
// alone, without the client's work around it, measured by the same driver code in the guest
// and on the host. The zero value is not usable; see [NewRoundTrips].
type RoundTrips struct {
	op uint32 // immutable
	on atomic.Bool
	mu sync.Mutex
	d  []time.Duration // guarded by mu
}

// NewRoundTrips returns a collector for round trips of opcode op.
func NewRoundTrips(op uint32) *RoundTrips { return &RoundTrips{op: op} }

// Observe is the govirtiofs.Options.OnRoundTrip to give the FS.
func (r *RoundTrips) Observe(op uint32, d time.Duration) {
	if op != r.op || !r.on.Load() {
		return
	}
	r.mu.Lock()
	r.d = append(r.d, d)
	r.mu.Unlock()
}

// start drops what was collected and starts recording.
func (r *RoundTrips) start() {
	r.mu.Lock()
	r.d = r.d[:0]
	r.mu.Unlock()
	r.on.Store(true)
}

// stop stops recording and returns a copy of the round trips since start.
func (r *RoundTrips) stop() []time.Duration {
	r.on.Store(false)
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.d...)
}

// roundTripper is an [FS] that can report its round trips.
type roundTripper interface {
	roundTrips() *RoundTrips
}
