package fuse

import (
	"context"
	"slices"
	"syscall"

	"github.com/govirtiofs/govirtiofs/internal/memmove"
)

// dirtyPage is the written but not yet written-back part [lo, hi) of one
// page. seq changes with every write into it, so that a writeback removes
// the page only if nothing was written into it while the WRITE was in
// flight.
type dirtyPage struct {
	data   [pageSize]byte
	lo, hi int
	seq    uint64
}

// writebackState is an inode's dirty data under FUSE_WRITEBACK_CACHE
// (Linux keeps it in dirty page-cache pages; here it is kept apart from
// the clean pages so that no read-modify-write is ever needed). While any
// data is dirty the client owns the file size: size is the local size,
// or -1 when the server's attributes are authoritative.
//
// All fields are guarded by the inode's mu.
type writebackState struct {
	dirty map[int64]*dirtyPage
	bytes int64 // sum of hi-lo over dirty
	size  int64
	seq   uint64
	// err is a writeback error not yet reported, returned by the next
	// Flush or Sync (Linux mapping_set_error / filemap_check_errors).
	err error
}

func (w *writebackState) init() {
	w.dirty = make(map[int64]*dirtyPage)
	w.size = -1
}

// truncateLocked drops dirty data from size on.
//
// Preconditions: ino.mu is held.
func (w *writebackState) truncateLocked(ino *inode, size int64) {
	if len(w.dirty) == 0 {
		w.size = -1
		return
	}
	for idx, dp := range w.dirty {
		start := idx * pageSize
		switch {
		case start >= size:
			ino.fs.dirtyBytes.Add(-int64(dp.hi - dp.lo))
			w.bytes -= int64(dp.hi - dp.lo)
			delete(w.dirty, idx)
		case start+int64(dp.hi) > size:
			hi := int(size - start)
			if hi <= dp.lo {
				ino.fs.dirtyBytes.Add(-int64(dp.hi - dp.lo))
				w.bytes -= int64(dp.hi - dp.lo)
				delete(w.dirty, idx)
			} else {
				ino.fs.dirtyBytes.Add(-int64(dp.hi - hi))
				w.bytes -= int64(dp.hi - hi)
				dp.hi = hi
				w.seq++
				dp.seq = w.seq
			}
		}
	}
	w.size = size
	if len(w.dirty) == 0 {
		w.size = -1
	}
}

// overlayDirty lays the dirty data over dst, which holds n bytes read at
// off from the clean cache or the server, and extends n up to the local
// size (zeros where nothing was written: a hole).
func (ino *inode) overlayDirty(dst []byte, off int64, n int) int {
	ino.mu.Lock()
	defer ino.mu.Unlock()
	w := &ino.wb
	if w.size < 0 && len(w.dirty) == 0 {
		return n
	}
	if w.size >= 0 {
		if end := min(off+int64(len(dst)), w.size); end > off+int64(n) {
			clear(dst[n : end-off])
			n = int(end - off)
		} else if end < off+int64(n) {
			n = max(0, int(end-off))
		}
	}
	end := off + int64(n)
	for pos := off - off%pageSize; pos < end; pos += pageSize {
		dp := w.dirty[pos/pageSize]
		if dp == nil {
			continue
		}
		lo, hi := pos+int64(dp.lo), pos+int64(dp.hi)
		lo, hi = max(lo, off), min(hi, end)
		if lo < hi {
			memmove.Copy(dst[lo-off:hi-off], dp.data[lo-pos:hi-pos])
		}
	}
	return n
}

// bufferWrite records src written at off as dirty pages (Linux
// fuse_perform_write with writeback_cache: generic_perform_write into the
// page cache). A write into a page that has a disjoint dirty range is
// preceded by a writeback of the inode, since one page keeps one range.
func (ino *inode) bufferWrite(ctx context.Context, src []byte, off int64) error {
	fs := ino.fs
	for done := 0; done < len(src); {
		pos := off + int64(done)
		idx, po := pos/pageSize, int(pos%pageSize)
		n := min(pageSize-po, len(src)-done)
		ino.mu.Lock()
		w := &ino.wb
		dp := w.dirty[idx]
		if dp != nil && (po > dp.hi || po+n < dp.lo) {
			ino.mu.Unlock()
			if err := ino.flushDirty(ctx); err != nil {
				return err
			}
			continue
		}
		if w.size < 0 {
			w.size = int64(ino.attr.Size)
		}
		added := n
		if dp == nil {
			dp = &dirtyPage{lo: po, hi: po + n}
			w.dirty[idx] = dp
		} else {
			lo, hi := min(dp.lo, po), max(dp.hi, po+n)
			added = (hi - lo) - (dp.hi - dp.lo)
			dp.lo, dp.hi = lo, hi
		}
		memmove.Copy(dp.data[po:], src[done:done+n])
		w.seq++
		dp.seq = w.seq
		w.bytes += int64(added)
		w.size = max(w.size, pos+int64(n))
		ino.mu.Unlock()
		fs.dirtyBytes.Add(int64(added))
		done += n
	}
	fs.dirtyMu.Lock()
	fs.dirty[ino] = struct{}{}
	fs.dirtyMu.Unlock()
	return nil
}

