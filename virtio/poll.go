package virtio

import (
	"runtime"
	"time"
)

// Backoff paces a polling loop, such as the driver's completion goroutine
// that calls Queue.HasUsed and Queue.Pop. Once the loop goes idle it spins
// for SpinFor (a reply to a fast request arrives within microseconds), then
// yields the processor with runtime.Gosched until YieldFor has passed, then
// sleeps for doubling intervals from 1 µs up to MaxSleep, which bounds the
// latency an idle queue adds to its next completion.
//
// Sleeps use nanosleep(2) rather than time.Sleep: measured here, Go's timers
// turn a 1-50 µs time.Sleep into 0.5-1.7 ms, while nanosleep of 1-50 µs
// returns after roughly 60-120 µs (the kernel's 50 µs default timer slack
// plus scheduling). Yielding early matters when the device is a goroutine
// (virtiotest): measured here, a ring round trip took 3.5 µs with a 1 µs
// spin and 14-24 µs with a 10 µs one. A GETATTR through virtiofsd takes
// about 40 µs, which the yield phase covers. So with the defaults (2 µs,
// 100 µs, 50 µs) a completion is seen at once while requests keep coming,
// within about 100-150 µs after a long idle spell, and an idle poller
// mostly sleeps.
//
// A goroutine in nanosleep keeps its P: with GOMAXPROCS=1 nothing else runs
// until the sleep ends or sysmon retakes the P (20 µs to 10 ms later). A
// poller whose latency matters less than that of the other goroutines sets
// Park: it then sleeps with time.Sleep, which frees the P at once, at the
// price of the timer's granularity (about a millisecond when nothing else
// runs).
//
// The zero value uses the defaults. A Backoff is used by one goroutine.
type Backoff struct {
	SpinFor  time.Duration // busy checking after going idle; 0 means 2 µs
	YieldFor time.Duration // spinning plus yielding; 0 means 100 µs
	MaxSleep time.Duration // longest sleep; 0 means 50 µs
	Park     bool          // sleep with time.Sleep instead of nanosleep

	idleSince time.Time     // when the loop last found no work; zero while busy
	sleep     time.Duration // current sleep length
}

// Reset is called when the loop found work: the next Wait spins again.
func (b *Backoff) Reset() {
	b.idleSince = time.Time{}
	b.sleep = 0
}

// Wait is called when the loop found no work; it returns at once, yields
// or sleeps according to how long the loop has been idle.
func (b *Backoff) Wait() {
	spinFor, yieldFor, maxSleep := b.SpinFor, b.YieldFor, b.MaxSleep
	if spinFor == 0 {
		spinFor = 2 * time.Microsecond
	}
	if yieldFor == 0 {
		yieldFor = 100 * time.Microsecond
	}
	if maxSleep == 0 {
		maxSleep = 50 * time.Microsecond
	}
	now := time.Now()
	if b.idleSince.IsZero() {
		b.idleSince = now
	}
	idle := now.Sub(b.idleSince)
	switch {
	case idle < spinFor:
		// Busy: return to the caller's check at once.
	case idle < yieldFor:
		runtime.Gosched()
	default:
		if b.sleep == 0 {
			b.sleep = time.Microsecond
		} else if b.sleep < maxSleep {
			b.sleep = min(2*b.sleep, maxSleep)
		}
		if b.Park {
			time.Sleep(b.sleep)
		} else {
			nanosleep(b.sleep)
		}
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
