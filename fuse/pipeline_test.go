package fuse

import (
	"sync"
	"testing"
)

func TestSplitIO(t *testing.T) {
	tests := []struct {
		n, maxIO    int
		size, count int
	}{
		{100, 4096, 100, 1},
		{1 << 20, 1 << 20, 1 << 20, 1},
		{1 << 20, 124 * 4096, 86 * 4096, 3},  // a 1 MiB read in the guest
		{1 << 20, 252 * 4096, 128 * 4096, 2}, // and on the host
		{300 << 10, 32 * 4096, 25 * 4096, 3}, // pages split evenly
		{5 * 4096, 4096, 4096, 5},
		{5*4096 + 1, 4096, 4096, 6},
	}
	for _, tt := range tests {
		size, count := splitIO(tt.n, tt.maxIO)
		if size != tt.size || count != tt.count {
			t.Errorf("splitIO(%d, %d) = %d, %d; want %d, %d", tt.n, tt.maxIO, size, count, tt.size, tt.count)
		}
		if size > tt.maxIO || size*count < tt.n || size*(count-1) >= tt.n {
			t.Errorf("splitIO(%d, %d) = %d, %d: does not cover the transfer in chunks of at most %d", tt.n, tt.maxIO, size, count, tt.maxIO)
		}
	}
}

// TestPipeline checks that every chunk runs once, that at most ioInflight
// run at once, and that after a stop no chunk starts but those the other
// workers had already taken.
func TestPipeline(t *testing.T) {
	for _, stopAt := range []int{-1, 0, 3, 19} {
		var mu sync.Mutex
		ran := map[int]int{}
		running, most, late := 0, 0, 0
		stopped := false
		pipeline(20, func(i int) bool {
			mu.Lock()
			ran[i]++
			running++
			most = max(most, running)
			if stopped {
				late++
			}
			mu.Unlock()
			mu.Lock()
			running--
			if i == stopAt {
				stopped = true
			}
			mu.Unlock()
			return i != stopAt
		})
		if most > ioInflight {
			t.Errorf("stop %d: %d chunks at once, want at most %d", stopAt, most, ioInflight)
		}
		if late > ioInflight-1 {
			t.Errorf("stop %d: %d chunks started after the stop, want at most %d", stopAt, late, ioInflight-1)
		}
		for i := range 20 {
			switch {
			case ran[i] > 1:
				t.Errorf("stop %d: chunk %d ran %d times", stopAt, i, ran[i])
			case ran[i] == 0 && (stopAt < 0 || i <= stopAt):
				t.Errorf("stop %d: chunk %d did not run", stopAt, i)
			}
		}
	}
}
