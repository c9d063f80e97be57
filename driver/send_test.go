package driver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs/virtio"
	"github.com/govirtiofs/govirtiofs/virtio/virtiotest"
)

// opRelease is FUSE_RELEASE, the request fuse sends with Send.
const opRelease = 18

// result is what a Send's done got.
type result struct {
	n   int
	err error
}

// sendOne sends req with Send and returns the channel its done reports on.
func sendOne(t *testing.T, d *Device, req []byte, out [][]byte) <-chan result {
	t.Helper()
	c := make(chan result, 1)
	if err := d.Send(context.Background(), [][]byte{req}, out, func(n int, err error) { c <- result{n, err} }); err != nil {
		t.Fatalf("Send: %v", err)
	}
	return c
}

// await waits (bounded) for a Send's done.
func await(t *testing.T, c <-chan result) result {
	t.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("done not called within 5s")
		return result{}
	}
}

// TestSend: a request from Send gets its reply, checked as RoundTrip checks
// it, into out without anyone waiting for it, and its buffers go back to
// the pool.
func TestSend(t *testing.T) {
	tests := []struct {
		name    string
		handler virtiotest.Handler
		args    []byte
		outLen  int
		wantN   int // 0: want an error
		wantErr error
	}{
		{"empty reply", echo, nil, fuseOutHeaderLen, fuseOutHeaderLen, nil},
		{"payload", echo, []byte("release me"), 64, fuseOutHeaderLen + 10, nil},
		{"large", echo, bytes.Repeat([]byte("x"), 3*pageSize), 4 * pageSize, fuseOutHeaderLen + 3*pageSize, nil},
		{"wrong unique", func(r, w [][]byte) int {
			return putReply(w, binary.LittleEndian.Uint64(flat(r)[8:])+1, nil)
		}, nil, 64, 0, syscall.EIO},
		{"short reply", func(r, w [][]byte) int { echo(r, w); return fuseOutHeaderLen - 1 }, nil, 64, 0, syscall.EIO},
		{"length beyond the buffer", func(r, w [][]byte) int { echo(r, w); return 1 << 20 }, nil, 64, 0, syscall.EIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, tr := newTestDevice(t, virtiotest.Config{Handler: tt.handler}, Options{})
			for i := range 3 {
				unique := uint64(10 + 2*i)
				out := make([]byte, tt.outLen)
				got := await(t, sendOne(t, d, inHeader(opRelease, unique, 1, tt.args), [][]byte{out}))
				if !errors.Is(got.err, tt.wantErr) || got.n != tt.wantN {
					t.Fatalf("done(%d, %v), want done(%d, %v)", got.n, got.err, tt.wantN, tt.wantErr)
				}
				if tt.wantErr != nil {
					continue
				}
				if u := binary.LittleEndian.Uint64(out[8:]); u != unique {
					t.Errorf("reply unique = %d, want %d", u, unique)
				}
				if !bytes.Equal(out[fuseOutHeaderLen:got.n], tt.args) {
					t.Errorf("reply payload differs from the request's arguments")
				}
			}
			if tr.Notifies(1) == 0 {
				t.Error("request queue not notified")
			}
			waitLive(t, d, 0)
		})
	}
}

func TestSendBadArguments(t *testing.T) {
	d, _ := newTestDevice(t, virtiotest.Config{Handler: echo}, Options{})
	big := (d.Limits().MaxPages + 1) * pageSize
	called := make(chan struct{}, 10)
	done := func(int, error) { called <- struct{}{} }
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		in      []byte
		outLen  int
		done    func(int, error)
		wantErr error
	}{
		{"short request", context.Background(), make([]byte, fuseInHeaderLen-1), 64, done, syscall.EINVAL},
		{"short reply buffer", context.Background(), inHeader(opRelease, 1, 1, nil), fuseOutHeaderLen - 1, done, syscall.EINVAL},
		{"request too big", context.Background(), inHeader(opRelease, 1, 1, make([]byte, big)), 64, done, syscall.E2BIG},
		{"reply too big", context.Background(), inHeader(opRelease, 1, 1, nil), big + 1, done, syscall.E2BIG},
		{"no done", context.Background(), inHeader(opRelease, 1, 1, nil), 64, nil, syscall.EINVAL},
		{"cancelled context", cancelled, inHeader(opRelease, 1, 1, nil), 64, done, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.Send(tt.ctx, [][]byte{tt.in}, [][]byte{make([]byte, tt.outLen)}, tt.done)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Send: %v, want %v", err, tt.wantErr)
			}
		})
	}
	// A Send that failed never calls done: let the callback goroutine
	// run whatever it has, by a Send that succeeds, before looking.
	await(t, sendOne(t, d, inHeader(opRelease, 99, 1, nil), [][]byte{make([]byte, 64)}))
	if n := len(called); n != 0 {
		t.Errorf("done called %d times for Sends that failed", n)
	}
	waitLive(t, d, 0)
}

