package virtio

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestBackoffPhases checks the back-off's schedule: no sleep while within
// SpinFor and YieldFor, then sleeps doubling from 1 µs and capped at
// MaxSleep, and Reset starting over.
func TestBackoffPhases(t *testing.T) {
	b := &Backoff{SpinFor: time.Hour, YieldFor: 2 * time.Hour, MaxSleep: 8 * time.Microsecond}
	for range 100 {
		b.Wait()
	}
	if b.sleep != 0 {
		t.Fatalf("slept (%v) while spinning", b.sleep)
	}
	for _, park := range []bool{false, true} {
		b = &Backoff{SpinFor: time.Nanosecond, YieldFor: 2 * time.Nanosecond, MaxSleep: 8 * time.Microsecond, Park: park}
		b.Wait() // idle starts now
		time.Sleep(time.Millisecond)
		var got []time.Duration
		for range 6 {
			b.Wait()
			got = append(got, b.sleep)
		}
		want := []time.Duration{1, 2, 4, 8, 8, 8}
		for i := range want {
			if got[i] != want[i]*time.Microsecond {
				t.Fatalf("Park %v: sleeps %v, want %v µs: doubling from 1 µs, capped at MaxSleep", park, got, want)
			}
		}
		b.Reset()
		if b.sleep != 0 || !b.idleSince.IsZero() {
			t.Errorf("Park %v: after Reset: sleep %v, idle since %v; want both zero", park, b.sleep, b.idleSince)
		}
	}
}

// TestPollLatencyAfterIdle checks that a poller idle for a long spell
// still notices readiness within a bound set by MaxSleep, not by how long
// it was idle: 200 ms idle with an uncapped doubling sleep would reach
// sleeps of 100 ms or more.
func TestPollLatencyAfterIdle(t *testing.T) {
	var readyAt atomic.Int64 // UnixNano when ready became true; 0 before
	go func() {
		time.Sleep(200 * time.Millisecond) // the idle spell, not synchronisation
		readyAt.Store(time.Now().UnixNano())
	}()
	if !Poll(nil, &Backoff{MaxSleep: 50 * time.Microsecond}, func() bool { return readyAt.Load() != 0 }) {
		t.Fatal("Poll = false")
	}
	// Generous for -race on a loaded machine; far below 100 ms.
	if lat := time.Since(time.Unix(0, readyAt.Load())); lat > 20*time.Millisecond {
		t.Errorf("Poll noticed readiness %v after it happened, want within 20 ms", lat)
	}
}
