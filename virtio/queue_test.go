package virtio_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs/virtio"
	"github.com/govirtiofs/govirtiofs/virtio/virtiotest"
)

// echo replies with the readable bytes, reversed in order of buffers, into
// the writable ones.
func echo(readable, writable [][]byte) int {
	in := bytes.Join(readable, nil)
	n := 0
	for _, w := range writable {
		c := copy(w, in[n:])
		n += c
	}
	return n
}

// setup negotiates features with a fake device and enables one queue.
func setup(t testing.TB, cfg virtiotest.Config, size int) (*virtiotest.Transport, *virtio.Queue) {
	t.Helper()
	tr := virtiotest.NewTransport(cfg)
	t.Cleanup(func() { tr.Close() })
	feat, err := tr.DeviceFeatures()
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.SetDriverFeatures(feat); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetStatus(virtio.StatusAcknowledge | virtio.StatusDriver | virtio.StatusFeaturesOK); err != nil {
		t.Fatal(err)
	}
	q, err := virtio.NewQueue(tr.Memory(), 1, size, feat)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.EnableQueue(1, q.Addrs()); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetStatus(virtio.StatusAcknowledge | virtio.StatusDriver | virtio.StatusFeaturesOK | virtio.StatusDriverOK); err != nil {
		t.Fatal(err)
	}
	return tr, q
}

// add adds a chain and notifies the device if it asks for it.
func add(ctx context.Context, tr virtio.Transport, q *virtio.Queue, r, w []virtio.Buffer, cookie any) error {
	notify, err := q.Add(ctx, r, w, cookie)
	if err != nil {
		return err
	}
	if notify {
		return tr.Notify(q.Index())
	}
	return nil
}

// waitPop polls q until it has a used entry, with a test timeout.
func waitPop(t testing.TB, q *virtio.Queue) (virtio.Used, error) {
	t.Helper()
	timeout := make(chan struct{})
	timer := time.AfterFunc(10*time.Second, func() { close(timeout) })
	defer timer.Stop()
	for {
		if !virtio.Poll(timeout, nil, q.HasUsed) {
			t.Fatal("no used entry within 10s")
		}
		u, ok, err := q.Pop()
		if ok || err != nil {
			return u, err
		}
	}
}

func alloc(t testing.TB, m virtio.Memory, size int) virtio.Buffer {
	t.Helper()
	b, err := m.Alloc(size, 8)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var featureSets = []struct {
	name     string
	features uint64
}{
	{"plain", virtio.FeatureVersion1},
	{"event idx", virtio.FeatureVersion1 | virtio.FeatureEventIdx},
	{"indirect", virtio.FeatureVersion1 | virtio.FeatureIndirectDesc},
	{"event idx+indirect", virtio.FeatureVersion1 | virtio.FeatureEventIdx | virtio.FeatureIndirectDesc},
}

// TestQueueRoundTrip runs many concurrent chains of three buffers through
// a queue smaller than the number of senders, so that Add has to wait for
// free descriptors, and checks every reply.
func TestQueueRoundTrip(t *testing.T) {
	for _, fs := range featureSets {
		for _, async := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/async=%v", fs.name, async), func(t *testing.T) {
				tr, q := setup(t, virtiotest.Config{Features: fs.features, Handler: echo, Async: async}, 8)
				const senders, perSender = 12, 50
				type req struct {
					out  virtio.Buffer
					want []byte
				}
				var (
					mu   sync.Mutex
					done = map[*req]int{}
					wg   sync.WaitGroup
					got  = make(chan struct{}, senders*perSender)
				)
				// The completion goroutine.
				stop := make(chan struct{})
				go func() {
					var b virtio.Backoff
					for {
						if !virtio.Poll(stop, &b, q.HasUsed) {
							return
						}
						for {
							u, ok, err := q.Pop()
							if err != nil {
								t.Errorf("Pop: %v", err)
							}
							if !ok {
								break
							}
							r := u.Cookie.(*req)
							mu.Lock()
							done[r] = u.Len
							mu.Unlock()
							got <- struct{}{}
						}
					}
				}()
				defer close(stop)
				mem := tr.Memory()
				reqs := make([][]*req, senders)
				for s := range senders {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range perSender {
							h := alloc(t, mem, 8)
							binary.LittleEndian.PutUint64(h.Bytes, uint64(s<<16|i))
							body := alloc(t, mem, 3+i%5)
							copy(body.Bytes, "abcdefg")
							out := alloc(t, mem, 64)
							r := &req{out: out, want: append(append([]byte{}, h.Bytes...), body.Bytes...)}
							reqs[s] = append(reqs[s], r)
							if err := add(context.Background(), tr, q, []virtio.Buffer{h, body}, []virtio.Buffer{out}, r); err != nil {
								t.Errorf("Add: %v", err)
								return
							}
						}
					}()
				}
				wg.Wait()
				for range senders * perSender {
					<-got
				}
				for _, rs := range reqs {
					for _, r := range rs {
						n := done[r]
						if n != len(r.want) || !bytes.Equal(r.out.Bytes[:n], r.want) {
							t.Fatalf("reply %q (len %d), want %q", r.out.Bytes[:n], n, r.want)
						}
					}
				}
				if q.InFlight() != 0 {
					t.Errorf("InFlight = %d after all replies, want 0", q.InFlight())
				}
				if err := tr.Err(); err != nil {
					t.Errorf("device error: %v", err)
				}
				if n := tr.Interrupts(1); n != 0 {
					t.Errorf("device would have interrupted %d times, want 0 (we poll)", n)
				}
				if n := tr.Notifies(1); n == 0 {
					t.Errorf("device was never notified")
				}
			})
		}
	}
}

