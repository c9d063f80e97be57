package driver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs/virtio"
	"github.com/govirtiofs/govirtiofs/virtio/virtiotest"
)

// liveBuffers is how many DMA request buffers are out of the pool.
func liveBuffers(d *Device) int {
	d.pool.mu.Lock()
	defer d.pool.mu.Unlock()
	return d.pool.live
}

// waitLive waits (bounded) until want DMA request buffers are out of the
// pool: the last hold on a request may be let go just after its waiter
// returned, by the completion goroutine.
func waitLive(t *testing.T, d *Device, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for liveBuffers(d) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d DMA buffers live, want %d", liveBuffers(d), want)
		}
		runtime.Gosched()
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		cfg  virtiotest.Config
		args []byte
		out  []int // lengths of the out slices
	}{
		{"small", virtiotest.Config{}, []byte("hello"), []int{64}},
		{"no indirect", virtiotest.Config{Features: virtio.FeatureVersion1}, []byte("hello"), []int{64}},
		{"scattered reply", virtiotest.Config{}, bytes.Repeat([]byte("abcdefg"), 100), []int{fuseOutHeaderLen, 3, 500, 4096}},
		{"reply truncated to out", virtiotest.Config{}, bytes.Repeat([]byte("x"), 1000), []int{fuseOutHeaderLen + 10}},
		{"largest request", virtiotest.Config{}, make([]byte, 257*4096-fuseInHeaderLen), []int{257 * 4096}},
		{"largest request, queue of 4", virtiotest.Config{MaxQueueSize: 4}, make([]byte, 257*4096-fuseInHeaderLen), []int{257 * 4096}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Handler = echo
			d, _ := newTestDevice(t, cfg, Options{})
			for i := range 3 {
				unique := uint64(100 + i)
				req := inHeader(opGetattr, unique, 1, tt.args)
				out := make([][]byte, len(tt.out))
				total := 0
				for j, n := range tt.out {
					out[j] = make([]byte, n)
					total += n
				}
				// Split the request too, to exercise gathering.
				n, err := d.RoundTrip(context.Background(), [][]byte{req[:fuseInHeaderLen], req[fuseInHeaderLen:]}, out)
				if err != nil {
					t.Fatalf("RoundTrip: %v", err)
				}
				wantN := min(fuseOutHeaderLen+len(tt.args), total)
				if n != wantN {
					t.Fatalf("n = %d, want %d", n, wantN)
				}
				got := flat(out)[:n]
				if u := binary.LittleEndian.Uint64(got[8:]); u != unique {
					t.Errorf("reply unique = %d, want %d", u, unique)
				}
				if !bytes.Equal(got[fuseOutHeaderLen:], tt.args[:n-fuseOutHeaderLen]) {
					t.Errorf("reply payload differs from the request's arguments")
				}
			}
			waitLive(t, d, 0)
		})
	}
}

func TestRoundTripBadArguments(t *testing.T) {
	d, _ := newTestDevice(t, virtiotest.Config{Handler: echo}, Options{})
	big := (d.Limits().MaxPages + 1) * 4096
	tests := []struct {
		name    string
		in      []byte
		outLen  int
		wantErr error
	}{
		{"short request", make([]byte, fuseInHeaderLen-1), 64, syscall.EINVAL},
		{"short reply buffer", inHeader(opGetattr, 1, 1, nil), fuseOutHeaderLen - 1, syscall.EINVAL},
		{"request too big", inHeader(opGetattr, 1, 1, make([]byte, big)), 64, syscall.E2BIG},
		{"reply too big", inHeader(opGetattr, 1, 1, nil), big + 1, syscall.E2BIG},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.RoundTrip(context.Background(), [][]byte{tt.in}, [][]byte{make([]byte, tt.outLen)})
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("RoundTrip: %v, want %v", err, tt.wantErr)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.RoundTrip(ctx, [][]byte{inHeader(opGetattr, 1, 1, nil)}, [][]byte{make([]byte, 64)}); !errors.Is(err, context.Canceled) {
		t.Errorf("RoundTrip with a cancelled context: %v, want context.Canceled", err)
	}
	if err := d.SendHiprio(context.Background(), [][]byte{make([]byte, 8)}); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("SendHiprio of a short request: %v, want EINVAL", err)
	}
}

