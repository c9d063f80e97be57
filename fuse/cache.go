package fuse

import (
	"context"
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/govirtiofs/govirtiofs/internal/memmove"
)

// pageCache is an inode's clean page cache: the file's contents as last
// read from (or written through to) the server, in 4 KiB pages. A page
// shorter than 4 KiB holds the end of the file; only one may exist (eof),
// and a page of length 0 at eof says the file ends at its start.
//
// The pages are slices of the READ buffers that filled them, the chunks,
// kept oldest first: memory is counted, evicted and reused a chunk at a
// time (see pagePool). A page is in pages only while its chunk is in
// chunks, so a chunk given back to the pool is referenced by no page.
//
// gen is bumped by every change (write-through, invalidation, truncation)
// so that a READ sent before it does not fill the cache with data older
// than the change (the role of Linux's page locks and attr_version).
//
// All fields but ino, pool, referenced and the LRU links are guarded by
// the inode's mu.
type pageCache struct {
	pages  pageMap
	eof    int64 // index of the partial page, or -1
	gen    uint64
	chunks []chunk // the buffers the pages live in, oldest first
	// chunk0 is chunks' array while it holds one chunk, a small file's
	// (no allocation for it).
	chunk0 [1]chunk
	bytes  int64 // sum of the chunks' capacities

	ino  *inode    // immutable: the owner, whose mu guards the cache
	pool *pagePool // immutable: the filesystem's budget; nil in unit tests
	// referenced is set by a read that hits the cache and cleared by the
	// pool's LRU scan, which gives the inode a second chance (Linux
	// folio_mark_accessed and the referenced bit).
	referenced atomic.Bool
	// prev and next link the pool's LRU list, guarded by pool.mu; listed
	// says the cache is on it.
	prev, next *pageCache
	listed     bool
}

// chunk is one READ buffer whose pages the cache holds: buf's full
// capacity is counted, from page idx on.
type chunk struct {
	buf []byte
	idx int64
}

func (c *pageCache) init() {
	c.eof = -1
}

// invalidateLocked drops every page (Linux invalidate_inode_pages2).
func (c *pageCache) invalidateLocked() {
	c.pages.clear()
	c.eof = -1
	c.gen++
	c.releaseChunksLocked()
}

// releaseChunksLocked gives every chunk back to the pool, once no page
// refers to them.
func (c *pageCache) releaseChunksLocked() {
	if len(c.chunks) == 0 {
		return
	}
	if c.pool != nil {
		c.pool.release(c, c.chunks, c.bytes, true)
	}
	clear(c.chunks)
	c.chunks = c.chunks[:0]
	c.bytes = 0
}

// evictOldestLocked drops the pages of the oldest chunk and gives it back
// to the pool; it returns false if the cache holds none (Linux reclaim of
// clean pages: they are re-read on demand). The generation stays: the
// pages that remain are as valid as before.
func (c *pageCache) evictOldestLocked() bool {
	if len(c.chunks) == 0 {
		return false
	}
	ch := c.chunks[0]
	c.chunks[0] = chunk{}
	c.chunks = c.chunks[1:]
	if len(c.chunks) == 0 {
		c.chunks = nil // let the array go; the next fill starts a new one
	}
	for i := 0; i*pageSize < cap(ch.buf); i++ {
		idx := ch.idx + int64(i)
		if p, ok := c.pages.get(idx); ok && unsafe.SliceData(p) == unsafe.SliceData(ch.buf[i*pageSize:]) {
			c.pages.del(idx)
			if c.eof == idx {
				c.eof = -1
			}
		}
	}
	c.bytes -= int64(cap(ch.buf))
	if c.pool != nil {
		c.pool.release(c, []chunk{ch}, int64(cap(ch.buf)), len(c.chunks) == 0)
	}
	return true
}

// truncateLocked drops the pages from the one holding size on, and the
// end-of-file page (Linux truncate_pagecache).
func (c *pageCache) truncateLocked(size int64) {
	first := size / pageSize
	if first == 0 {
		c.invalidateLocked()
		return
	}
	c.pages.delFrom(first)
	if c.eof >= 0 {
		c.pages.del(c.eof)
		c.eof = -1
	}
	c.gen++
}

