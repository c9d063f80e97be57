package memmove

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"unsafe"
)

func TestCopy(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	src := make([]byte, 1<<20+300)
	for i := range src {
		src[i] = byte(r.Uint32())
	}
	sizes := []int{0, 1, 7, 127, 128, 129, 2047, 2048, 2049, 4096, 4096 + 77, 65536, 65536 + 129, 1 << 20}
	for _, n := range sizes {
		for _, c := range []struct {
			name string
			f    func(dst, src []byte) int
		}{{"Copy", Copy}, {"loop", loop}} {
			for _, off := range []int{0, 1, 13} {
				for _, dlen := range []int{n, n + 5, n / 2} {
					dst := make([]byte, dlen+off+64)
					for i := range dst {
						dst[i] = 0xAA
					}
					d := dst[off : off+dlen]
					s := src[off : off+n]
					want := min(dlen, n)
					got := c.f(d, s)
					if got != want {
						t.Fatalf("%s(len %d, len %d) = %d, want %d", c.name, dlen, n, got, want)
					}
					if !bytes.Equal(d[:want], s[:want]) {
						t.Fatalf("Copy(len %d, len %d) at offset %d: bytes differ", dlen, n, off)
					}
					for i, b := range dst[:off] {
						if b != 0xAA {
							t.Fatalf("Copy(len %d) wrote byte %d before dst", n, i)
						}
					}
					for i, b := range dst[off+want:] {
						if b != 0xAA {
							t.Fatalf("Copy(len %d, len %d) wrote byte %d past the copied bytes", dlen, n, off+want+i)
						}
					}
				}
			}
		}
	}
}

// loop is Copy with its own loop whatever the CPU.
func loop(dst, src []byte) int {
	n := min(len(dst), len(src))
	copyLoop(dst[:n], src[:n])
	return n
}

func TestCopyOverlap(t *testing.T) {
	for _, shift := range []int{-4097, -1, 1, 64, 4097} {
		buf := make([]byte, 3<<12+16384)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		want := bytes.Clone(buf)
		base := 4200
		n := 3 << 12
		copy(want[base+shift:base+shift+n], want[base:base+n])
		if got := Copy(buf[base+shift:base+shift+n], buf[base:base+n]); got != n {
			t.Fatalf("shift %d: Copy = %d, want %d", shift, got, n)
		}
		if !bytes.Equal(buf, want) {
			t.Errorf("shift %d: overlapping Copy differs from copy", shift)
		}
	}
}

// copyFuncs are the routines the benchmarks compare.
var copyFuncs = []struct {
	name string
	f    func(dst, src []byte) int
}{
	{"builtin", func(dst, src []byte) int { return copy(dst, src) }},
	{"Copy", Copy},
	{"loop", loop},
}

func BenchmarkCopy(b *testing.B) {
	funcs := copyFuncs
	for _, size := range []int{4 << 10, 64 << 10, 1 << 20} {
		// Page-aligned as DMA buffers and cache pages are.
		src := alignedBuf(size)
		dst := alignedBuf(size)
		for _, c := range funcs {
			b.Run(fmt.Sprintf("%s/%dK", c.name, size>>10), func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					c.f(dst, src)
				}
			})
		}
	}
}

func alignedBuf(n int) []byte {
	b := make([]byte, n+4096)
	off := int(-uintptr(unsafe.Pointer(&b[0])) & 4095)
	return b[off : off+n]
}
