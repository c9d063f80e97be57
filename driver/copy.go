package driver

import "github.com/govirtiofs/govirtiofs/internal/memmove"

// totalLen is the summed length of bufs.
func totalLen(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

// gather copies bufs into dst.
func gather(dst []byte, bufs [][]byte) {
	off := 0
	for _, b := range bufs {
		off += memmove.Copy(dst[off:], b)
	}
}

// scatter copies src into bufs in order.
func scatter(bufs [][]byte, src []byte) {
	for _, b := range bufs {
		if len(src) == 0 {
			return
		}
		src = src[memmove.Copy(b, src):]
	}
}