// TestQueueFullWaits fills the queue with chains the device holds, checks
// that Add waits (and obeys its context), and that a completion lets it in.
func TestQueueFullWaits(t *testing.T) {
	for _, fs := range featureSets {
		t.Run(fs.name, func(t *testing.T) {
			release := make(chan struct{})
			handler := func(_, w [][]byte) int { <-release; return 0 }
			tr, q := setup(t, virtiotest.Config{Features: fs.features, Handler: handler, Async: true}, 4)
			defer close(release)
			mem := tr.Memory()
			// With indirect descriptors each 2-buffer chain takes one
			// ring descriptor, else two.
			per := 2
			if fs.features&virtio.FeatureIndirectDesc != 0 {
				per = 1
			}
			for i := range 4 / per {
				if err := add(context.Background(), tr, q, []virtio.Buffer{alloc(t, mem, 4)}, []virtio.Buffer{alloc(t, mem, 4)}, i); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_, err := q.Add(ctx, []virtio.Buffer{alloc(t, mem, 4)}, []virtio.Buffer{alloc(t, mem, 4)}, "late")
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Add on a full queue with a cancelled context = %v, want context.Canceled", err)
			}
			added := make(chan error)
			go func() {
				added <- add(context.Background(), tr, q, []virtio.Buffer{alloc(t, mem, 4)}, []virtio.Buffer{alloc(t, mem, 4)}, "waiter")
			}()
			release <- struct{}{} // one chain completes
			if _, err := waitPop(t, q); err != nil {
				t.Fatal(err)
			}
			if err := <-added; err != nil {
				t.Fatalf("Add after a completion: %v", err)
			}
		})
	}
}

func TestQueueAddErrors(t *testing.T) {
	tr, q := setup(t, virtiotest.Config{}, 4)
	b := alloc(t, tr.Memory(), 8)
	tests := []struct {
		name    string
		r, w    []virtio.Buffer
		wantErr error
	}{
		{"empty chain", nil, nil, syscall.EINVAL},
		{"longer than the queue", []virtio.Buffer{b, b, b}, []virtio.Buffer{b, b}, syscall.EINVAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := q.Add(context.Background(), tt.r, tt.w, nil); !errors.Is(err, tt.wantErr) {
				t.Errorf("Add = %v, want %v", err, tt.wantErr)
			}
		})
	}
	q.Close()
	if _, err := q.Add(context.Background(), []virtio.Buffer{b}, nil, nil); !errors.Is(err, virtio.ErrDeviceGone) {
		t.Errorf("Add after Close = %v, want ErrDeviceGone", err)
	}
}

