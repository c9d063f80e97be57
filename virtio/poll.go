package virtio

import (
	"runtime"
	"time"
)

// Backoff paces a polling loop, such as the driver's completion goroutine
// that calls Queue.HasUsed and Queue.Pop: it spins first (a reply to a fast
// request arrives within microseconds), then yields the processor, then
// sleeps for growing intervals capped at MaxSleep, which bounds the latency
// an idle queue adds to the next completion.
//
// Sleeps use nanosleep(2) rather than time.Sleep: measured here, Go's timers
// turn a 1-50 µs time.Sleep into 0.5-1.7 ms, while nanosleep of 1-50 µs
// returns after roughly 60-120 µs (the kernel's 50 µs default timer slack
// plus scheduling). With the default MaxSleep of 50 µs an idle poller costs
// well under 5% of a core and wakes within about 100 µs.
//
// The zero value uses the defaults. A Backoff is used by one goroutine.
type Backoff struct {
	Spins    int           // busy checks before yielding; 0 means 100
	Yields   int           // runtime.Gosched calls before sleeping; 0 means 20
	MaxSleep time.Duration // longest sleep; 0 means 50 µs

	idle  int           // Wait calls since the last Reset
	sleep time.Duration // current sleep length
}

// Reset is called when the loop found work: the next Wait spins again.
func (b *Backoff) Reset() {
	b.idle = 0
	b.sleep = 0
}

// Wait is called when the loop found no work; it spins, yields or sleeps
// according to how long the loop has been idle.
func (b *Backoff) Wait() {
	spins, yields, maxSleep := b.Spins, b.Yields, b.MaxSleep
	if spins == 0 {
		spins = 100
	}
	if yields == 0 {
		yields = 20
	}
	if maxSleep == 0 {
		maxSleep = 50 * time.Microsecond
	}
	b.idle++
	switch {
	case b.idle <= spins:
		// Busy: return to the caller's check at once.
	case b.idle <= spins+yields:
		runtime.Gosched()
	default:
		if b.sleep == 0 {
			b.sleep = time.Microsecond
		} else if b.sleep < maxSleep {
			b.sleep = min(2*b.sleep, maxSleep)
		}
		nanosleep(b.sleep)
	}
}

// Poll waits until ready reports true or done is closed, pacing the checks
// with b (nil: a default Backoff). It returns whether ready became true.
func Poll(done <-chan struct{}, b *Backoff, ready func() bool) bool {
	if b == nil {
		b = new(Backoff)
	}
	for {
		if ready() {
			b.Reset()
			return true
		}
		select {
		case <-done:
			return false
		default:
		}
		b.Wait()
	}
}