// writeLocked copies data written at off into the cached pages it covers
// (write-through). A write past the cached end of the file drops the
// end-of-file page, which would otherwise still say the file ends there.
func (c *pageCache) writeLocked(off int64, data []byte) {
	c.gen++
	if len(data) == 0 {
		return
	}
	end := off + int64(len(data))
	if p, _ := c.pages.get(c.eof); c.eof >= 0 && end > c.eof*pageSize+int64(len(p)) {
		c.pages.del(c.eof)
		c.eof = -1
	}
	if c.pages.len() == 0 {
		return // nothing cached: no page lookups (cache=none, a new file)
	}
	for pos := off; pos < end; {
		idx, po := pos/pageSize, int(pos%pageSize)
		n := min(int64(pageSize-po), end-pos)
		if p, ok := c.pages.get(idx); ok && po+int(n) <= len(p) {
			memmove.Copy(p[po:], data[pos-off:pos-off+n])
		} else if ok {
			c.pages.del(idx) // cannot happen: only the eof page is short
		}
		pos += n
	}
}

// fillLocked stores the reply to a READ of asked bytes at page idx, of
// which the server returned n (fewer means the file ends there). The pages
// are slices of buf, which the cache keeps: the caller must not reuse it
// (one READ buffer, no copy per page).
func (c *pageCache) fillLocked(idx int64, buf []byte, n, asked int) {
	if cap(c.chunks) == 0 {
		c.chunks = c.chunk0[:0]
	}
	c.chunks = append(c.chunks, chunk{buf: buf[:cap(buf)], idx: idx})
	c.bytes += int64(cap(buf))
	if c.pool != nil {
		c.pool.added(c, int64(cap(buf)))
	}
	for i := 0; i*pageSize <= n; i++ {
		start := i * pageSize
		if start == n && n == asked {
			break // a full reply says nothing about the page after it
		}
		end := min(start+pageSize, n)
		c.pages.set(idx+int64(i), buf[start:end:end])
		if end-start < pageSize {
			if c.eof >= 0 && c.eof != idx+int64(i) {
				c.pages.del(c.eof)
			}
			c.eof = idx + int64(i)
			break
		}
		if c.eof == idx+int64(i) {
			c.eof = -1
		}
	}
}

// DefaultPageCacheSize is the clean page cache of a filesystem when
// FSOptions.PageCacheSize is 0: an eighth of the machine's memory, between
// 32 MiB and 1 GiB (128 MiB if the memory is not known). An eighth leaves
// room for a few filesystems, their DMA memory, the garbage collector's
// headroom over the live heap and the program: in a 512 MiB guest 64 MiB,
// in a 2 GiB guest 256 MiB, which holds a 64 MiB file read twice. (Linux
// lets its page cache use all free memory, but reclaims it under
// pressure, which a Go heap cannot.)
func DefaultPageCacheSize() int64 {
	m := totalMemory()
	if m <= 0 {
		return 128 << 20
	}
	return min(max(m/8, 32<<20), 1<<30)
}

// pagePool is a filesystem's budget for clean cached pages
// (FSOptions.PageCacheSize) and its free list of READ buffers. Linux
// bounds its page cache by reclaim under memory pressure; a Go program has
// no such signal, so the cache is bounded by a size instead. Before a READ
// for the cache, get evicts chunks until the new one fits: the oldest
// chunk of the least recently used inode first, on a list ordered by
// fills with a second chance for an inode whose pages were read since
// (Linux's referenced bit). An inode alone over the budget loses its own
// oldest chunks. Dirty pages (writeback.go) are kept apart and never
// counted nor evicted.
//
// Evicted and invalidated chunks go to the free list, up to freeMax bytes,
// and the next READ of the same size class reuses one: a streaming read
// past the budget then takes no fresh memory (on Linux a cold read
// faulted in a new page, and the garbage collector scanned the heap of
// cached pages, for every page).
//
// Single pages, the READ of a small file or a random read, are carved
// from slabs of slabPages pages (one allocation instead of one per page:
// a growing cache took a fresh span from the Go heap every second page,
// which under TCG made a cold open, read and close of a 4 KiB file 25%
// slower in the client). A slab's memory lives while any of its pages
// does, so single pages are never left to the garbage collector: they all
// go back to the free list, whatever freeMax says, and there are never
// more of them than the cache held at once plus the READs in flight.
// Memory is thus bounded by twice the budget (cached chunks, and the
// single pages once cached that are free now) + freeMax + the READs in
// flight.
type pagePool struct {
	budget  int64 // immutable
	freeMax int64 // immutable
	// bytes is the capacity of the chunks of every inode's cache.
	bytes atomic.Int64

	// mu guards the LRU list and the free list. Lock order: inode.mu,
	// then mu; mu is a leaf.
	mu sync.Mutex
	// head is the most recently filled cache, tail the least; n counts
	// them.
	head, tail *pageCache
	n          int
	// free holds buffers of pageSize<<class bytes by class; freeBytes
	// is their sum, single pages (class 0) left out.
	free      [maxPageClass + 1][][]byte
	freeBytes int64
	// slab is what is left of the last slab, carved a page at a time.
	slab []byte
}

