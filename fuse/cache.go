package fuse

import (
	"context"
	"sync/atomic"

	"github.com/govirtiofs/govirtiofs/internal/memmove"
)

// pageCache is an inode's clean page cache: the file's contents as last
// read from (or written through to) the server, in 4 KiB pages. A page
// shorter than 4 KiB holds the end of the file; only one may exist (eof),
// and a page of length 0 at eof says the file ends at its start.
//
// gen is bumped by every change (write-through, invalidation, truncation)
// so that a READ sent before it does not fill the cache with data older
// than the change (the role of Linux's page locks and attr_version).
//
// All fields are guarded by the inode's mu.
type pageCache struct {
	pages map[int64][]byte
	eof   int64 // index of the partial page, or -1
	gen   uint64
}

func (c *pageCache) init() {
	c.pages = make(map[int64][]byte)
	c.eof = -1
}

// invalidateLocked drops every page (Linux invalidate_inode_pages2).
func (c *pageCache) invalidateLocked() {
	clear(c.pages)
	c.eof = -1
	c.gen++
}

// truncateLocked drops the pages from the one holding size on, and the
// end-of-file page (Linux truncate_pagecache).
func (c *pageCache) truncateLocked(size int64) {
	first := size / pageSize
	for idx := range c.pages {
		if idx >= first {
			delete(c.pages, idx)
		}
	}
	if c.eof >= 0 {
		delete(c.pages, c.eof)
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
	if c.eof >= 0 && end > c.eof*pageSize+int64(len(c.pages[c.eof])) {
		delete(c.pages, c.eof)
		c.eof = -1
	}
	if len(c.pages) == 0 {
		return // nothing cached: no page lookups (cache=none, a new file)
	}
	for pos := off; pos < end; {
		idx, po := pos/pageSize, int(pos%pageSize)
		n := min(int64(pageSize-po), end-pos)
		if p, ok := c.pages[idx]; ok && po+int(n) <= len(p) {
			memmove.Copy(p[po:], data[pos-off:pos-off+n])
		} else if ok {
			delete(c.pages, idx) // cannot happen: only the eof page is short
		}
		pos += n
	}
}

// fillLocked stores the reply to a READ of asked bytes at page idx, of
// which the server returned n (fewer means the file ends there). The pages
// are slices of buf, which the cache keeps: the caller must not reuse it
// (one READ buffer, no copy per page).
func (c *pageCache) fillLocked(idx int64, buf []byte, n, asked int) {
	for i := 0; i*pageSize <= n; i++ {
		start := i * pageSize
		if start == n && n == asked {
			break // a full reply says nothing about the page after it
		}
		end := min(start+pageSize, n)
		if c.pages == nil {
			c.pages = make(map[int64][]byte) // not made by newInode
		}
		c.pages[idx+int64(i)] = buf[start:end:end]
		if end-start < pageSize {
			if c.eof >= 0 && c.eof != idx+int64(i) {
				delete(c.pages, c.eof)
			}
			c.eof = idx + int64(i)
			break
		}
		if c.eof == idx+int64(i) {
			c.eof = -1
		}
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
		if p, ok := ino.cache.pages[idx]; ok {
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
				p, ok = ino.cache.pages[idx]
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
			if _, ok := ino.cache.pages[idx+int64(i)]; ok {
				npages = i
				break
			}
		}
		if ino.attrValidLocked() && ino.wb.size < 0 {
			// Do not ask far past the known end; a file that grew
			// since just takes another READ.
			if left := (int64(ino.attr.Size) - idx*pageSize + pageSize - 1) / pageSize; left >= 1 && int64(npages) > left {
				npages = max(int(left), min(want, npages))
			}
		}
		ino.mu.Unlock()
		if stream {
			f.ra.next.Store((idx + int64(npages)) * pageSize)
		}

		buf := make([]byte, npages*pageSize)
		fs.reads.Add(1)
		n, err := fs.conn.read(ctx, &f.creds, ino.nodeid, ReadIn{Fh: f.fh, Offset: uint64(idx * pageSize), Flags: uint32(f.flags)}, buf)
		if err != nil {
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
		if ino.cache.gen == gen {
			ino.cache.fillLocked(idx, buf, n, len(buf))
		}
		ino.mu.Unlock()
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
