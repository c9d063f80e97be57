package govirtiofs

import (
	"errors"
	"io"
	"io/fs"
	"math/bits"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/vfs"
)

// ReadDir reads the directory's entries in directory order (os.File.ReadDir).
// With n > 0 it returns at most n entries, and at the end of the directory
// an empty slice and io.EOF. With n <= 0 it returns all remaining entries
// and a nil error at the end. "." and ".." are left out.
//
// Errors: *fs.PathError with op "readdirent": ENOTDIR, EIO, ...; io.EOF as
// above.
func (f *File) ReadDir(n int) ([]fs.DirEntry, error) {
	l, err := f.list(n)
	ents, lerr := l.dirEntries(nil)
	if lerr != nil {
		return ents, lerr
	}
	if n > 0 && len(ents) == 0 && err == nil {
		return nil, io.EOF
	}
	return ents, err
}

// listing is a directory's entries as DirEntries, built as they are
// read: in arrays of at most maxEntryChunk, allocated as the listing
// grows and never moved (growing one array by append would copy it, with
// a GC write barrier per pointer while the collector runs), so that each
// entry is written once, straight from the reply.
type listing struct {
	dir *listedDir
	// chunks are the arrays, each full but the last.
	chunks [][]dirEntry
	n      int // entries in chunks
	// unknown is set if an entry has type typeUnknown, to find by Lstat.
	unknown bool
}

// Sizes of a listing's arrays of entries: the first holds firstEntryChunk,
// each next one four times as many, up to maxEntryChunk, and none more
// than a ReadDir(n) can take. A 5000-entry listing fills 5 arrays, with
// 456 entries to spare (doubling up to 1024, it filled 10, whose
// allocation took 12% of FS.ReadDir's time in a guest's profile).
const (
	firstEntryChunk = 16
	maxEntryChunk   = 1 << entryChunkShift
)

// An entry's index is its array's number << entryChunkShift | its place
// in the array.
const entryChunkShift = 12

// typeUnknown marks an entry that came with DT_UNKNOWN until Lstat gives
// its type; typeMode never returns it.
const typeUnknown = fs.ModeIrregular

// grow adds an array for the entries after the first l.n, of a listing
// of at most max entries (all if max <= 0), and returns it.
func (l *listing) grow(max int) []dirEntry {
	size := firstEntryChunk
	if k := len(l.chunks); k > 0 {
		size = min(4*len(l.chunks[k-1]), maxEntryChunk)
	}
	if max > 0 {
		size = min(size, max-l.n)
	}
	c := make([]dirEntry, size)
	l.chunks = append(l.chunks, c)
	return c
}

// entry returns the entry with index i.
func (l *listing) entry(i uint32) *dirEntry {
	return &l.chunks[i>>entryChunkShift][i&(maxEntryChunk-1)]
}

// list reads up to n entries (all when n <= 0) from the directory offset
// on, without "." and "..", with os's semantics: for n > 0 an empty
// listing at the end is io.EOF.
func (f *File) list(n int) (*listing, error) {
	dir := &listedDir{fs: f.fs, path: f.path}
	l := &listing{dir: dir}
	if err := f.check("readdirent"); err != nil {
		return l, err
	}
	var cur []dirEntry // the last array
	pos := 0           // entries in cur
	err := f.fd.ReadDirBatch(f.fs.ctx(), func(b []vfs.Dirent) int {
		for k := range b {
			de := &b[k]
			if de.Name == "." || de.Name == ".." {
				continue
			}
			if n > 0 && l.n == n {
				return k
			}
			if pos == len(cur) {
				cur, pos = l.grow(n), 0
			}
			e := &cur[pos]
			e.dir = dir
			e.name = de.Name
			if de.Type == vfs.DT_UNKNOWN {
				e.typ = typeUnknown
				l.unknown = true
			} else {
				e.typ = typeMode(de.Type)
			}
			pos++
			l.n++
		}
		return len(b)
	})
	if k := len(l.chunks); k > 0 {
		l.chunks[k-1] = cur[:pos]
	}
	if err != nil {
		return l, f.wrapErr("readdirent", err)
	}
	if n > 0 && l.n == 0 {
		return l, io.EOF
	}
	return l, nil
}