// slabPages is how many single pages one allocation makes.
const slabPages = 16

// maxPageClass is the largest size class of a READ buffer: 2^16 pages,
// far above any max_pages (at most 256).
const maxPageClass = 16

// defaultFreeMax bounds the free list: a few of the largest READs.
const defaultFreeMax = 4 << 20

func (p *pagePool) init(budget int64) {
	p.budget = budget
	p.freeMax = min(budget, defaultFreeMax)
}

// pageClass is the size class of a buffer of npages pages: the power of
// two at or above it.
func pageClass(npages int) int {
	return bits.Len(uint(npages - 1))
}

// get returns a buffer of npages pages for a READ into the cache, after
// evicting pages so that its capacity fits in the budget: from the free
// list when one of its class is there, else new (a single page from a
// slab). The buffer belongs to the caller until fillLocked keeps it or put
// takes it back.
//
// Preconditions: no inode's mu is held.
func (p *pagePool) get(npages int) []byte {
	class := min(pageClass(npages), maxPageClass)
	size := int64(pageSize) << class
	p.reclaim(size)
	p.mu.Lock()
	if l := p.free[class]; len(l) > 0 {
		b := l[len(l)-1]
		l[len(l)-1] = nil
		p.free[class] = l[:len(l)-1]
		if class > 0 {
			p.freeBytes -= size
		}
		p.mu.Unlock()
		return b[:npages*pageSize]
	}
	if class == 0 {
		if len(p.slab) == 0 {
			p.slab = make([]byte, slabPages*pageSize)
		}
		b := p.slab[:pageSize:pageSize]
		p.slab = p.slab[pageSize:]
		p.mu.Unlock()
		return b
	}
	p.mu.Unlock()
	return make([]byte, npages*pageSize, size)
}

// put takes back a buffer from get that the cache did not keep. The
// caller must not use it afterwards, nor pass one a transport may still
// write into (a READ that failed).
func (p *pagePool) put(b []byte) {
	p.mu.Lock()
	p.putLocked(b)
	p.mu.Unlock()
}

// putLocked adds b to the free list if b is of a class and, unless it is
// a single page, the list has room.
//
// Preconditions: p.mu is held.
func (p *pagePool) putLocked(b []byte) {
	c := cap(b)
	class := pageClass(c / pageSize)
	if c%pageSize != 0 || c != pageSize<<class || class > maxPageClass || class > 0 && p.freeBytes+int64(c) > p.freeMax {
		return // left to the garbage collector
	}
	p.free[class] = append(p.free[class], b[:0])
	if class > 0 {
		p.freeBytes += int64(c)
	}
}

// added counts n bytes of chunks that c took and makes c the most
// recently filled.
//
// Preconditions: c.ino.mu is held.
func (p *pagePool) added(c *pageCache, n int64) {
	p.bytes.Add(n)
	p.mu.Lock()
	if p.head != c {
		p.unlinkLocked(c)
		p.pushFrontLocked(c)
	}
	p.mu.Unlock()
}

// pushFrontLocked puts c, which is not on the LRU list, at its head.
//
// Preconditions: p.mu is held.
func (p *pagePool) pushFrontLocked(c *pageCache) {
	c.next = p.head
	if p.head != nil {
		p.head.prev = c
	}
	p.head = c
	if p.tail == nil {
		p.tail = c
	}
	c.listed = true
	p.n++
}

