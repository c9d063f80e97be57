package driver_test

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs/driver"
	"github.com/govirtiofs/govirtiofs/internal/virtiofsdtest"
	"github.com/govirtiofs/govirtiofs/virtio/vhostuser"
)

// TestOnRoundTrip checks Options.OnRoundTrip against virtiofsd: one call
// per RoundTrip that got a reply (error replies included), with its
// opcode and a duration no longer than the whole RoundTrip, and none for a
// request that never went out.
func TestOnRoundTrip(t *testing.T) {
	vd := virtiofsdtest.Start(t, t.TempDir(), virtiofsdtest.Options{Cache: "none"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr, err := vhostuser.Dial(ctx, vd.Socket, vhostuser.Options{Tag: "hostshare"})
	if err != nil {
		t.Fatalf("vhostuser.Dial: %v", err)
	}
	type call struct {
		op uint32
		d  time.Duration
	}
	var mu sync.Mutex
	var calls []call
	d, err := driver.New(ctx, tr, driver.Options{OnRoundTrip: func(op uint32, dur time.Duration) {
		mu.Lock()
		calls = append(calls, call{op, dur})
		mu.Unlock()
	}})
	if err != nil {
		tr.Close()
		t.Fatalf("driver.New: %v", err)
	}
	defer d.Close()
	if _, err := fuseInit(ctx, d); err != nil {
		t.Fatalf("FUSE_INIT: %v", err)
	}
	const n = 20
	var longest time.Duration
	for range n {
		t0 := time.Now()
		if _, err := getattr(ctx, d, rootID); err != nil {
			t.Fatalf("GETATTR: %v", err)
		}
		longest = max(longest, time.Since(t0))
	}
	if _, err := roundTrip(ctx, d, opLookup, rootID, entryOutLen, []byte("missing\x00")); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("LOOKUP missing: %v, want ENOENT", err)
	}
	canceled, stop := context.WithCancel(ctx)
	stop()
	if _, err := getattr(canceled, d, rootID); err == nil {
		t.Fatal("GETATTR with a canceled context succeeded")
	}

	mu.Lock()
	defer mu.Unlock()
	want := []uint32{opInit}
	for range n {
		want = append(want, opGetattr)
	}
	want = append(want, opLookup)
	if len(calls) != len(want) {
		t.Fatalf("%d OnRoundTrip calls, want %d: %v", len(calls), len(want), calls)
	}
	for i, c := range calls {
		if c.op != want[i] {
			t.Errorf("call %d: opcode %d, want %d", i, c.op, want[i])
		}
		if c.d <= 0 {
			t.Errorf("call %d: round trip %v, want > 0", i, c.d)
		}
		if c.op == opGetattr && c.d > longest {
			t.Errorf("call %d: round trip %v longer than the longest whole RoundTrip %v", i, c.d, longest)
		}
	}
}