// run is a stretch of contiguous dirty data: one or more WRITEs.
type run struct {
	off   int64
	data  []byte
	pages []int64  // the dirty pages it covers
	seqs  []uint64 // their seq when copied
}

// flushDirty writes back the inode's dirty pages in WRITEs of at most
// max_write bytes through its first writable handle (Linux
// fuse_writepages), moves the written data into the clean cache, and
// returns the first error, also one left from an earlier writeback.
func (ino *inode) flushDirty(ctx context.Context) error {
	fs := ino.fs
	ino.flushMu.Lock()
	defer ino.flushMu.Unlock()
	ino.mu.Lock()
	w := &ino.wb
	if len(w.dirty) == 0 {
		err := w.err
		w.err = nil
		if w.size >= 0 {
			w.size = -1
		}
		ino.mu.Unlock()
		fs.clean(ino)
		return err
	}
	if len(ino.writers) == 0 {
		// Only possible after a failed writeback whose files are gone.
		n := w.bytes
		clear(w.dirty)
		w.bytes, w.size = 0, -1
		ino.invalidateAttrLocked()
		err := w.err
		w.err = nil
		ino.mu.Unlock()
		fs.dirtyBytes.Add(-n)
		fs.clean(ino)
		fs.log.Warn("fuse: dirty data dropped: no writable file", "nodeid", ino.nodeid, "bytes", n)
		if err == nil {
			err = syscall.EIO
		}
		return err
	}
	f := ino.writers[0]
	idxs := make([]int64, 0, len(w.dirty))
	for idx := range w.dirty {
		idxs = append(idxs, idx)
	}
	slices.Sort(idxs)
	var runs []*run
	var cur *run
	for _, idx := range idxs {
		dp := w.dirty[idx]
		start := idx*pageSize + int64(dp.lo)
		if cur == nil || cur.off+int64(len(cur.data)) != start {
			cur = &run{off: start}
			runs = append(runs, cur)
		}
		cur.data = append(cur.data, dp.data[dp.lo:dp.hi]...)
		cur.pages = append(cur.pages, idx)
		cur.seqs = append(cur.seqs, dp.seq)
	}
	ino.mu.Unlock()

	wctx := withCreds(ctx, &f.creds)
	maxWrite := int(fs.params.MaxWrite)
	var err error
	var written []*run
	for _, r := range runs {
		for done := 0; done < len(r.data) && err == nil; {
			chunk := r.data[done:min(done+maxWrite, len(r.data))]
			fs.writes.Add(1)
			n, werr := fs.conn.Write(wctx, ino.nodeid, WriteIn{Fh: f.fh, Offset: uint64(r.off) + uint64(done),
				WriteFlags: WriteCache, Flags: uint32(f.flags)}, chunk)
			switch {
			case werr != nil:
				err = werr
			case n == 0:
				err = syscall.EIO
			}
			done += n
		}
		if err != nil {
			break
		}
		written = append(written, r)
	}

	ino.mu.Lock()
	var freed int64
	for _, r := range written {
		for i, idx := range r.pages {
			if dp := w.dirty[idx]; dp != nil && dp.seq == r.seqs[i] {
				freed += int64(dp.hi - dp.lo)
				delete(w.dirty, idx)
			}
		}
		ino.cache.writeLocked(r.off, r.data)
		if end := uint64(r.off) + uint64(len(r.data)); end > ino.attr.Size {
			ino.attr.Size = end
		}
	}
	w.bytes -= freed
	if len(written) > 0 {
		ino.invalidateAttrLocked() // the server's mtime moved
	}
	clean := len(w.dirty) == 0
	if clean {
		if w.size >= 0 && uint64(w.size) != ino.attr.Size {
			// The local size was set by a truncation past the data.
			ino.attr.Size = uint64(w.size)
		}
		w.size = -1
	}
	if err == nil {
		err, w.err = w.err, nil
	}
	ino.mu.Unlock()
	fs.dirtyBytes.Add(-freed)
	if clean {
		fs.clean(ino)
	}
	return err
}

// clean removes ino from the set of dirty inodes if it has no dirty data.
// The check and the removal happen under dirtyMu, so that a concurrent
// bufferWrite, which adds the inode after dirtying it, cannot be undone.
func (fs *Filesystem) clean(ino *inode) {
	fs.dirtyMu.Lock()
	defer fs.dirtyMu.Unlock()
	ino.mu.Lock()
	empty := len(ino.wb.dirty) == 0
	ino.mu.Unlock()
	if empty {
		delete(fs.dirty, ino)
	}
}

// balanceDirty writes back dirty data once there is more than
// WritebackLimit of it (Linux balance_dirty_pages, done by the writer).
// Errors are kept for the next Flush or Sync of each inode.
func (fs *Filesystem) balanceDirty(ctx context.Context) {
	if fs.dirtyBytes.Load() <= fs.opts.WritebackLimit {
		return
	}
	fs.dirtyMu.Lock()
	inos := make([]*inode, 0, len(fs.dirty))
	for ino := range fs.dirty {
		inos = append(inos, ino)
	}
	fs.dirtyMu.Unlock()
	for _, ino := range inos {
		if err := ino.flushDirty(ctx); err != nil {
			ino.mu.Lock()
			if ino.wb.err == nil {
				ino.wb.err = err
			}
			ino.mu.Unlock()
		}
	}
}