// TestBadReplies: a device that lies fails that request with EIO, and the
// next request works.
func TestBadReplies(t *testing.T) {
	tests := []struct {
		name    string
		handler virtiotest.Handler
	}{
		{"wrong unique", func(r, w [][]byte) int {
			return putReply(w, binary.LittleEndian.Uint64(flat(r)[8:])+1, nil)
		}},
		{"shorter than the header", func(r, w [][]byte) int { echo(r, w); return fuseOutHeaderLen - 1 }},
		{"length beyond the buffer", func(r, w [][]byte) int { echo(r, w); return 1 << 20 }},
		{"nothing written, length claimed", func(r, w [][]byte) int { return fuseOutHeaderLen }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			bad := true
			handler := func(r, w [][]byte) int {
				mu.Lock()
				b := bad
				bad = false
				mu.Unlock()
				if b {
					return tt.handler(r, w)
				}
				return echo(r, w)
			}
			d, _ := newTestDevice(t, virtiotest.Config{Handler: handler}, Options{})
			// A first good request leaves stale bytes in the pooled reply
			// buffer that must not pass for the bad reply's header.
			mu.Lock()
			bad = false
			mu.Unlock()
			if _, err := d.RoundTrip(context.Background(), [][]byte{inHeader(opGetattr, 7, 1, nil)}, [][]byte{make([]byte, 64)}); err != nil {
				t.Fatalf("first RoundTrip: %v", err)
			}
			mu.Lock()
			bad = true
			mu.Unlock()
			_, err := d.RoundTrip(context.Background(), [][]byte{inHeader(opGetattr, 7, 1, nil)}, [][]byte{make([]byte, 64)})
			if !errors.Is(err, syscall.EIO) {
				t.Errorf("bad reply: %v, want EIO", err)
			}
			if _, err := d.RoundTrip(context.Background(), [][]byte{inHeader(opGetattr, 8, 1, nil)}, [][]byte{make([]byte, 64)}); err != nil {
				t.Errorf("next RoundTrip: %v", err)
			}
		})
	}
}

// TestBogusUsedEntry: a used entry that names no chain in flight breaks
// the queue (Linux BAD_RING): the waiter and later requests get EIO.
func TestBogusUsedEntry(t *testing.T) {
	tests := []struct {
		name string
		id   uint32
	}{
		{"id out of range", 1000},
		{"id not in flight", 77},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGate()
			d, tr := newTestDevice(t, virtiotest.Config{Async: true, Handler: g.handler()}, Options{})
			defer g.release()
			errc := make(chan error, 1)
			go func() {
				_, err := d.RoundTrip(context.Background(), [][]byte{inHeader(opGetattr, 1, 1, nil)}, [][]byte{make([]byte, 64)})
				errc <- err
			}()
			<-g.started
			if err := tr.InjectUsed(1, tt.id, 16); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; !errors.Is(err, syscall.EIO) {
				t.Errorf("in-flight RoundTrip: %v, want EIO", err)
			}
			if _, err := d.RoundTrip(context.Background(), [][]byte{inHeader(opGetattr, 2, 1, nil)}, [][]byte{make([]byte, 64)}); !errors.Is(err, syscall.EIO) {
				t.Errorf("later RoundTrip: %v, want EIO", err)
			}
		})
	}
}

// TestContextCancel: the waiter returns ctx.Err() at once; the buffers stay
// reserved until the device returns the chain.
func TestContextCancel(t *testing.T) {
	g := newGate()
	d, _ := newTestDevice(t, virtiotest.Config{Handler: g.handler()}, Options{})
	defer g.release()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := d.RoundTrip(ctx, [][]byte{inHeader(opGetattr, 1, 1, nil)}, [][]byte{make([]byte, 64)})
		errc <- err
	}()
	<-g.started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("RoundTrip: %v, want context.Canceled", err)
	}
	if n := liveBuffers(d); n != 2 {
		t.Errorf("live buffers after cancel = %d, want 2 (held for the device)", n)
	}
	g.release()
	waitLive(t, d, 0)
}

