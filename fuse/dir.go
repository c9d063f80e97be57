package fuse

import (
	"context"
	"math/bits"
	"sync"
	"syscall"

	"github.com/govirtiofs/govirtiofs/vfs"
)

// Sizes of READDIR and READDIRPLUS requests. Linux asks for one page each
// time; a round trip costs far more here than a large buffer, so a plain
// READDIR asks for readdirSize (and max_pages*4096 once a reply fills
// it), and a READDIRPLUS, whose every entry costs an inode and a dentry,
// for readdirplusSize. After a short reply the directory has probably
// ended, so the request that checks it asks for one page only.
const (
	readdirSize     = 128 << 10
	readdirplusSize = pageSize
	readdirEndSize  = pageSize
)

// dirState is an open directory's listing state: the entries of the last
// READDIR that emit did not take yet, kept so that a listing read in
// pieces (ReadDir(n)) does not fetch them again, and the size of the next
// request.
type dirState struct {
	// mu guards the fields below. Leaf lock, never held across a
	// request or emit: ReadDir works on a copy and stores it back (vfs
	// serialises the ReadDir calls of one file description anyway).
	mu sync.Mutex
	// rest are the unconsumed entries; they continue the listing at
	// cookie restAt (never 0: a listing from the start asks the server).
	rest   []Dirent
	restAt int64
	// short is set after a reply that did not fill its buffer.
	short bool
	// size is the size of the next full READDIR; 0 means readdirSize.
	size int
}

// dirListing is the part of dirState that one ReadDir call works on.
type dirListing struct {
	rest   []Dirent
	restAt int64
	short  bool
	size   int
}

// take moves the state out for one ReadDir call.
//
// Preconditions: d.mu is held.
func (d *dirState) take() dirListing {
	l := dirListing{rest: d.rest, restAt: d.restAt, short: d.short, size: d.size}
	d.rest = nil
	return l
}

// store puts back what a ReadDir call left.
//
// Preconditions: d.mu is held.
func (d *dirState) store(l dirListing) {
	d.rest, d.restAt, d.short, d.size = l.rest, l.restAt, l.short, l.size
}

// usePlus decides between READDIRPLUS and READDIR as Linux
// fuse_use_readdirplus does with FUSE_READDIRPLUS_AUTO: READDIRPLUS when
// names in the directory were looked up since the last READDIRPLUS (ls
// -l: the caller stats what it lists), and at the start of a listing of a
// small directory; plain READDIR otherwise, since vfs only needs names and
// types then.
//
// Linux takes READDIRPLUS at the start of every listing. Here that page
// costs the server a lookup per entry (about 0.75 ms for 25 entries with
// virtiofsd, more than listing 4096 names plainly) and the client an
// inode and a dentry each, which a large directory's listing rarely uses:
// so only a directory whose size attribute is at most the READDIRPLUS
// request (one page; ext4, xfs, btrfs and tmpfs all report more for a
// directory of more than a few dozen names) starts with it, and gets its
// whole listing with attributes in that one reply.
func (f *fileHandle) usePlus(cookie int64) bool {
	p := f.fs.params
	if !p.Has(InitDoReaddirplus) {
		return false
	}
	if !p.Has(InitReaddirplusAuto) {
		return true
	}
	if f.ino.advisePlus.Swap(false) {
		return true
	}
	return cookie == 0 && f.ino.smallDir()
}

// smallDir reports whether the directory's last known size (valid or
// not: it is only a hint) is at most readdirplusSize.
func (ino *inode) smallDir() bool {
	ino.mu.Lock()
	defer ino.mu.Unlock()
	return ino.attr.Ino != 0 && ino.attr.Size <= readdirplusSize
}

// readdirFirstSize is the size of a listing's first READDIR: readdirSize,
// or for a directory whose last known size attribute (only a hint) is
// larger, the power of two at or above twice that, so that a large
// directory is read in one reply where it fits. A FUSE dirent of a short
// name takes about twice the bytes that ext4 and tmpfs count for it in a
// directory's size (5000 names of 7 bytes: 160,000 bytes of replies, and
// a size of 131,072 on ext4).
func (ino *inode) readdirFirstSize() int {
	ino.mu.Lock()
	size := ino.attr.Size
	ino.mu.Unlock()
	if size <= readdirSize/2 || size > 1<<30 {
		return readdirSize
	}
	return 1 << bits.Len64(2*size-1)
}