func TestNewQueueErrors(t *testing.T) {
	for _, size := range []int{0, 1, 3, 65536} {
		if _, err := virtio.NewQueue(virtiotest.NewMemory(1<<20), 0, size, 0); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("NewQueue(size %d) = %v, want EINVAL", size, err)
		}
	}
	if _, err := virtio.NewQueue(virtiotest.NewMemory(4096), 0, 1024, 0); !errors.Is(err, syscall.ENOMEM) {
		t.Errorf("NewQueue in too little memory = %v, want ENOMEM", err)
	}
}

// TestQueueBogusUsed has the device publish used entries that no honest
// device writes; Pop must report them, not panic, and keep working.
func TestQueueBogusUsed(t *testing.T) {
	tests := []struct {
		name    string
		id, len uint32
		wantOK  bool // the entry names a real chain, whose cookie comes back
	}{
		{"id out of range", 1000, 0, false},
		{"id not in flight", 3, 0, false},
		{"length beyond writable", 0, 1 << 20, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hold := make(chan struct{})
			handler := func(_, _ [][]byte) int { <-hold; return 0 }
			tr, q := setup(t, virtiotest.Config{Features: virtio.FeatureVersion1, Handler: handler, Async: true}, 8)
			defer close(hold)
			mem := tr.Memory()
			if err := add(context.Background(), tr, q, []virtio.Buffer{alloc(t, mem, 4)}, []virtio.Buffer{alloc(t, mem, 16)}, "victim"); err != nil {
				t.Fatal(err)
			}
			if err := tr.InjectUsed(1, tt.id, tt.len); err != nil {
				t.Fatal(err)
			}
			u, err := waitPop(t, q)
			if !errors.Is(err, virtio.ErrBadUsed) {
				t.Fatalf("Pop error = %v, want ErrBadUsed", err)
			}
			if tt.wantOK && (u.Cookie != "victim" || u.Len != 16) {
				t.Errorf("Pop = %+v, want the victim's cookie with Len clamped to 16", u)
			}
			if want := map[bool]int{true: 0, false: 1}[tt.wantOK]; q.InFlight() != want {
				t.Errorf("InFlight = %d, want %d", q.InFlight(), want)
			}
		})
	}
}

// TestQueueUsedIdxRunaway moves used idx far past anything in flight.
func TestQueueUsedIdxRunaway(t *testing.T) {
	_, q := setup(t, virtiotest.Config{}, 4)
	virtio.Word(q.Addrs().Used.Bytes, 0).Store(1000 << 16)
	for range 2 {
		if _, ok, err := q.Pop(); ok || !errors.Is(err, virtio.ErrBadUsed) {
			t.Fatalf("Pop = ok %v, %v; want ErrBadUsed", ok, err)
		}
	}
}

func TestNeedEvent(t *testing.T) {
	tests := []struct {
		event, new, old uint16
		want            bool
	}{
		{0, 1, 0, true},
		{1, 1, 0, false},
		{5, 10, 3, true},
		{10, 10, 3, false},
		{2, 10, 3, false},
		{0xffff, 1, 0xfffe, true}, // wraps
		{0, 1, 0xfffe, true},
		{1, 1, 0xfffe, false},
	}
	for _, tt := range tests {
		if got := virtio.NeedEvent(tt.event, tt.new, tt.old); got != tt.want {
			t.Errorf("NeedEvent(%d, %d, %d) = %v, want %v", tt.event, tt.new, tt.old, got, tt.want)
		}
	}
}

func TestPoll(t *testing.T) {
	n := 0
	if !virtio.Poll(nil, &virtio.Backoff{SpinFor: time.Microsecond, YieldFor: 2 * time.Microsecond, MaxSleep: time.Microsecond}, func() bool { n++; return n == 10 }) {
		t.Fatal("Poll = false, want true once ready")
	}
	done := make(chan struct{})
	close(done)
	if virtio.Poll(done, nil, func() bool { return false }) {
		t.Fatal("Poll with done closed = true, want false")
	}
}