// TestFullQueueWaits: with every descriptor in use a request waits for
// room (or its context), rather than failing.
func TestFullQueueWaits(t *testing.T) {
	g := newGate()
	// Queue size 8 without indirect descriptors: four requests fill it.
	d, _ := newTestDevice(t, virtiotest.Config{Features: virtio.FeatureVersion1, MaxQueueSize: 8, Async: true, Handler: g.handler()}, Options{})
	defer g.release()
	const n = 6
	errc := make(chan error, n)
	for i := range n {
		go func() {
			_, err := d.RoundTrip(context.Background(), [][]byte{inHeader(opGetattr, uint64(i+1), 1, nil)}, [][]byte{make([]byte, 64)})
			errc <- err
		}()
	}
	for range 4 {
		<-g.started
	}
	// The queue is full: a request with a context that ends gets ctx.Err().
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := d.RoundTrip(ctx, [][]byte{inHeader(opGetattr, 99, 1, nil)}, [][]byte{make([]byte, 64)}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RoundTrip on a full queue: %v, want DeadlineExceeded", err)
	}
	if got := d.reqs[0].vq.InFlight(); got != 4 {
		t.Errorf("in flight = %d, want 4", got)
	}
	g.release()
	for range n {
		if err := <-errc; err != nil {
			t.Errorf("RoundTrip: %v", err)
		}
	}
	waitLive(t, d, 0) // the request that gave up waiting returned its buffers
}

// TestConcurrent: many callers on one or more queues, each getting its own
// reply, whether they spin for it (harvesting each other's completions),
// park at once (the completion goroutine harvests), or mix both.
func TestConcurrent(t *testing.T) {
	modes := []struct {
		name string
		opts Options
	}{
		{"spin", Options{}},
		{"park", Options{Spin: -1}},
		{"mixed", Options{Spin: time.Microsecond}},
		{"mixed, event idx", Options{Spin: time.Microsecond, EventIdx: true}},
	}
	for _, nq := range []int{1, 3} {
		for _, m := range modes {
			t.Run(fmt.Sprintf("%d request queues, %s", nq, m.name), func(t *testing.T) {
				opts := m.opts
				opts.RequestQueues, opts.QueueSize = nq, 16
				testConcurrent(t, nq, opts)
			})
		}
	}
}

func testConcurrent(t *testing.T, nq int, opts Options) {
	d, tr := newTestDevice(t, virtiotest.Config{NumQueues: 1 + nq, DeviceConfig: virtiotest.FSConfig("c", nq), Async: true, Handler: echo}, opts)
	const goroutines, each = 64, 100
	var wg sync.WaitGroup
	errc := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				unique := uint64(g*each + i + 1)
				arg := []byte(fmt.Sprintf("g%d-i%d", g, i))
				out := make([]byte, 64)
				n, err := d.RoundTrip(context.Background(), [][]byte{inHeader(opGetattr, unique, 1, arg)}, [][]byte{out})
				if err != nil {
					errc <- err
					return
				}
				if !bytes.Equal(out[fuseOutHeaderLen:n], arg) {
					errc <- fmt.Errorf("request %d got reply %q, want %q", unique, out[fuseOutHeaderLen:n], arg)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	for i := 1; i <= nq; i++ {
		if tr.Notifies(i) == 0 {
			t.Errorf("queue %d never notified", i)
		}
	}
	waitLive(t, d, 0)
}

func TestSendHiprio(t *testing.T) {
	got := make(chan []byte, 10)
	handler := func(r, w [][]byte) int {
		if len(w) == 0 {
			got <- flat(r)
			return 0
		}
		return echo(r, w)
	}
	d, tr := newTestDevice(t, virtiotest.Config{Handler: handler}, Options{})
	forget := inHeader(opForget, 5, 42, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	if err := d.SendHiprio(context.Background(), [][]byte{forget}); err != nil {
		t.Fatalf("SendHiprio: %v", err)
	}
	if b := <-got; !bytes.Equal(b, forget) {
		t.Errorf("device got %x, want %x", b, forget)
	}
	if tr.Notifies(hiprioQueue) == 0 {
		t.Error("hiprio queue not notified")
	}
	// The buffer goes back to the pool when the hiprio completion
	// goroutine takes the used entry.
	waitLive(t, d, 0)
}

// TestDeviceGone: when the device goes away every waiter (in flight or
// waiting for room) and every later call gets ENOTCONN within a second.
func TestDeviceGone(t *testing.T) {
	g := newGate()
	d, tr := newTestDevice(t, virtiotest.Config{Features: virtio.FeatureVersion1, MaxQueueSize: 8, Async: true, Handler: g.handler()}, Options{})
	defer g.release()
	const n = 6 // four in flight, two waiting for room
	errc := make(chan error, n)
	for i := range n {
		go func() {
			_, err := d.RoundTrip(context.Background(), [][]byte{inHeader(opGetattr, uint64(i+1), 1, nil)}, [][]byte{make([]byte, 64)})
			errc <- err
		}()
	}
	for range 4 {
		<-g.started
	}
	start := time.Now()
	go tr.Disconnect()
	for range n {
		select {
		case err := <-errc:
			if !errors.Is(err, syscall.ENOTCONN) {
				t.Errorf("RoundTrip: %v, want ENOTCONN", err)
			}
		case <-time.After(time.Second):
			t.Fatalf("a waiter did not return within 1s of the device going away")
		}
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("waiters failed after %v", el)
	}
	select {
	case <-d.Done():
	case <-time.After(time.Second):
		t.Fatal("Done not closed")
	}
	if _, err := d.RoundTrip(context.Background(), [][]byte{inHeader(opGetattr, 9, 1, nil)}, [][]byte{make([]byte, 64)}); !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("later RoundTrip: %v, want ENOTCONN", err)
	}
	if err := d.SendHiprio(context.Background(), [][]byte{inHeader(opForget, 9, 1, nil)}); !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("later SendHiprio: %v, want ENOTCONN", err)
	}
}

