package govirtiofs

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs/internal/virtiofsdtest"
)

// TestOnRoundTrip checks that Options.OnRoundTrip sees each request of an
// fstat in cache none: exactly one GETATTR per File.Stat.
func TestOnRoundTrip(t *testing.T) {
	const opGetattr = 3
	var mu sync.Mutex
	var ops []uint32
	var durs []time.Duration
	opts := Options{Cache: CacheNone, OnRoundTrip: func(op uint32, d time.Duration) {
		mu.Lock()
		ops = append(ops, op)
		durs = append(durs, d)
		mu.Unlock()
	}}
	f, dir := dialTest(t, opts, virtiofsdtest.Options{Cache: "none"})
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	file, err := f.Open("a")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	mu.Lock()
	before := len(ops)
	mu.Unlock()
	const n = 10
	for range n {
		fi, err := file.Stat()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != 3 {
			t.Fatalf("size %d, want 3", fi.Size())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if got := len(ops) - before; got != n {
		t.Fatalf("%d round trips for %d fstats, want %d: %v", got, n, n, ops[before:])
	}
	for i := before; i < len(ops); i++ {
		if ops[i] != opGetattr || durs[i] <= 0 {
			t.Errorf("round trip %d: opcode %d, %v; want GETATTR (3), > 0", i, ops[i], durs[i])
		}
	}
}
