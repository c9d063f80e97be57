package driver

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs/internal/syncbuf"
	"github.com/govirtiofs/govirtiofs/virtio"
	"github.com/govirtiofs/govirtiofs/virtio/virtiotest"
)

// timeoutBound is the latest a request with no reply may be failed after
// it went out: timeout plus two check intervals (see checkInterval), plus
// slack for a loaded machine under -race.
func timeoutBound(timeout time.Duration) time.Duration {
	return timeout + 2*checkInterval(timeout) + 300*time.Millisecond
}

// TestRequestTimeout: a device that stops answering is taken for dead
// after Options.RequestTimeout: the caller (RoundTrip, or Send's done)
// gets ENOTCONN between the timeout and timeoutBound, one log line names
// the request, later calls get ENOTCONN, the hung chain keeps its buffers,
// and Close leaves no goroutine behind.
func TestRequestTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	tests := []struct {
		name string
		spin time.Duration
		send bool // Send instead of RoundTrip
	}{
		{"RoundTrip spinning", time.Hour, false},
		{"RoundTrip parked", -1, false},
		{"Send", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			g := newGate()
			defer g.release()
			var logs syncbuf.Buffer
			tr := virtiotest.NewTransport(fsConfig(virtiotest.Config{Features: virtio.FeatureVersion1, Async: true, Handler: g.handler()}))
			d, err := New(context.Background(), tr, Options{
				RequestTimeout: timeout, Spin: tt.spin,
				Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			const unique = 77
			req := inHeader(opGetattr, unique, 1, nil)
			start := time.Now()
			if tt.send {
				err = await(t, sendOne(t, d, req, [][]byte{make([]byte, 64)})).err
			} else {
				_, err = d.RoundTrip(context.Background(), [][]byte{req}, [][]byte{make([]byte, 64)})
			}
			elapsed := time.Since(start)
			if !errors.Is(err, syscall.ENOTCONN) {
				t.Fatalf("err = %v, want ENOTCONN", err)
			}
			if elapsed < timeout || elapsed > timeoutBound(timeout) {
				t.Errorf("failed after %v, want between %v and %v", elapsed, timeout, timeoutBound(timeout))
			}
			t.Logf("detected after %v (timeout %v)", elapsed, timeout)
			select {
			case <-d.Done():
			default:
				t.Error("Done not closed")
			}
			if _, err := d.RoundTrip(context.Background(), [][]byte{inHeader(opGetattr, 78, 1, nil)}, [][]byte{make([]byte, 64)}); !errors.Is(err, syscall.ENOTCONN) {
				t.Errorf("later RoundTrip: %v, want ENOTCONN", err)
			}
			if err := d.Send(context.Background(), [][]byte{inHeader(opRelease, 79, 1, nil)}, [][]byte{make([]byte, 64)}, func(int, error) {}); !errors.Is(err, syscall.ENOTCONN) {
				t.Errorf("later Send: %v, want ENOTCONN", err)
			}
			if err := d.SendHiprio(context.Background(), [][]byte{inHeader(opForget, 80, 1, nil)}); !errors.Is(err, syscall.ENOTCONN) {
				t.Errorf("later SendHiprio: %v, want ENOTCONN", err)
			}
			<-d.stopped
			// The device never gave the chain back: its two buffers
			// stay reserved.
			if got := liveBuffers(d); got != 2 {
				t.Errorf("%d DMA buffers live after the timeout, want 2 (the hung chain's)", got)
			}
			log := logs.String()
			if n := strings.Count(log, "request timeout"); n != 1 {
				t.Errorf("%d timeout log lines, want 1:\n%s", n, log)
			}
			for _, want := range []string{"opcode=3", "unique=77", "age="} {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q:\n%s", want, log)
				}
			}
			// The fake device's reset and Close wait for its handlers.
			g.release()
			if err := d.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			waitGoroutines(t, before)
		})
	}
}

// TestRequestTimeoutAllWaiters: every waiter on a hung device (several
// in flight, and more waiting for room in the full queue) gets ENOTCONN
// within timeoutBound.
func TestRequestTimeoutAllWaiters(t *testing.T) {
	const timeout = 200 * time.Millisecond
	g := newGate()
	defer g.release()
	d, _ := newTestDevice(t, virtiotest.Config{Features: virtio.FeatureVersion1, MaxQueueSize: 8, Async: true, Handler: g.handler()}, Options{RequestTimeout: timeout})
	const n = 6 // four in flight, two waiting for room
	errc := make(chan error, n)
	start := time.Now()
	for i := range n {
		go func() {
			_, err := d.RoundTrip(context.Background(), [][]byte{inHeader(opGetattr, uint64(i+1), 1, nil)}, [][]byte{make([]byte, 64)})
			errc <- err
		}()
	}
	for range n {
		select {
		case err := <-errc:
			if !errors.Is(err, syscall.ENOTCONN) {
				t.Errorf("RoundTrip: %v, want ENOTCONN", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a waiter did not return within 5s")
		}
	}
	if el := time.Since(start); el > timeoutBound(timeout) {
		t.Errorf("waiters failed after %v, want at most %v", el, timeoutBound(timeout))
	}
}

// TestRequestTimeoutNotHit: requests answered within the timeout are not
// affected, even when the device is busy for longer than the timeout in
// all and the requests overlap.
func TestRequestTimeoutNotHit(t *testing.T) {
	const (
		timeout = 300 * time.Millisecond
		delay   = 60 * time.Millisecond // each reply, well within the timeout
	)
	slow := func(readable, writable [][]byte) int {
		time.Sleep(delay) // a slow device, not synchronisation
		return echo(readable, writable)
	}
	for _, spin := range []time.Duration{0, -1} {
		d, _ := newTestDevice(t, virtiotest.Config{Features: virtio.FeatureVersion1, Async: true, Handler: slow}, Options{RequestTimeout: timeout, Spin: spin})
		var wg sync.WaitGroup
		start := time.Now()
		for w := range 3 {
			wg.Go(func() {
				for i := range 8 {
					unique := uint64(w*100 + i + 1)
					if _, err := d.RoundTrip(context.Background(), [][]byte{inHeader(opGetattr, unique, 1, nil)}, [][]byte{make([]byte, 64)}); err != nil {
						t.Errorf("spin %v: RoundTrip %d: %v", spin, unique, err)
					}
				}
			})
		}
		c := sendOne(t, d, inHeader(opRelease, 999, 1, nil), [][]byte{make([]byte, 64)})
		wg.Wait()
		if r := await(t, c); r.err != nil {
			t.Errorf("spin %v: Send: %v", spin, r.err)
		}
		if el := time.Since(start); el < timeout {
			t.Errorf("spin %v: the device was busy for only %v, want more than the timeout %v", spin, el, timeout)
		}
		select {
		case <-d.Done():
			t.Errorf("spin %v: device taken for dead though every reply came in time", spin)
		default:
		}
	}
}

func TestCheckInterval(t *testing.T) {
	tests := []struct{ timeout, want time.Duration }{
		{time.Minute, time.Second},
		{8 * time.Second, time.Second},
		{200 * time.Millisecond, 25 * time.Millisecond},
		{time.Nanosecond, time.Microsecond},
	}
	for _, tt := range tests {
		if got := checkInterval(tt.timeout); got != tt.want {
			t.Errorf("checkInterval(%v) = %v, want %v", tt.timeout, got, tt.want)
		}
	}
}