// TestSendHarvestedByRoundTrip: the reply of a Send that completes while
// a caller spins for its own reply is taken by that caller; its done runs
// on the callback goroutine, which may call the Device itself.
func TestSendHarvestedByRoundTrip(t *testing.T) {
	d, _ := newTestDevice(t, virtiotest.Config{Handler: echo}, Options{})
	const n = 50
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range n {
		req := inHeader(opRelease, uint64(1000+2*i), 1, nil)
		err := d.Send(context.Background(), [][]byte{req}, [][]byte{make([]byte, 64)}, func(_ int, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("Send %d: done(%v)", i, err)
			}
			// A done that sends a request of its own (fuse's drops an
			// inode reference, which may send a FORGET).
			if err := d.SendHiprio(context.Background(), [][]byte{inHeader(opForget, uint64(5000+2*i), 1, make([]byte, 8))}); err != nil {
				t.Errorf("SendHiprio from done: %v", err)
			}
		})
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		if _, err := d.RoundTrip(context.Background(), [][]byte{inHeader(opGetattr, uint64(1001+2*i), 1, nil)}, [][]byte{make([]byte, 64)}); err != nil {
			t.Fatalf("RoundTrip: %v", err)
		}
	}
	wg.Wait()
	waitLive(t, d, 0)
}

// TestSendConcurrent: Sends and RoundTrips from many goroutines on several
// queues of a device that completes out of order; run with -race.
func TestSendConcurrent(t *testing.T) {
	d, _ := newTestDevice(t, virtiotest.Config{NumQueues: 3, DeviceConfig: virtiotest.FSConfig("x", 2), MaxQueueSize: 16, Async: true, Handler: echo}, Options{RequestQueues: 2})
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				unique := uint64(2 * (w*each + i + 1))
				payload := []byte{byte(w), byte(i)}
				out := make([]byte, 64)
				if i%2 == 0 {
					got := await(t, sendOne(t, d, inHeader(opRelease, unique, 1, payload), [][]byte{out}))
					if got.err != nil || !bytes.Equal(out[fuseOutHeaderLen:got.n], payload) {
						t.Errorf("Send: done(%d, %v), reply %x, want payload %x", got.n, got.err, out[:got.n], payload)
					}
					continue
				}
				n, err := d.RoundTrip(context.Background(), [][]byte{inHeader(opGetattr, unique, 1, payload)}, [][]byte{out})
				if err != nil || !bytes.Equal(out[fuseOutHeaderLen:n], payload) {
					t.Errorf("RoundTrip: %d, %v, want payload %x", n, err, payload)
				}
			}
		})
	}
	wg.Wait()
	waitLive(t, d, 0)
}

// TestSendDeviceGone: when the device goes away, every Send in flight
// completes with ENOTCONN within a second, and later ones fail at once.
func TestSendDeviceGone(t *testing.T) {
	g := newGate()
	d, tr := newTestDevice(t, virtiotest.Config{Features: virtio.FeatureVersion1, MaxQueueSize: 8, Async: true, Handler: g.handler()}, Options{})
	defer g.release()
	const n = 4 // a queue of 8 holds four
	var dones []<-chan result
	for i := range n {
		dones = append(dones, sendOne(t, d, inHeader(opRelease, uint64(2*i+2), 1, nil), [][]byte{make([]byte, 64)}))
	}
	for range n {
		<-g.started
	}
	// Two more wait for room: each fails either by Send's error or by
	// its done, never both.
	for i := range 2 {
		c := make(chan result, 2)
		dones = append(dones, c)
		go func() {
			err := d.Send(context.Background(), [][]byte{inHeader(opRelease, uint64(100+2*i), 1, nil)}, [][]byte{make([]byte, 64)}, func(n int, err error) { c <- result{n, err} })
			if err != nil {
				c <- result{0, err}
			}
		}()
	}
	waitSenders(t, d, 2)
	start := time.Now()
	go tr.Disconnect()
	for _, c := range dones {
		select {
		case got := <-c:
			if !errors.Is(got.err, syscall.ENOTCONN) || got.n != 0 {
				t.Errorf("done(%d, %v), want done(0, ENOTCONN)", got.n, got.err)
			}
		case <-time.After(time.Second):
			t.Fatal("a Send was not completed within 1s of the device going away")
		}
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("Sends failed after %v", el)
	}
	for _, c := range dones {
		select {
		case got := <-c:
			t.Errorf("a second result for one Send: %v", got)
		default:
		}
	}
	err := d.Send(context.Background(), [][]byte{inHeader(opRelease, 99, 1, nil)}, [][]byte{make([]byte, 64)}, func(int, error) {
		t.Error("done called for a Send that failed")
	})
	if !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("later Send: %v, want ENOTCONN", err)
	}
}