// release takes back chunks of c, which no page refers to any more,
// n bytes in all, and takes c off the LRU list if it has none left.
//
// Preconditions: c.ino.mu is held.
func (p *pagePool) release(c *pageCache, chunks []chunk, n int64, empty bool) {
	p.bytes.Add(-n)
	p.mu.Lock()
	for _, ch := range chunks {
		p.putLocked(ch.buf)
	}
	if empty {
		p.unlinkLocked(c)
	}
	p.mu.Unlock()
}

// unlinkLocked takes c off the LRU list if it is on it.
//
// Preconditions: p.mu is held.
func (p *pagePool) unlinkLocked(c *pageCache) {
	if !c.listed {
		return
	}
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		p.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		p.tail = c.prev
	}
	c.prev, c.next, c.listed = nil, nil, false
	p.n--
}

// victim returns the least recently filled cache whose pages were not
// read since the last scan, moving read ones to the head with their mark
// cleared (second chance); nil if no cache holds pages.
func (p *pagePool) victim() *pageCache {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; p.tail != nil; i++ {
		c := p.tail
		if i >= p.n || !c.referenced.Swap(false) || c == p.head {
			return c
		}
		p.unlinkLocked(c)
		p.pushFrontLocked(c)
	}
	return nil
}

// reclaim evicts chunks until need more bytes fit in the budget, or no
// cache holds any.
//
// Preconditions: no inode's mu is held.
func (p *pagePool) reclaim(need int64) {
	for misses := 0; p.bytes.Load()+need > p.budget && misses < 8; {
		c := p.victim()
		if c == nil {
			return
		}
		c.ino.mu.Lock()
		if !c.evictOldestLocked() {
			misses++ // emptied since victim chose it
		}
		c.ino.mu.Unlock()
	}
}

// readaheadPages is the initial read-ahead window of a sequential stream
// in pages: max_readahead, bounded by max_pages.
func (fs *Filesystem) readaheadPages() int {
	ra := int(fs.params.MaxReadahead)
	if ra <= 0 {
		ra = 128 << 10
	}
	return max(1, min(ra/pageSize, fs.params.MaxPages))
}

// streamMin is the smallest read that CacheAuto reads past the cache.
const streamMin = 128 << 10

// readahead is the read-ahead state of one open file (Linux struct
// file_ra_state), which tells a sequential reader from a random one as
// Linux ondemand_readahead does:
//
//   - a miss where the previous read-ahead window ended continues the
//     stream: the window doubles, up to max_pages;
//   - a miss at the start of the file, or in the page where the caller's
//     previous read ended or the one after it, starts a stream with the
//     initial window (readaheadPages);
//   - any other miss is a random read: it fetches only the pages asked
//     for and leaves the window alone.
//
// Races between concurrent readers of one file only cost a window size,
// so the fields are plain atomics.
type readahead struct {
	next  atomic.Int64 // offset just past the last read-ahead window
	pages atomic.Int32 // the last window in pages; 0 before the first
	// prev is 1 + the offset just past the caller's last read through
	// the cache, hit or miss; 0 before the first (Linux prev_pos).
	prev atomic.Int64
}

// window returns how many pages a READ for the cache at page idx may
// fetch for a read that wants pages from idx on (at most max_pages), and
// whether the READ is a read-ahead window, whose end the caller records
// in next.
func (ra *readahead) window(fs *Filesystem, idx int64, want int) (pages int, stream bool) {
	maxPages := fs.params.MaxPages
	want = min(want, maxPages)
	w := int(ra.pages.Load())
	prev := ra.prev.Load()
	prevIdx := (prev - 1) / pageSize // the page holding the previous read's end
	switch {
	case w > 0 && ra.next.Load() == idx*pageSize:
		w = min(2*w, maxPages)
	case idx == 0 || prev > 0 && (idx == prevIdx || idx == prevIdx+1):
		w = fs.readaheadPages()
	default:
		return want, false // random: just what was asked
	}
	ra.pages.Store(int32(w))
	return max(w, want), true
}

// done records that the caller's read ended at end.
func (ra *readahead) done(end int64) {
	if ra.prev.Load() != end+1 {
		ra.prev.Store(end + 1)
	}
}