// FuzzPop writes arbitrary bytes into the used ring and used idx of a queue
// with chains in flight: Pop must return entries or errors, never panic.
func FuzzPop(f *testing.F) {
	f.Add(uint16(1), []byte{0, 0, 0, 0, 4, 0, 0, 0})
	f.Add(uint16(3), []byte{9, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 8, 0, 0, 0})
	f.Add(uint16(0xffff), []byte{})
	f.Fuzz(func(t *testing.T, idx uint16, ring []byte) {
		mem := virtiotest.NewMemory(1 << 16)
		q, err := virtio.NewQueue(mem, 0, 8, virtio.FeatureIndirectDesc)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			r, _ := mem.Alloc(4, 4)
			w, _ := mem.Alloc(8, 4)
			if _, err := q.Add(context.Background(), []virtio.Buffer{r}, []virtio.Buffer{w}, i); err != nil {
				t.Fatal(err)
			}
		}
		used := q.Addrs().Used.Bytes
		copy(used[4:4+8*8], ring)
		virtio.Word(used, 0).Store(uint32(idx) << 16)
		for range 20 {
			u, ok, err := q.Pop()
			if err != nil && !errors.Is(err, virtio.ErrBadUsed) {
				t.Fatalf("Pop error %v does not wrap ErrBadUsed", err)
			}
			if ok && (u.Len < 0 || u.Len > 8) {
				t.Fatalf("Pop Len %d outside [0, 8]", u.Len)
			}
			if !ok && err == nil {
				break
			}
		}
	})
}

// BenchmarkRingRoundTrip measures one request through the ring and the
// fake device: Add, Notify when asked, poll used idx, Pop.
func BenchmarkRingRoundTrip(b *testing.B) {
	for _, fs := range featureSets {
		b.Run(fs.name, func(b *testing.B) {
			tr, q := setup(b, virtiotest.Config{Features: fs.features, Handler: echo}, 128)
			mem := tr.Memory()
			in, out := alloc(b, mem, 40), alloc(b, mem, 16)
			hdr := alloc(b, mem, 64)
			b.ResetTimer()
			for b.Loop() {
				if err := add(context.Background(), tr, q, []virtio.Buffer{in}, []virtio.Buffer{out, hdr}, nil); err != nil {
					b.Fatal(err)
				}
				if _, err := waitPop(b, q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestQueueIndirectTableReuse: a completed chain's indirect table is kept
// for the next chain of the same length instead of going back to the
// Memory.
func TestQueueIndirectTableReuse(t *testing.T) {
	tr, q := setup(t, virtiotest.Config{Features: virtio.FeatureVersion1 | virtio.FeatureIndirectDesc, Handler: echo}, 4)
	mem := tr.Memory()
	r, w := alloc(t, mem, 16), alloc(t, mem, 16)
	// tableAddr is the address of the indirect table in the ring.
	tableAddr := func() uint64 {
		desc := q.Addrs().Desc.Bytes
		for i := range q.Size() {
			if d := virtio.GetDesc(desc[i*virtio.DescSize:]); d.Flags&virtio.DescFlagIndirect != 0 {
				return d.Addr
			}
		}
		t.Fatal("no indirect descriptor in the ring")
		return 0
	}
	var first uint64
	for i := range 5 {
		if err := add(context.Background(), tr, q, []virtio.Buffer{r}, []virtio.Buffer{w}, i); err != nil {
			t.Fatal(err)
		}
		addr := tableAddr()
		if _, err := waitPop(t, q); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = addr
			// Had the table gone back to the Memory, this allocation
			// of the same size could take its place.
			x, err := mem.Alloc(virtio.DescTableBytes(2), virtio.DescAlign)
			if err != nil {
				t.Fatal(err)
			}
			defer mem.Free(x)
			if x.Addr == first {
				t.Fatalf("the indirect table at %#x went back to the Memory", first)
			}
		} else if addr != first {
			t.Fatalf("chain %d: indirect table at %#x, want the first chain's %#x again", i, addr, first)
		}
	}
}