// TestSendCloseDrains: Close waits for the replies of Sends in flight and
// returns after their done ran.
func TestSendCloseDrains(t *testing.T) {
	g := newGate()
	defer g.release()
	tr := virtiotest.NewTransport(fsConfig(virtiotest.Config{Async: true, Handler: g.handler()}))
	d, err := New(context.Background(), tr, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	c := sendOne(t, d, inHeader(opRelease, 2, 1, nil), [][]byte{make([]byte, 64)})
	<-g.started
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	<-d.Done()
	g.release()
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	closedWithReply(t, c, "Close did not wait for the reply")
	if n := liveBuffers(d); n != 0 {
		t.Errorf("%d DMA buffers live after Close", n)
	}
}

// closedWithReply checks, after Close returned, that the done of a Send
// (reporting on c) already ran with an empty reply; why says what a
// failure means.
func closedWithReply(t *testing.T, c <-chan result, why string) {
	t.Helper()
	select {
	case got := <-c:
		if got.err != nil || got.n != fuseOutHeaderLen {
			t.Errorf("done(%d, %v), want done(%d, nil): %s", got.n, got.err, fuseOutHeaderLen, why)
		}
	default:
		t.Error("Close returned before the Send's done ran")
	}
}

// waitSenders waits (bounded) until n requests are linked on the request
// queue beyond the ones the device holds: Sends waiting for room.
func waitSenders(t *testing.T, d *Device, n int32) {
	t.Helper()
	q := d.reqs[0]
	deadline := time.Now().Add(5 * time.Second)
	for q.inflight.Load() < int32(q.vq.Size()/2)+n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests in flight, want %d", q.inflight.Load(), int32(q.vq.Size()/2)+n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSendNotifiesLazily: a Send of a RELEASE leaves its notification to
// the next request on the queue, which notifies the device of both (any
// other opcode is notified at once); a RELEASE with nothing after it is
// notified by the queue's timer; and Close notifies the device of a Send
// still waiting, and drains its reply.
func TestSendNotifiesLazily(t *testing.T) {
	t.Run("next request", func(t *testing.T) {
		d, tr := newTestDevice(t, virtiotest.Config{Handler: echo}, Options{})
		d.lazyDelay = time.Hour
		c := sendOne(t, d, inHeader(opRelease, 2, 1, nil), [][]byte{make([]byte, 64)})
		if n := tr.Notifies(1); n != 0 {
			t.Fatalf("Send notified the device at once (%d notifications)", n)
		}
		if _, err := d.RoundTrip(context.Background(), [][]byte{inHeader(opGetattr, 4, 1, nil)}, [][]byte{make([]byte, 64)}); err != nil {
			t.Fatalf("RoundTrip: %v", err)
		}
		if got := await(t, c); got.err != nil {
			t.Fatalf("Send's done(%d, %v)", got.n, got.err)
		}
		if n := tr.Notifies(1); n != 1 {
			t.Errorf("%d notifications for a Send and a RoundTrip, want 1", n)
		}
	})
	t.Run("other opcodes at once", func(t *testing.T) {
		d, tr := newTestDevice(t, virtiotest.Config{Handler: echo}, Options{})
		d.lazyDelay = time.Hour
		const opReleasedir = 29
		if got := await(t, sendOne(t, d, inHeader(opReleasedir, 2, 1, nil), [][]byte{make([]byte, 64)})); got.err != nil {
			t.Fatalf("done(%d, %v)", got.n, got.err)
		}
		if n := tr.Notifies(1); n != 1 {
			t.Errorf("RELEASEDIR: %d notifications, want 1 at once", n)
		}
	})
	t.Run("timer", func(t *testing.T) {
		d, tr := newTestDevice(t, virtiotest.Config{Handler: echo}, Options{})
		d.lazyDelay = 5 * time.Millisecond
		start := time.Now()
		if got := await(t, sendOne(t, d, inHeader(opRelease, 2, 1, nil), [][]byte{make([]byte, 64)})); got.err != nil {
			t.Fatalf("done(%d, %v)", got.n, got.err)
		}
		if el := time.Since(start); el < d.lazyDelay {
			t.Errorf("done after %v, before the timer's %v", el, d.lazyDelay)
		}
		if n := tr.Notifies(1); n != 1 {
			t.Errorf("%d notifications, want the timer's 1", n)
		}
	})
	t.Run("close", func(t *testing.T) {
		tr := virtiotest.NewTransport(fsConfig(virtiotest.Config{Handler: echo}))
		d, err := New(context.Background(), tr, Options{Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		d.lazyDelay = time.Hour
		c := sendOne(t, d, inHeader(opRelease, 2, 1, nil), [][]byte{make([]byte, 64)})
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		closedWithReply(t, c, "Close did not notify and drain")
	})
}
