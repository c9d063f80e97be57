package fuse

import "iter"

// pageMap maps page indexes to cached pages. The first page stored goes
// into the map's own fields and a map is made only for a second one: a
// small file's cache, the common case, costs no allocation (a Go map took
// three: its header, a group and, in the cache, the chunk list, each a
// fresh span now and then as the cache grows; under TCG that was 3% of
// a cold open, read and close).
//
// The zero value is empty. A page is never nil (fillLocked stores slices
// of a READ buffer).
type pageMap struct {
	// While m is nil, the map holds at most one page: one at index oneIdx
	// if one is not nil.
	oneIdx int64
	one    []byte
	m      map[int64][]byte
}

// get returns the page at idx.
func (pm *pageMap) get(idx int64) ([]byte, bool) {
	if pm.m == nil {
		if pm.one != nil && pm.oneIdx == idx {
			return pm.one, true
		}
		return nil, false
	}
	p, ok := pm.m[idx]
	return p, ok
}

// set stores p at idx.
func (pm *pageMap) set(idx int64, p []byte) {
	if pm.m == nil {
		if pm.one == nil || pm.oneIdx == idx {
			pm.oneIdx, pm.one = idx, p
			return
		}
		pm.m = make(map[int64][]byte)
		pm.m[pm.oneIdx] = pm.one
		pm.one = nil
	}
	pm.m[idx] = p
}

// del drops the page at idx, if any.
func (pm *pageMap) del(idx int64) {
	if pm.m == nil {
		if pm.oneIdx == idx {
			pm.one = nil
		}
		return
	}
	delete(pm.m, idx)
}

// len returns the number of pages.
func (pm *pageMap) len() int {
	if pm.m == nil {
		if pm.one != nil {
			return 1
		}
		return 0
	}
	return len(pm.m)
}

// clear drops every page; a map once made is kept for reuse.
func (pm *pageMap) clear() {
	pm.one = nil
	clear(pm.m)
}

// delFrom drops every page at index first or above.
func (pm *pageMap) delFrom(first int64) {
	for idx := range pm.all() {
		if idx >= first {
			pm.del(idx)
		}
	}
}

// all yields every page with its index, in no particular order.
func (pm *pageMap) all() iter.Seq2[int64, []byte] {
	return func(yield func(int64, []byte) bool) {
		if pm.m == nil {
			if pm.one != nil {
				yield(pm.oneIdx, pm.one)
			}
			return
		}
		for idx, p := range pm.m {
			if !yield(idx, p) {
				return
			}
		}
	}
}