// waitGoroutines waits (bounded) for the goroutine count to fall to want:
// goroutines that signalled a WaitGroup still take a moment to exit.
func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want %d:\n%s", runtime.NumGoroutine(), want, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
	}
}

func TestCloseLeaksNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	tr := virtiotest.NewTransport(fsConfig(virtiotest.Config{NumQueues: 3, DeviceConfig: virtiotest.FSConfig("x", 2), Handler: echo}))
	d, err := New(context.Background(), tr, Options{RequestQueues: 2, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := d.RoundTrip(context.Background(), [][]byte{inHeader(opGetattr, uint64(i+1), 1, nil)}, [][]byte{make([]byte, 64)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := d.RoundTrip(context.Background(), [][]byte{inHeader(opGetattr, 1, 1, nil)}, [][]byte{make([]byte, 64)}); !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("RoundTrip after Close: %v, want ENOTCONN", err)
	}
	select {
	case <-tr.Done():
	default:
		t.Error("Close did not close the transport")
	}
	waitGoroutines(t, before)
}

// FuzzReply: whatever the device writes and claims, RoundTrip returns
// either an error or a reply of at most len(out) bytes carrying the
// request's unique, and never panics.
func FuzzReply(f *testing.F) {
	f.Add([]byte{16, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}, uint32(16), uint16(64))
	f.Add([]byte{}, uint32(1<<31), uint16(16))
	f.Add([]byte{1, 2, 3}, uint32(3), uint16(100))
	var mu sync.Mutex
	var reply []byte
	var claim uint32
	tr := virtiotest.NewTransport(fsConfig(virtiotest.Config{Handler: func(r, w [][]byte) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, b := range w {
			n += copy(b, reply[min(n, len(reply)):])
		}
		return int(claim)
	}}))
	d, err := New(context.Background(), tr, Options{Logger: quietLogger()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { d.Close() })
	f.Fuzz(func(t *testing.T, b []byte, n uint32, outLen uint16) {
		mu.Lock()
		reply, claim = b, n
		mu.Unlock()
		out := make([]byte, max(int(outLen), fuseOutHeaderLen))
		got, err := d.RoundTrip(context.Background(), [][]byte{inHeader(opGetattr, 1, 1, nil)}, [][]byte{out})
		if err != nil {
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("RoundTrip: %v, want EIO or success", err)
			}
			return
		}
		if got < fuseOutHeaderLen || got > len(out) {
			t.Fatalf("n = %d with out of %d bytes", got, len(out))
		}
		if u := binary.LittleEndian.Uint64(out[8:]); u != 1 {
			t.Fatalf("reply unique %d accepted for request 1", u)
		}
	})
}

// TestCloseDrains: Close waits for the device to give back the chains in
// flight (here a FORGET the device is still processing) before it resets
// the device, as virtio_fs_drain_all_queues in Linux; and a device that
// never gives them back delays Close by at most the drain timeout.
func TestCloseDrains(t *testing.T) {
	tests := []struct {
		name         string
		releaseFirst bool // the device finishes the FORGET during Close
	}{
		{"device returns the chain", true},
		{"device keeps the chain", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGate()
			defer g.release()
			statusSeen := make(chan uint8, 1)
			var tr *virtiotest.Transport
			handler := func(r, w [][]byte) int {
				g.started <- flat(r)
				<-g.open
				s, _ := tr.Status()
				statusSeen <- s
				return 0
			}
			tr = virtiotest.NewTransport(fsConfig(virtiotest.Config{Async: true, Handler: handler}))
			d, err := New(context.Background(), tr, Options{Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			if err := d.SendHiprio(context.Background(), [][]byte{inHeader(opForget, 1, 42, make([]byte, 8))}); err != nil {
				t.Fatalf("SendHiprio: %v", err)
			}
			<-g.started
			start := time.Now()
			closed := make(chan error, 1)
			go func() { closed <- d.Close() }()
			<-d.Done()
			if tt.releaseFirst {
				// Close must not reset while the FORGET is in flight:
				// watch the status for a while before letting it finish.
				for watch := time.Now().Add(100 * time.Millisecond); time.Now().Before(watch); runtime.Gosched() {
					if s, _ := tr.Status(); s == 0 {
						t.Fatal("Close reset the device with a FORGET in flight")
					}
				}
				g.release()
				if s := <-statusSeen; s&virtio.StatusDriverOK == 0 {
					t.Errorf("device status %#x while it finished the FORGET: reset before the queue was drained", s)
				}
			} else {
				// The fake device's reset waits for its handlers: let
				// this one go once the reset has begun.
				deadline := time.Now().Add(drainTimeout + 5*time.Second)
				for s, _ := tr.Status(); s != 0; s, _ = tr.Status() {
					if time.Now().After(deadline) {
						t.Fatalf("status still %#x: Close never reset the device", s)
					}
					runtime.Gosched()
				}
				g.release()
			}
			if err := <-closed; err != nil {
				t.Errorf("Close: %v", err)
			}
			el := time.Since(start)
			switch {
			case tt.releaseFirst && el >= drainTimeout:
				t.Errorf("Close took %v with nothing left in flight", el)
			case !tt.releaseFirst && (el < drainTimeout || el > drainTimeout+2*time.Second):
				t.Errorf("Close took %v with a chain the device keeps, want about %v", el, drainTimeout)
			}
			g.release()
			if liveBuffers(d) != 0 {
				t.Errorf("%d DMA buffers live after Close", liveBuffers(d))
			}
		})
	}
}

// TestDestroyAfterForgets: a DESTROY waits until the device has processed
// the FORGETs sent before it (virtiofsd serves the queues on separate
// threads and drops a FORGET it takes after DESTROY).
func TestDestroyAfterForgets(t *testing.T) {
	const opDestroy = 38
	g := newGate()
	defer g.release()
	var mu sync.Mutex
	var order []uint32
	handler := func(r, w [][]byte) int {
		req := flat(r)
		op := binary.LittleEndian.Uint32(req[4:])
		if op == opForget {
			<-g.open
		}
		mu.Lock()
		order = append(order, op)
		mu.Unlock()
		return echo(r, w)
	}
	d, _ := newTestDevice(t, virtiotest.Config{Async: true, Handler: handler}, Options{})
	for i := range 3 {
		if err := d.SendHiprio(context.Background(), [][]byte{inHeader(opForget, uint64(i+1), 42, make([]byte, 8))}); err != nil {
			t.Fatalf("SendHiprio: %v", err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := d.RoundTrip(context.Background(), [][]byte{inHeader(opDestroy, 10, 0, nil)}, [][]byte{make([]byte, 64)})
		done <- err
	}()
	// The DESTROY must not reach the device while the FORGETs are held.
	for watch := time.Now().Add(100 * time.Millisecond); time.Now().Before(watch); runtime.Gosched() {
		mu.Lock()
		n := len(order)
		mu.Unlock()
		if n != 0 {
			t.Fatal("DESTROY reached the device before the FORGETs were processed")
		}
	}
	g.release()
	if err := <-done; err != nil {
		t.Fatalf("DESTROY: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []uint32{opForget, opForget, opForget, opDestroy}; fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("device saw opcodes %v, want %v", order, want)
	}
}

// TestPoolReuse: a small round trip's request goes back to the pool whole,
// with its two one-page DMA buffers attached, and the next small one takes
// it again (neither the Memory nor the buffer classes are involved); a
// larger one's buffers go back to their classes whole, not cut to the
// request's length.
func TestPoolReuse(t *testing.T) {
	d, _ := newTestDevice(t, virtiotest.Config{Handler: echo}, Options{})
	cached := func() (reqs int, full [2]virtio.Buffer, pages, big int) {
		d.pool.mu.Lock()
		defer d.pool.mu.Unlock()
		if len(d.pool.reqs) > 0 {
			full = d.pool.reqs[0].full
		}
		c, _ := class(1)
		cb, _ := class(3 * pageSize)
		return len(d.pool.reqs), full, len(d.pool.free[c]), len(d.pool.free[cb])
	}
	var first [2]virtio.Buffer
	for i := range 3 {
		if _, err := d.RoundTrip(context.Background(), [][]byte{inHeader(opGetattr, uint64(i+1), 1, []byte("x"))}, [][]byte{make([]byte, 100)}); err != nil {
			t.Fatal(err)
		}
		waitLive(t, d, 0)
		reqs, full, pages, _ := cached()
		if reqs != 1 || pages != 0 {
			t.Fatalf("round trip %d: %d requests and %d one-page buffers cached, want 1 and 0", i, reqs, pages)
		}
		if len(full[0].Bytes) != pageSize || len(full[1].Bytes) != pageSize {
			t.Fatalf("round trip %d: cached request has buffers of %d and %d bytes, want a page each", i, len(full[0].Bytes), len(full[1].Bytes))
		}
		if i == 0 {
			first = full
		} else if full[0].Addr != first[0].Addr || full[1].Addr != first[1].Addr {
			t.Fatalf("round trip %d: buffers at %#x, %#x; want the first round trip's %#x, %#x", i, full[0].Addr, full[1].Addr, first[0].Addr, first[1].Addr)
		}
	}
	// A reply of three pages: both buffers go back to their classes.
	if _, err := d.RoundTrip(context.Background(), [][]byte{inHeader(opGetattr, 9, 1, []byte("x"))}, [][]byte{make([]byte, 3*pageSize)}); err != nil {
		t.Fatal(err)
	}
	waitLive(t, d, 0)
	if reqs, _, pages, big := cached(); reqs != 1 || pages != 1 || big != 1 {
		t.Errorf("after a large round trip: %d requests, %d one-page and %d four-page buffers cached, want 1, 1, 1", reqs, pages, big)
	}
}

// BenchmarkRoundTripFake measures the driver's own cost of a small round
// trip against the in-process fake device; with -cpu 1 (one P, as in a
// one-vCPU guest) the device goroutine runs when the caller yields.
func BenchmarkRoundTripFake(b *testing.B) {
	tr := virtiotest.NewTransport(fsConfig(virtiotest.Config{Handler: echo}))
	d, err := New(context.Background(), tr, Options{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	in := [][]byte{inHeader(opGetattr, 1, 1, make([]byte, 16))}
	out := [][]byte{make([]byte, 120)}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		binary.LittleEndian.PutUint64(in[0][8:], uint64(i+1))
		if _, err := d.RoundTrip(ctx, in, out); err != nil {
			b.Fatal(err)
		}
	}
}