// readCached reads through the page cache (Linux filemap_read with
// fuse_readahead): cached pages are copied; a miss sends one READ for the
// missing page and the following uncached ones, as many as the caller
// wants or, for a sequential reader, the read-ahead window allows (at
// most max_pages; see readahead), caches the reply buffer itself as pages
// and copies from it; a random miss reads only the pages asked for. In
// CacheAuto a miss at a page boundary with at least streamMin bytes
// wanted reads straight into dst without caching: the next open drops the
// data anyway, and a streaming reader does not come back to it. Dirty
// data (writeback) is laid over the result.
func (ino *inode) readCached(ctx context.Context, f *fileHandle, dst []byte, off int64) (int, error) {
	fs := ino.fs
	var rctx context.Context // ctx with f's credentials, made on the first direct read
	done := 0
	for done < len(dst) {
		pos := off + int64(done)
		idx, po := pos/pageSize, int(pos%pageSize)
		ino.mu.Lock()
		if p, ok := ino.cache.pages.get(idx); ok {
			if !ino.cache.referenced.Load() {
				ino.cache.referenced.Store(true)
			}
			// Copy as many consecutive cached pages as possible under one
			// lock.
			end := false
			for ok {
				n := 0
				if po < len(p) {
					n = memmove.Copy(dst[done:], p[po:])
				}
				done += n
				if len(p) < pageSize && po+n >= len(p) {
					end = true // end of file
					break
				}
				if done == len(dst) {
					break
				}
				idx++
				po = 0
				p, ok = ino.cache.pages.get(idx)
			}
			ino.mu.Unlock()
			if end {
				break
			}
			continue
		}
		if fs.opts.Cache == CacheAuto && po == 0 && len(dst)-done >= streamMin {
			// A large read in CacheAuto, whose data the next open
			// drops anyway: straight into dst, not cached, which saves
			// a buffer and a copy of every byte (the cost of a large
			// read under emulation).
			ino.mu.Unlock()
			if rctx == nil {
				rctx = f.ctx(ctx)
			}
			chunk := dst[done : done+(len(dst)-done)&^(pageSize-1)]
			n, err := f.readDirect(rctx, chunk, pos)
			if err != nil {
				if done > 0 {
					break
				}
				return 0, err
			}
			done += n
			if n < len(chunk) {
				break // end of file
			}
			continue
		}
		gen := ino.cache.gen
		want := (po + len(dst) - done + pageSize - 1) / pageSize
		npages, stream := f.ra.window(fs, idx, want)
		for i := 1; i < npages; i++ {
			if _, ok := ino.cache.pages.get(idx + int64(i)); ok {
				npages = i
				break
			}
		}
		if ino.attrValidLocked() && ino.wb.size < 0 {
			// While the attributes are valid their size is the end
			// of the file, as i_size is for Linux's filemap_read: a
			// read from there on ends without a READ, and a READ asks
			// for nothing past it (a 4 KiB file takes one page, and
			// the next read returns EOF at once).
			size := int64(ino.attr.Size)
			if pos >= size {
				ino.mu.Unlock()
				break
			}
			if left := (size - idx*pageSize + pageSize - 1) / pageSize; int64(npages) > left {
				npages = int(left)
			}
		}
		ino.mu.Unlock()
		if stream {
			f.ra.next.Store((idx + int64(npages)) * pageSize)
		}

		buf := fs.pages.get(npages)
		fs.reads.Add(1)
		n, err := fs.conn.read(ctx, &f.creds, ino.nodeid, ReadIn{Fh: f.fh, Offset: uint64(idx * pageSize), Flags: uint32(f.flags)}, buf)
		if err != nil {
			// buf is not reused: the transport may still write into it.
			if done > 0 {
				break
			}
			return 0, err
		}
		var c int
		if n > po {
			c = memmove.Copy(dst[done:], buf[po:n])
		}
		ino.mu.Lock()
		kept := ino.cache.gen == gen
		if kept {
			ino.cache.fillLocked(idx, buf, n, len(buf))
		}
		ino.mu.Unlock()
		if !kept {
			fs.pages.put(buf)
		}
		if n <= po {
			break // end of file
		}
		done += c
		if n < len(buf) && po+c >= n {
			break // end of file
		}
	}
	n := ino.overlayDirty(dst, off, done)
	f.ra.done(off + int64(n))
	return n, nil
}
