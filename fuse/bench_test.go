package fuse

import (
	"fmt"
	"testing"
	"time"
)

// The hot paths of the codec: every request encodes a header and its arguments, every GETATTR
// and LOOKUP reply is decoded and checked, and listings decode READDIRPLUS pages.

func benchAttr() Attr {
	now := time.Unix(1_700_000_000, 123)
	return Attr{Ino: 42, Size: 4096, Blocks: 8, Atime: now, Mtime: now, Ctime: now,
		Mode: ModeReg | 0o644, Nlink: 1, UID: 1000, GID: 1000, Blksize: 4096}
}

func BenchmarkEncodeGetattrRequest(b *testing.B) {
	buf := make([]byte, inHeaderSize+getattrInSize)
	b.SetBytes(int64(len(buf)))
	for i := range b.N {
		h := inHeader{Len: uint32(len(buf)), Opcode: OpGetattr, Unique: uint64(i), NodeID: 42}
		h.encode(buf)
		in := getattrIn{Fh: 7}
		in.encode(buf[inHeaderSize:])
	}
}

func BenchmarkEncodeReadRequest(b *testing.B) {
	buf := make([]byte, inHeaderSize+readInSize)
	b.SetBytes(int64(len(buf)))
	for i := range b.N {
		h := inHeader{Len: uint32(len(buf)), Opcode: OpRead, Unique: uint64(i), NodeID: 42}
		h.encode(buf)
		in := ReadIn{Fh: 7, Offset: uint64(i) << 17}
		in.encode(buf[inHeaderSize:], 128<<10)
	}
}

func BenchmarkDecodeAttrOut(b *testing.B) {
	buf := make([]byte, attrOutSize)
	out := AttrOut{AttrValid: time.Second, Attr: benchAttr()}
	out.encode(buf)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for range b.N {
		if _, err := decodeAttrOut(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeLookup(b *testing.B) {
	buf := make([]byte, entryOutSize)
	en := Entry{NodeID: 42, Generation: 1, EntryValid: time.Second, AttrValid: time.Second, Attr: benchAttr()}
	en.encode(buf)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for range b.N {
		if _, err := decodeLookup(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeReaddirplusPage decodes a page of entries named as a large listing's.
func BenchmarkDecodeReaddirplusPage(b *testing.B) {
	var page []byte
	for i := 0; ; i++ {
		dp := DirentPlus{
			Dirent: Dirent{Ino: uint64(100 + i), Off: uint64(i + 1), Type: 8, Name: fmt.Sprintf("e%06d", i)},
			Entry:  Entry{NodeID: uint64(100 + i), EntryValid: time.Second, AttrValid: time.Second, Attr: benchAttr()},
		}
		rec := make([]byte, entryOutSize+direntSize(len(dp.Name)))
		n := dp.encode(rec)
		if len(page)+n > 4096 {
			break
		}
		page = append(page, rec[:n]...)
	}
	want, err := decodeDirentsPlus(page)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(page)))
	b.ReportMetric(float64(len(want)), "entries/op")
	b.ResetTimer()
	for range b.N {
		if _, err := decodeDirentsPlus(page); err != nil {
			b.Fatal(err)
		}
	}
}
