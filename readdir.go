package govirtiofs

import (
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/vfs"
)

// dirent is one name read from a directory.
type dirent struct {
	name string
	typ  uint8
}

// direntBufs recycles the listing buffers of readDir: every caller turns
// the entries into its own result and drops the buffer, so a listing of a
// large directory does not grow a new one by appending each time (about
// 380 KB for 5000 names).
var direntBufs sync.Pool

// maxPooledDirents bounds the buffers kept in direntBufs.
const maxPooledDirents = 1 << 16

// getDirents returns an empty listing buffer.
func getDirents() []dirent {
	if p, ok := direntBufs.Get().(*[]dirent); ok {
		return (*p)[:0]
	}
	return make([]dirent, 0, 64)
}

// putDirents gives back a buffer from getDirents or readDir; the caller
// must not use ds afterwards.
func putDirents(ds []dirent) {
	if cap(ds) == 0 || cap(ds) > maxPooledDirents {
		return
	}
	clear(ds[:cap(ds)]) // drop the names
	ds = ds[:0]
	direntBufs.Put(&ds)
}

// readDir reads up to n entries (all when n <= 0) from the directory offset
// on, without "." and "..", with os's semantics: for n > 0 an empty result
// at the end is io.EOF. The result is a buffer from getDirents, which the
// caller gives back with putDirents once done with it.
func (f *File) readDir(op string, n int) ([]dirent, error) {
	if err := f.check(op); err != nil {
		return nil, err
	}
	out := getDirents()
	err := f.fd.ReadDir(f.fs.ctx(), func(de vfs.Dirent) bool {
		if de.Name == "." || de.Name == ".." {
			return true
		}
		if n > 0 && len(out) == n {
			return false
		}
		out = append(out, dirent{name: de.Name, typ: de.Type})
		return true
	})
	if err != nil {
		return out, f.wrapErr("readdirent", err)
	}
	if n > 0 && len(out) == 0 {
		putDirents(out)
		return nil, io.EOF
	}
	return out, nil
}

// ReadDir reads the directory's entries in directory order (os.File.ReadDir).
// With n > 0 it returns at most n entries, and at the end of the directory
// an empty slice and io.EOF. With n <= 0 it returns all remaining entries
// and a nil error at the end. "." and ".." are left out.
//
// Errors: *fs.PathError with op "readdirent": ENOTDIR, EIO, ...; io.EOF as
// above.
func (f *File) ReadDir(n int) ([]fs.DirEntry, error) {
	ds, err := f.readDir("readdirent", n)
	ents, lerr := f.dirEntries(ds, nil)
	putDirents(ds)
	if lerr != nil {
		return ents, lerr
	}
	if n > 0 && len(ents) == 0 && err == nil {
		return nil, io.EOF
	}
	return ents, err
}

// dirEntries turns listed entries into DirEntries, all in one allocation,
// in the order of the indexes in order (nil: as listed). An entry of
// unknown type is Lstat'ed for its type, as os does, and left out if it is
// gone meanwhile.
//
// Errors: the first other Lstat error, with the entries before it.
func (f *File) dirEntries(ds []dirent, order []int32) ([]fs.DirEntry, error) {
	dir := &listedDir{fs: f.fs, path: f.path}
	all := make([]dirEntry, len(ds))
	ents := make([]fs.DirEntry, 0, len(ds))
	for i := range ds {
		d := ds[i]
		if order != nil {
			d = ds[order[i]]
		}
		e := &all[i]
		*e = dirEntry{dir: dir, name: d.name, typ: typeMode(d.typ)}
		if d.typ == vfs.DT_UNKNOWN {
			fi, lerr := f.fs.Lstat(joinName(f.path, d.name))
			if lerr != nil {
				if errors.Is(lerr, fs.ErrNotExist) {
					continue // removed since it was listed, as os skips it
				}
				return ents, lerr
			}
			e.typ = fi.Mode().Type()
			e.lstatd = fi.(*fileInfo)
		}
		ents = append(ents, e)
	}
	return ents, nil
}

// Readdirnames reads the directory's names in directory order, with the n
// semantics of ReadDir (os.File.Readdirnames).
func (f *File) Readdirnames(n int) ([]string, error) {
	ds, err := f.readDir("readdirent", n)
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.name
	}
	putDirents(ds)
	return names, err
}

// Readdir is ReadDir returning each entry's FileInfo, as Lstat gives it
// (os.File.Readdir).
func (f *File) Readdir(n int) ([]fs.FileInfo, error) {
	ds, err := f.readDir("readdirent", n)
	defer putDirents(ds)
	infos := make([]fs.FileInfo, 0, len(ds))
	for _, d := range ds {
		fi, lerr := f.fs.Lstat(joinName(f.path, d.name))
		if lerr != nil {
			if errors.Is(lerr, fs.ErrNotExist) {
				continue
			}
			return infos, lerr
		}
		infos = append(infos, fi)
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
	ds, err := d.readDir("readdirent", -1)
	ents, lerr := d.dirEntries(ds, sortedOrder(ds))
	putDirents(ds)
	if lerr != nil {
		err = lerr
	}
	return ents, err
}

// sortedOrder returns the indexes of ds in name order: an LSD radix sort
// of the names' first eight bytes packed big-endian (a name holds no NUL,
// so zero padding sorts a shorter name first, as string comparison does),
// with a pass only for the bytes where the keys differ, then a comparison
// sort of each run of equal keys (names longer than eight bytes sharing
// those) by the whole name. It moves pointer-free records only, which
// cost no GC write barriers; comparison sorting the entries themselves
// cost the client more than reading a large listing.
func sortedOrder(ds []dirent) []int32 {
	type rec = sortRec
	var scratch []rec
	if p, ok := sortScratch.Get().(*[]rec); ok && cap(*p) >= 2*len(ds) {
		scratch = (*p)[:2*len(ds)]
	} else {
		scratch = make([]rec, 2*len(ds))
	}
	defer func() {
		if cap(scratch) <= 2*maxPooledDirents {
			sortScratch.Put(&scratch)
		}
	}()
	src, dst := scratch[:len(ds):len(ds)], scratch[len(ds):]
	for i := range ds {
		src[i] = rec{nameKey(ds[i].name), int32(i)}
	}
	for shift := 0; shift < 64 && len(src) > 1; shift += 8 {
		var count [256]int
		for i := range src {
			count[byte(src[i].key>>shift)]++
		}
		if count[byte(src[0].key>>shift)] == len(src) {
			continue // every key has this byte
		}
		pos := 0
		for b, c := range count {
			count[b] = pos
			pos += c
		}
		for i := range src {
			b := byte(src[i].key >> shift)
			dst[count[b]] = src[i]
			count[b]++
		}
		src, dst = dst, src
	}
	for i := 0; i < len(src); {
		j := i + 1
		for j < len(src) && src[j].key == src[i].key {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(src[i:j], func(a, b rec) int { return strings.Compare(ds[a.i].name, ds[b.i].name) })
		}
		i = j
	}
	order := make([]int32, len(src))
	for i := range src {
		order[i] = src[i].i
	}
	return order
}

// sortRec is a name's sort key and its index in the listing.
type sortRec struct {
	key uint64
	i   int32
}

// sortScratch recycles sortedOrder's two record arrays (pointer-free, so
// they hold nothing alive).
var sortScratch sync.Pool

// nameKey packs the first eight bytes of name big-endian, zero-padded.
func nameKey(name string) uint64 {
	var b [8]byte
	copy(b[:], name)
	return binary.BigEndian.Uint64(b[:])
}
