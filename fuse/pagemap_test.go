package fuse

import (
	"maps"
	"testing"
)

// TestPageMap checks pageMap against a Go map through its change from one
// inline page to a map and back to empty.
func TestPageMap(t *testing.T) {
	var pm pageMap
	want := map[int64][]byte{}
	check := func(step string) {
		t.Helper()
		if pm.len() != len(want) {
			t.Fatalf("%s: len %d, want %d", step, pm.len(), len(want))
		}
		got := maps.Collect(pm.all())
		for idx, p := range want {
			q, ok := pm.get(idx)
			if !ok || &q[0] != &p[0] || &got[idx][0] != &p[0] {
				t.Fatalf("%s: page %d missing or another", step, idx)
			}
		}
		for _, idx := range []int64{-1, 0, 1, 2, 3, 7, 100} {
			if _, ok := want[idx]; !ok {
				if _, ok := pm.get(idx); ok {
					t.Fatalf("%s: page %d present, want absent", step, idx)
				}
			}
		}
	}
	page := func(b byte) []byte { return []byte{b} }
	set := func(idx int64, b byte) { pm.set(idx, page(b)); want[idx] = mustGet(t, &pm, idx) }
	check("empty")
	set(3, 1)
	check("one")
	if pm.m != nil {
		t.Fatal("one page made a map")
	}
	set(3, 2) // replaced in place
	check("one replaced")
	pm.del(4) // not there
	check("del absent")
	set(7, 3)
	set(0, 4)
	check("three")
	pm.delFrom(3)
	delete(want, 3)
	delete(want, 7)
	check("delFrom 3")
	pm.del(0)
	delete(want, 0)
	check("del last")
	set(1, 5)
	set(2, 6)
	pm.clear()
	clear(want)
	check("clear")
	var one pageMap
	one.set(5, page(7))
	one.delFrom(6)
	if one.len() != 1 {
		t.Fatal("delFrom above the inline page dropped it")
	}
	one.delFrom(5)
	if one.len() != 0 {
		t.Fatal("delFrom at the inline page kept it")
	}
}

func mustGet(t *testing.T, pm *pageMap, idx int64) []byte {
	t.Helper()
	p, ok := pm.get(idx)
	if !ok {
		t.Fatalf("page %d not stored", idx)
	}
	return p
}
