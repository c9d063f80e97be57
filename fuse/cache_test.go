package fuse

import (
	"bytes"
	"testing"
)

// cacheContents reads what the page cache holds from offset 0 as a reader
// would, stopping at the first missing page or at the end-of-file page.
func cacheContents(c *pageCache) (data []byte, eofKnown bool) {
	for idx := int64(0); ; idx++ {
		p, ok := c.pages.get(idx)
		if !ok {
			return data, false
		}
		data = append(data, p...)
		if len(p) < pageSize {
			return data, true
		}
	}
}

func TestPageCache(t *testing.T) {
	file := bytes.Repeat([]byte("0123456789"), 1000) // 10,000 bytes: 2 pages and 1808
	tests := []struct {
		name    string
		ops     func(c *pageCache)
		want    []byte
		wantEOF bool
	}{
		{"short fill knows the end", func(c *pageCache) {
			c.fillLocked(0, bytes.Clone(file), len(file), 3*pageSize)
		}, file, true},
		{"full fill does not", func(c *pageCache) {
			c.fillLocked(0, bytes.Clone(file), 2*pageSize, 2*pageSize)
		}, file[:2*pageSize], false},
		{"end at a page boundary is an empty page", func(c *pageCache) {
			c.fillLocked(0, bytes.Clone(file), 2*pageSize, 3*pageSize)
		}, file[:2*pageSize], true},
		{"write-through updates pages", func(c *pageCache) {
			c.fillLocked(0, bytes.Clone(file), len(file), 3*pageSize)
			c.writeLocked(4090, []byte("ABCDEFGHIJ"))
		}, func() []byte {
			b := bytes.Clone(file)
			copy(b[4090:], "ABCDEFGHIJ")
			return b
		}(), true},
		{"write past the end drops the end page", func(c *pageCache) {
			c.fillLocked(0, bytes.Clone(file), len(file), 3*pageSize)
			c.writeLocked(int64(len(file))+5, []byte("X"))
		}, file[:2*pageSize], false},
		{"truncate drops from the size on", func(c *pageCache) {
			c.fillLocked(0, bytes.Clone(file), len(file), 3*pageSize)
			c.truncateLocked(5000)
		}, file[:pageSize], false},
		{"invalidate drops all", func(c *pageCache) {
			c.fillLocked(0, bytes.Clone(file), len(file), 3*pageSize)
			c.invalidateLocked()
		}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c pageCache
			c.init()
			tt.ops(&c)
			got, eof := cacheContents(&c)
			if !bytes.Equal(got, tt.want) || eof != tt.wantEOF {
				t.Errorf("cache holds %d bytes (end known %v), want %d (%v)", len(got), eof, len(tt.want), tt.wantEOF)
			}
			short := 0
			for _, p := range c.pages.all() {
				if len(p) < pageSize {
					short++
				}
			}
			if short > 1 {
				t.Errorf("%d short pages, at most one may hold the end", short)
			}
		})
	}
}

func TestOverlayDirty(t *testing.T) {
	fs := &Filesystem{writeback: true}
	ino := &inode{fs: fs, ftype: ModeReg}
	ino.cache.init()
	ino.wb.init()
	ino.attr.Size = 10
	ino.writers = []*fileHandle{{}}
	// Writes at 8000 (a hole after the server's 10 bytes) and at 2.
	ino.wb.dirty[1] = &dirtyPage{lo: 8000 - pageSize, hi: 8000 - pageSize + 3}
	copy(ino.wb.dirty[1].data[8000-pageSize:], "xyz")
	ino.wb.dirty[0] = &dirtyPage{lo: 2, hi: 4}
	copy(ino.wb.dirty[0].data[2:], "AB")
	ino.wb.size = 8003

	dst := make([]byte, 9000)
	copy(dst, "0123456789")
	n := ino.overlayDirty(dst, 0, 10)
	if n != 8003 {
		t.Fatalf("overlay extended the read to %d bytes, want the local size 8003", n)
	}
	if string(dst[:10]) != "01AB456789" || string(dst[8000:8003]) != "xyz" {
		t.Errorf("overlay = %q ... %q", dst[:10], dst[8000:8003])
	}
	for i := 10; i < 8000; i++ {
		if dst[i] != 0 {
			t.Fatalf("byte %d of the hole = %d, want 0", i, dst[i])
		}
	}
	// A read starting inside the second page.
	dst = make([]byte, 100)
	if n := ino.overlayDirty(dst, 7990, 0); n != 13 || string(dst[10:13]) != "xyz" {
		t.Errorf("overlay at 7990 = %d %q", n, dst[:n])
	}
}

