package fuse

import (
	"fmt"
	"strings"
	"testing"
)

// direntRecord encodes one fuse_dirent with its padding bytes set to pad
// (a server may leave anything there).
func direntRecord(de Dirent, pad byte) []byte {
	b := make([]byte, direntSize(len(de.Name)))
	de.encode(b)
	for i := direntHeaderSize + len(de.Name); i < len(b); i++ {
		b[i] = pad
	}
	return b
}

// readdirReplyOf encodes a READDIR reply of n entries named as the bench's
// large directory (e000000, e000001, ...).
func readdirReplyOf(n int) []byte {
	var p []byte
	for i := range n {
		p = append(p, direntRecord(Dirent{Ino: uint64(100 + i), Off: uint64(i + 1), Type: 8, Name: fmt.Sprintf("e%06d", i)}, 0)...)
	}
	return p
}

// decodeDirentsOneByOne is the reference decoder: one decodeDirent per
// record.
func decodeDirentsOneByOne(p []byte) ([]Dirent, error) {
	var out []Dirent
	for len(p) > 0 {
		de, n, err := decodeDirent(p)
		if err != nil {
			return nil, err
		}
		out = append(out, de)
		p = p[n:]
	}
	return out, nil
}

// TestDecodeDirentsNames checks the word-at-a-time name check and copy at
// every name length around the word boundaries: '/' or NUL at any
// position is rejected, whatever the padding holds, and good names come
// back intact next to names of other lengths.
func TestDecodeDirentsNames(t *testing.T) {
	for namelen := 1; namelen <= 26; namelen++ {
		name := strings.Repeat("x", namelen)
		for _, pad := range []byte{0, '/', 0xff} {
			var p []byte
			var want []Dirent
			for i, n := range []string{"a", name, "bcdefghi", name + "z"} {
				de := Dirent{Ino: uint64(i + 2), Off: uint64(i + 10), Type: uint32(i), Name: n}
				want = append(want, de)
				p = append(p, direntRecord(de, pad)...)
			}
			got, err := decodeDirents(p)
			if err != nil {
				t.Fatalf("namelen %d, padding %#x: %v", namelen, pad, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("namelen %d, padding %#x: got %v, want %v", namelen, pad, got, want)
			}
			for bad := range namelen {
				for _, c := range []byte{0, '/'} {
					b := []byte(name)
					b[bad] = c
					q := append(direntRecord(Dirent{Ino: 1, Off: 1, Name: "ok"}, pad),
						direntRecord(Dirent{Ino: 2, Off: 2, Name: string(b)}, pad)...)
					if _, err := decodeDirents(q); err == nil {
						t.Errorf("name %q (padding %#x) accepted", b, pad)
					}
				}
			}
		}
	}
}

// TestDirentRecordsFrom checks that the records read from any record on
// (a listing stopped there) are the reply's tail.
func TestDirentRecordsFrom(t *testing.T) {
	p := append(readdirReplyOf(5), direntRecord(Dirent{Ino: 9, Off: 99, Type: 4, Name: strings.Repeat("long", 9)}, 7)...)
	want, err := decodeDirentsOneByOne(p)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := scanDirents(p)
	if err != nil {
		t.Fatal(err)
	}
	if recs.n != len(want) {
		t.Fatalf("%d records, want %d", recs.n, len(want))
	}
	off, at := 0, 0
	for i := range want {
		if got := recs.dirents(off, at); fmt.Sprint(got) != fmt.Sprint(want[i:]) {
			t.Errorf("records from %d: got %v, want %v", i, got, want[i:])
		}
		var de Dirent
		de, off, at = recs.direntAt(off, at)
		if de != want[i] {
			t.Errorf("record %d: got %v, want %v", i, de, want[i])
		}
	}
	if off != len(p) {
		t.Errorf("records end at %d, want %d", off, len(p))
	}
}

// FuzzReadDir checks decodeDirents against decoding one record at a time:
// both accept the same replies and give the same entries.
func FuzzReadDir(f *testing.F) {
	f.Add(h(f, goldenDirent))
	f.Add(h(f, goldenDirent+goldenDirent))
	f.Add(readdirReplyOf(3))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		got, err := decodeDirents(p)
		want, werr := decodeDirentsOneByOne(p)
		if (err == nil) != (werr == nil) {
			t.Fatalf("decodeDirents error %v, one by one %v", err, werr)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("decodeDirents: %v, one by one: %v", got, want)
		}
	})
}

// BenchmarkDecodeReaddirReply checks and reads a 64 KiB READDIR reply
// (the largest a listing asks for: 2048 names as the bench's), as a
// listing does: scanDirents, then each record straight from the reply.
func BenchmarkDecodeReaddirReply(b *testing.B) {
	p := readdirReplyOf(readdirMaxSize / direntSize(7))
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	var sum uint64
	for b.Loop() {
		recs, err := scanDirents(p)
		if err != nil {
			b.Fatal(err)
		}
		for off, at := 0, 0; off < len(recs.p); {
			var de Dirent
			de, off, at = recs.direntAt(off, at)
			sum += de.Off + uint64(len(de.Name))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*(len(p)/direntSize(7))), "ns/entry")
	_ = sum
}
