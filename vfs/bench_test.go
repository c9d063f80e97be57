package vfs_test

import (
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs/vfs"
	"github.com/govirtiofs/govirtiofs/vfs/vfstest"
)

// BenchmarkWalkCached resolves a 5-component path whose dentries are all
// cached and valid: the cost of the walk itself plus one Getattr of the
// in-memory filesystem.
func BenchmarkWalkCached(b *testing.B) {
	e := newEnv(b, vfstest.Options{EntryValid: time.Hour}, vfs.Options{})
	build(b, e.fs, "a/", "a/b/", "a/b/c/", "a/b/c/d/", "a/b/c/d/e")
	const p = "a/b/c/d/e"
	if _, err := e.v.Stat(e.ctx, creds, p); err != nil {
		b.Fatal(err)
	}
	lookups := e.fs.Calls("Lookup")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.v.Stat(e.ctx, creds, p); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if got := e.fs.Calls("Lookup"); got != lookups {
		b.Fatalf("%d lookups during a cached walk", got-lookups)
	}
	e.checkDrained(b)
}

// BenchmarkWalkCachedParallel is BenchmarkWalkCached from GOMAXPROCS
// goroutines at once.
func BenchmarkWalkCachedParallel(b *testing.B) {
	e := newEnv(b, vfstest.Options{EntryValid: time.Hour}, vfs.Options{})
	build(b, e.fs, "a/", "a/b/", "a/b/c/", "a/b/c/d/", "a/b/c/d/e")
	const p = "a/b/c/d/e"
	if _, err := e.v.Stat(e.ctx, creds, p); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.v.Stat(e.ctx, creds, p); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	e.checkDrained(b)
}