// TestPagePool fills the caches of three inodes through a pool of eight
// pages: eviction takes the least recently filled inode's oldest chunk,
// spares an inode read since (second chance), bounds one inode alone, and
// hands the evicted buffers to the next READ.
func TestPagePool(t *testing.T) {
	var p pagePool
	p.init(8 * pageSize)
	inos := make([]*inode, 3)
	for i := range inos {
		inos[i] = &inode{}
		inos[i].cache.init()
		inos[i].cache.ino, inos[i].cache.pool = inos[i], &p
	}
	fill := func(ino *inode, idx int64, npages int) []byte {
		buf := p.get(npages)
		for i := range buf {
			buf[i] = byte(idx) + byte(i/pageSize)
		}
		ino.mu.Lock()
		ino.cache.fillLocked(idx, buf, len(buf), len(buf))
		ino.mu.Unlock()
		return buf
	}
	cached := func(ino *inode) int { return ino.cache.pages.len() }
	a := fill(inos[0], 0, 4)
	fill(inos[1], 0, 4)
	if got := p.bytes.Load(); got != 8*pageSize {
		t.Fatalf("bytes = %d, want %d", got, 8*pageSize)
	}
	c := fill(inos[2], 0, 4)
	if cached(inos[0]) != 0 || cached(inos[1]) != 4 || cached(inos[2]) != 4 {
		t.Errorf("after a third fill the inodes hold %d, %d, %d pages; want 0, 4, 4", cached(inos[0]), cached(inos[1]), cached(inos[2]))
	}
	if &c[0] != &a[0] {
		t.Errorf("the third READ's buffer is not the evicted one")
	}
	if inos[0].cache.listed || p.n != 2 {
		t.Errorf("an empty cache is still on the LRU list (%d listed)", p.n)
	}
	// inos[1] is the oldest but was read since: inos[2] goes instead.
	inos[1].cache.referenced.Store(true)
	fill(inos[0], 0, 4)
	if cached(inos[1]) != 4 || cached(inos[2]) != 0 {
		t.Errorf("second chance: inodes 1 and 2 hold %d and %d pages; want 4 and 0", cached(inos[1]), cached(inos[2]))
	}
	// One inode streaming alone past the budget keeps its newest pages.
	for idx := int64(4); idx < 40; idx += 4 {
		fill(inos[1], idx, 4)
		if got := p.bytes.Load(); got > 8*pageSize {
			t.Fatalf("bytes = %d, over the budget of %d", got, 8*pageSize)
		}
	}
	if cached(inos[0]) != 0 || cached(inos[1]) != 8 {
		t.Errorf("streaming: inodes 0 and 1 hold %d and %d pages; want 0 and 8", cached(inos[0]), cached(inos[1]))
	}
	for idx := int64(32); idx < 40; idx++ {
		if p, _ := inos[1].cache.pages.get(idx); len(p) != pageSize || p[0] != byte(idx-idx%4)+byte(idx%4) {
			t.Errorf("page %d: %d bytes, first %v", idx, len(p), p[:min(1, len(p))])
		}
	}
	// Invalidation gives everything back: the free list is bounded.
	inos[1].mu.Lock()
	inos[1].cache.invalidateLocked()
	inos[1].mu.Unlock()
	if p.bytes.Load() != 0 || p.n != 0 || p.freeBytes > p.freeMax {
		t.Errorf("after invalidation: bytes %d, %d listed, %d free (max %d)", p.bytes.Load(), p.n, p.freeBytes, p.freeMax)
	}
}

// TestPagePoolSinglePages checks single pages: carved from slabs, each its
// own page (a write to one leaves its neighbours alone, and its capacity
// ends at the page), and all kept on the free list when evicted, past
// freeMax, so that no slab is held alive by pages nobody can reuse.
func TestPagePoolSinglePages(t *testing.T) {
	var p pagePool
	const n = 2*slabPages + 3
	p.init(n * pageSize)
	p.freeMax = pageSize // far below what the invalidation below frees
	ino := &inode{}
	ino.cache.init()
	ino.cache.ino, ino.cache.pool = ino, &p
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = p.get(1)
		if len(bufs[i]) != pageSize || cap(bufs[i]) != pageSize {
			t.Fatalf("page %d: len %d cap %d, want %d", i, len(bufs[i]), cap(bufs[i]), pageSize)
		}
		for j := range bufs[i] {
			bufs[i][j] = byte(i)
		}
	}
	for i, b := range bufs {
		if b[0] != byte(i) || b[pageSize-1] != byte(i) {
			t.Fatalf("page %d was overwritten by another", i)
		}
	}
	ino.mu.Lock()
	for i, b := range bufs {
		ino.cache.fillLocked(int64(2*i), b, pageSize, pageSize) // apart: no page follows another
	}
	ino.cache.invalidateLocked()
	ino.mu.Unlock()
	if len(p.free[0]) != n || p.freeBytes != 0 {
		t.Fatalf("after invalidation %d single pages free (freeBytes %d), want all %d (0)", len(p.free[0]), p.freeBytes, n)
	}
	// The next gets reuse them before carving a new slab.
	seen := make(map[*byte]bool, n)
	for _, b := range bufs {
		seen[&b[0]] = true
	}
	for i := range n {
		if b := p.get(1); !seen[&b[0]] {
			t.Fatalf("get %d after invalidation returned a new page, not a freed one", i)
		}
	}
	if b := p.get(1); seen[&b[0]] {
		t.Fatal("a freed page was handed out twice")
	}
}