// ReadDir implements vfs.FileDescriptionImpl.ReadDir with READDIRPLUS or
// READDIR as usePlus decides (each READDIRPLUS entry's lookup becomes an
// Entry reference for vfs's dentry cache, Linux fuse_direntplus_link).
// Entries with nodeid 0, and "." and "..", carry no reference. When emit
// stops the listing, the lookups of the READDIRPLUS entries not handed
// over are released at once, so that they are forgotten; plain entries
// not handed over are kept for the next call that continues there.
func (f *fileHandle) ReadDir(ctx context.Context, cookie int64, emit func(vfs.Dirent) bool) error {
	if !f.dir {
		return syscall.ENOTDIR
	}
	ctx = f.ctx(ctx)
	fs := f.fs
	f.dirs.mu.Lock()
	st := f.dirs.take()
	f.dirs.mu.Unlock()
	defer func() {
		f.dirs.mu.Lock()
		f.dirs.store(st)
		f.dirs.mu.Unlock()
	}()
	maxIO := fs.params.MaxPages * pageSize
	for {
		if len(st.rest) > 0 && cookie != 0 && cookie == st.restAt {
			for i, e := range st.rest {
				if !emit(vfs.Dirent{Name: e.Name, Ino: e.Ino, Type: uint8(e.Type), Next: int64(e.Off)}) {
					st.rest = st.rest[i:]
					st.restAt = cookie
					return nil
				}
				cookie = int64(e.Off)
			}
			st.rest = nil
			continue
		}
		st.rest = nil
		in := ReadIn{Fh: f.fh, Offset: uint64(cookie), Flags: uint32(f.flags)}
		plus := f.usePlus(cookie)
		var pents []DirentPlus
		if plus {
			var err error
			pents, err = fs.conn.Readdirplus(ctx, f.ino.nodeid, in, min(readdirplusSize, maxIO))
			// virtiofsd fails a READDIRPLUS whose first entry it cannot
			// look up (removed since it was read): list it plainly.
			plus = err != syscall.ENOENT || cookie == 0
			if err != nil && plus {
				return err
			}
		}
		if plus {
			if len(pents) == 0 {
				return nil
			}
			stopped := false
			for i := range pents {
				e := &pents[i]
				var ve vfs.Entry
				if e.Entry.NodeID != 0 {
					ve = fs.entry(&e.Entry)
				}
				if stopped {
					if ve.Inode != nil {
						fs.Release(ve.Inode)
					}
					continue
				}
				de := vfs.Dirent{Name: e.Name, Ino: e.Ino, Type: uint8(e.Type), Next: int64(e.Off)}
				if ve.Inode != nil {
					de.Entry = &ve
				}
				if !emit(de) {
					stopped = true
				}
				cookie = int64(e.Off)
			}
			if stopped {
				return nil
			}
			continue
		}
		size := st.size
		if size == 0 {
			size = f.ino.readdirFirstSize()
		}
		size = min(size, maxIO)
		if st.short {
			size = min(readdirEndSize, maxIO)
		}
		rep, err := fs.conn.readdirRecords(ctx, f.ino.nodeid, in, size)
		if err != nil {
			return err
		}
		if rep.n == 0 {
			rep.free()
			st.short = false
			return nil
		}
		// A reply with room left for a long name probably ended the
		// directory; one that filled the buffer asks for a larger one.
		st.short = size-len(rep.p) >= direntSize(255)
		if !st.short && size >= st.size {
			st.size = min(2*size, maxIO)
		}
		for off, at := 0, 0; off < len(rep.p); {
			e, nextOff, nextAt := rep.direntAt(off, at)
			if !emit(vfs.Dirent{Name: e.Name, Ino: e.Ino, Type: uint8(e.Type), Next: int64(e.Off)}) {
				if cookie != 0 {
					st.rest = rep.dirents(off, at)
					st.restAt = cookie
				}
				rep.free()
				return nil
			}
			cookie = int64(e.Off)
			off, at = nextOff, nextAt
		}
		rep.free()
	}
}

// readdirReply is a checked READDIR reply in its pooled buffer, which
// free gives back.
type readdirReply struct {
	direntRecords
	buf *[]byte
}

func (r *readdirReply) free() {
	if r.buf != nil {
		putDirBuf(r.buf)
		r.buf = nil
	}
}

// readdirRecords is Conn.Readdir for listings: the entries stay in the
// reply buffer and are read from there as they are emitted, instead of
// being decoded into a []Dirent first (5000 entries: 200 KB and a pass
// over them). The caller frees the reply.
func (c *Conn) readdirRecords(ctx context.Context, nodeid uint64, in ReadIn, size int) (readdirReply, error) {
	r, buf, err := c.readdirBuf(OpReaddir, nodeid, in, size)
	if err != nil {
		return readdirReply{}, err
	}
	return call(ctx, c, r, func(rep reply) (readdirReply, error) {
		recs, err := scanDirents(r.outData[:rep.dataN])
		if err != nil {
			putDirBuf(buf)
			return readdirReply{}, err
		}
		return readdirReply{direntRecords: recs, buf: buf}, nil
	})
}