// dirEntries returns the listed entries, in the order of the records'
// indexes in order (nil: as listed). An entry of unknown type is Lstat'ed
// for its type, as os does, and left out if it is gone meanwhile.
//
// Errors: the first other Lstat error, with the entries before it.
func (l *listing) dirEntries(order []sortRec) ([]fs.DirEntry, error) {
	ents := make([]fs.DirEntry, 0, l.n)
	if order == nil {
		for c := range l.chunks {
			for i := range l.chunks[c] {
				e := &l.chunks[c][i]
				if l.unknown && e.typ == typeUnknown {
					if ok, err := l.lstat(e); err != nil {
						return ents, err
					} else if !ok {
						continue
					}
				}
				ents = append(ents, e)
			}
		}
		return ents, nil
	}
	for _, r := range order {
		e := l.entry(r.i)
		if l.unknown && e.typ == typeUnknown {
			if ok, err := l.lstat(e); err != nil {
				return ents, err
			} else if !ok {
				continue
			}
		}
		ents = append(ents, e)
	}
	return ents, nil
}

// lstat finds the type of an entry listed with DT_UNKNOWN, as os does,
// and reports false if the entry is gone meanwhile (os leaves it out).
func (l *listing) lstat(e *dirEntry) (bool, error) {
	fi, err := l.dir.fs.Lstat(joinName(l.dir.path, e.name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	e.typ = fi.Mode().Type()
	e.lstatd = fi.(*fileInfo)
	return true, nil
}

// Readdirnames reads the directory's names in directory order, with the n
// semantics of ReadDir (os.File.Readdirnames).
func (f *File) Readdirnames(n int) ([]string, error) {
	l, err := f.list(n)
	names := make([]string, 0, l.n)
	for _, c := range l.chunks {
		for i := range c {
			names = append(names, c[i].name)
		}
	}
	return names, err
}

// Readdir is ReadDir returning each entry's FileInfo, as Lstat gives it
// (os.File.Readdir).
func (f *File) Readdir(n int) ([]fs.FileInfo, error) {
	l, err := f.list(n)
	infos := make([]fs.FileInfo, 0, l.n)
	for _, c := range l.chunks {
		for i := range c {
			fi, lerr := f.fs.Lstat(joinName(f.path, c[i].name))
			if lerr != nil {
				if errors.Is(lerr, fs.ErrNotExist) {
					continue
				}
				return infos, lerr
			}
			infos = append(infos, fi)
		}
	}
	if n > 0 && len(infos) == 0 && err == nil {
		return nil, io.EOF
	}
	return infos, err
}

// ReadDir reads the named directory and returns its entries sorted by name
// (os.ReadDir).
//
// Errors: *fs.PathError with op "open" or "readdirent"; on a read error the
// entries read so far are returned with it.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	return f.readDir(name, name)
}

func (f *FS) readDir(p, name string) ([]fs.DirEntry, error) {
	d, err := f.openFile(p, name, O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	l, err := d.list(-1)
	s := getNameSort()
	ents, lerr := s.sortedEntries(l)
	putNameSort(s)
	if lerr != nil {
		err = lerr
	}
	return ents, err
}

// nameSort sorts a listing's names: an LSD radix sort of the names' first
// eight bytes packed big-endian (a name holds no NUL, so zero padding
// sorts a shorter name first, as string comparison does), with a pass
// only for the bytes where the keys differ, then a comparison sort of
// each run of equal keys (names longer than eight bytes sharing those) by
// the whole name. It moves pointer-free records only, which cost no GC
// write barriers; comparison sorting the entries themselves cost the
// client more than reading a large listing.
type nameSort struct {
	// a and b are the sort's arrays of records.
	a, b []sortRec
	// counts[b][v] is how many keys have byte b (from the low end) v.
	counts [8][256]int32
}

// sortRec is a name's sort key and its listing's entry index.
type sortRec struct {
	key uint64
	i   uint32
}

// nameSorts recycles nameSorts (pointer-free records, so they hold
// nothing alive).
var nameSorts sync.Pool

// maxPooledSort bounds the records of the nameSorts kept in nameSorts.
const maxPooledSort = 1 << 16

func getNameSort() *nameSort {
	if s, ok := nameSorts.Get().(*nameSort); ok {
		return s
	}
	return new(nameSort)
}

// putNameSort gives back s; the caller must not use s or the records
// that sort returned afterwards.
func putNameSort(s *nameSort) {
	if cap(s.a) <= maxPooledSort {
		nameSorts.Put(s)
	}
}

// sortedEntries returns l's entries sorted by name, as
// l.dirEntries(s.sort(l, nil)). When every entry's type is known, sort's
// last pass writes the DirEntries in their places itself, instead of
// records that one more pass over them turns into DirEntries.
//
// Errors: as dirEntries.
func (s *nameSort) sortedEntries(l *listing) ([]fs.DirEntry, error) {
	if l.unknown {
		return l.dirEntries(s.sort(l, nil))
	}
	ents := make([]fs.DirEntry, l.n)
	if order := s.sort(l, ents); order != nil {
		for j, r := range order {
			ents[j] = l.entry(r.i)
		}
	}
	return ents, nil
}

// sort returns a record of each of l's entries, in name order. The
// result is s's until putNameSort. If out is not nil (l.n long) and a
// last radix pass puts every entry in its final place (all names of at
// most eight bytes, and keys that differ), that pass writes each entry
// to its place in out instead, and sort returns nil.
func (s *nameSort) sort(l *listing, out []fs.DirEntry) []sortRec {
	n := l.n
	if cap(s.a) < n {
		s.a, s.b = make([]sortRec, n), make([]sortRec, n)
	}
	src, dst := s.a[:n], s.b[:n]
	c := &s.counts
	*c = [8][256]int32{}
	// The keys, the bytes where they differ and the counts of each
	// value of each byte in one pass over the names, with no call per
	// name and whole words loaded instead of a byte at a time: under TCG
	// a call and a loop pass cost more than the work in them.
	var differ uint64
	long := false // a name is longer than its key
	j := 0
	for ci, chunk := range l.chunks {
		for i := range chunk {
			name := chunk[i].name
			var k uint64
			switch m := len(name); {
			case m >= 8:
				k = uint64(name[0])<<56 | uint64(name[1])<<48 | uint64(name[2])<<40 | uint64(name[3])<<32 |
					uint64(name[4])<<24 | uint64(name[5])<<16 | uint64(name[6])<<8 | uint64(name[7])
				long = long || m > 8
			case m >= 4:
				// Bytes 0-3, and m-4 to m-1 shifted to their places.
				hi := uint64(name[0])<<24 | uint64(name[1])<<16 | uint64(name[2])<<8 | uint64(name[3])
				lo := uint64(name[m-4])<<24 | uint64(name[m-3])<<16 | uint64(name[m-2])<<8 | uint64(name[m-1])
				k = hi<<32 | lo<<(64-8*m)
			case m > 0:
				// Bytes 0, m/2 and m-1 of one to three.
				k = uint64(name[0])<<56 | uint64(name[m/2])<<(56-8*(m/2)) | uint64(name[m-1])<<(64-8*m)
			}
			src[j] = sortRec{k, uint32(ci)<<entryChunkShift | uint32(i)}
			differ |= k ^ src[0].key
			j++
			c[0][byte(k)]++
			c[1][byte(k>>8)]++
			c[2][byte(k>>16)]++
			c[3][byte(k>>24)]++
			c[4][byte(k>>32)]++
			c[5][byte(k>>40)]++
			c[6][byte(k>>48)]++
			c[7][byte(k>>56)]++
		}
	}
	// last is the byte of the last pass if it may write out.
	last := -1
	if out != nil && !long && differ != 0 {
		last = 7 - bits.LeadingZeros64(differ)/8
	}
	for b := range 8 {
		if byte(differ>>(8*b)) == 0 {
			continue // every key has this byte
		}
		cb := &c[b]
		shift := 8 * b
		pos := int32(0)
		for v, m := range cb {
			cb[v] = pos
			pos += m
		}
		if b == last {
			for i := range src {
				v := byte(src[i].key >> shift)
				out[cb[v]] = l.entry(src[i].i)
				cb[v]++
			}
			return nil
		}
		for i := range src {
			v := byte(src[i].key >> shift)
			dst[cb[v]] = src[i]
			cb[v]++
		}
		src, dst = dst, src
	}
	// Names of up to eight bytes are whole in their keys, so equal keys
	// are equal names.
	for i := 0; long && i < len(src); {
		j := i + 1
		for j < len(src) && src[j].key == src[i].key {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(src[i:j], func(a, b sortRec) int {
				return strings.Compare(l.entry(a.i).name, l.entry(b.i).name)
			})
		}
		i = j
	}
	return src
}
