package fuse

import (
	"context"
	"runtime"
	"sync"
	"syscall"

	"github.com/govirtiofs/govirtiofs/vfs"
)

// Sizes of READDIR and READDIRPLUS requests. Linux asks for one page each
// time. Here a listing's first plain READDIR asks for readdirFirstSize,
// small so that the client has entries to work on soon, and each one
// after a reply that filled its buffer for readdirMaxSize: the next
// READDIR is sent before a reply is read (see fileHandle.ReadDir), so that
// the server reads the directory on while the client works through the
// entries, and replies of some tens of KiB let the two overlap, where one
// reply of a whole large directory left each waiting for the other. A
// READDIRPLUS, whose every entry costs an inode and a dentry, asks for
// readdirplusSize. After a short reply the directory has probably ended,
// so the request that checks it asks for one page only.
const (
	readdirFirstSize = 8 << 10
	readdirMaxSize   = 64 << 10
	readdirplusSize  = pageSize
	readdirEndSize   = pageSize
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
	// endAt, if not 0, is the cookie at which a READDIR sent ahead
	// found the end of the listing, after rest: a listing that gets
	// there ends without asking again (once).
	endAt int64
	// size is the size of the next full READDIR; 0 means
	// readdirFirstSize.
	size int
}

// dirListing is the part of dirState that one ReadDir call works on.
type dirListing struct {
	rest   []Dirent
	restAt int64
	short  bool
	endAt  int64
	size   int
}

// take moves the state out for one ReadDir call.
//
// Preconditions: d.mu is held.
func (d *dirState) take() dirListing {
	l := dirListing{rest: d.rest, restAt: d.restAt, short: d.short, endAt: d.endAt, size: d.size}
	d.rest = nil
	return l
}

// store puts back what a ReadDir call left.
//
// Preconditions: d.mu is held.
func (d *dirState) store(l dirListing) {
	d.rest, d.restAt, d.short, d.endAt, d.size = l.rest, l.restAt, l.short, l.endAt, l.size
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

// readdirBatch is how many entries ReadDirBatch hands to emit at a time
// (3 KiB of vfs.Dirents).
const readdirBatch = 64

// ReadDir implements vfs.FileDescriptionImpl.ReadDir through ReadDirBatch.
func (f *fileHandle) ReadDir(ctx context.Context, cookie int64, emit func(vfs.Dirent) bool) error {
	return f.ReadDirBatch(ctx, cookie, vfs.EachDirent(emit))
}

// ReadDirBatch implements vfs.DirBatchReader with READDIRPLUS or
// READDIR as usePlus decides (each READDIRPLUS entry's lookup becomes an
// Entry reference for vfs's dentry cache, Linux fuse_direntplus_link).
//
// A listing from the start, or one whose emit took a whole reply, sends
// each plain READDIR as soon as the reply before it has come, at that
// reply's last d_off, before handing out that reply's entries: the server
// reads on while the client works (in a one-vCPU guest under TCG the
// client's work per entry costs about as much as the server's). If emit
// stops within a reply, the READDIR sent ahead is waited for and its
// entries kept with the rest (a failed one is dropped: its error comes
// again if the listing goes on there); an empty one marks the end.
// Entries with nodeid 0, and "." and "..", carry no reference. When emit
// stops the listing, the lookups of the READDIRPLUS entries not handed
// over are released at once, so that they are forgotten; plain entries
// not handed over are kept for the next call that continues there.
//
// Plain entries go to emit in batches of up to readdirBatch, READDIRPLUS
// entries (a small directory's) one at a time.
func (f *fileHandle) ReadDirBatch(ctx context.Context, cookie int64, emit func([]vfs.Dirent) int) error {
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
	batch := make([]vfs.Dirent, readdirBatch)
	// next is the READDIR in flight for the entries after the last
	// reply's, sent before that reply was read.
	var next *readdirCall
	// ahead is set when the caller probably lists on, so that the next
	// READDIR may go out before a reply is read: a listing from the
	// start (FS.ReadDir, os.ReadDir) until a READDIRPLUS reply comes
	// first, and once emit took a whole reply or the rest of one.
	ahead := cookie == 0
	for {
		if next != nil {
			// Plain entries follow plain entries: the one in flight.
		} else if len(st.rest) > 0 && cookie != 0 && cookie == st.restAt {
			for len(st.rest) > 0 {
				b := batch[:min(len(st.rest), len(batch))]
				for i := range b {
					setDirent(&b[i], &st.rest[i])
				}
				n := emit(b)
				if n > 0 {
					cookie = b[n-1].Next
				}
				st.rest = st.rest[n:]
				if n < len(b) {
					st.restAt = cookie
					return nil
				}
			}
			st.rest = nil
			ahead = true
			continue
		}
		st.rest = nil
		if st.endAt != 0 {
			end := st.endAt == cookie
			st.endAt = 0
			if end {
				return nil
			}
		}
		in := ReadIn{Fh: f.fh, Offset: uint64(cookie), Flags: uint32(f.flags)}
		plus := next == nil && f.usePlus(cookie)
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
			ahead = false
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
				batch[0] = de
				if emit(batch[:1]) == 0 {
					stopped = true
				}
				// The plain entries that may follow in batch[0] carry no
				// Entry (vfs clears it too, but emit need not be vfs's).
				batch[0].Entry = nil
				cookie = int64(e.Off)
			}
			if stopped {
				return nil
			}
			continue
		}
		var rep readdirReply
		var err error
		if next != nil {
			rep, err = next.wait()
			next = nil
		} else {
			rep, err = fs.conn.readdirRecords(ctx, f.ino.nodeid, in, st.nextSize(maxIO))
		}
		if err != nil {
			return err
		}
		if rep.n == 0 {
			rep.free()
			st.short = false
			return nil
		}
		// A reply with room left for a long name probably ended the
		// directory; after one that filled the buffer, full-size
		// READDIRs follow.
		st.short = rep.size-len(rep.p) >= direntSize(255)
		if !st.short {
			st.size = min(readdirMaxSize, maxIO)
		}
		// The next READDIR goes out before this reply is read, so
		// that the server reads on while the client works.
		if ahead {
			in.Offset = rep.lastOff
			next = fs.conn.startReaddir(ctx, f.ino.nodeid, in, st.nextSize(maxIO))
		}
		for off, at := 0, 0; off < len(rep.p); {
			bOff, bAt := off, at // where the batch starts in the reply
			k := 0
			for off < len(rep.p) && k < len(batch) {
				var e Dirent
				e, off, at = rep.direntAt(off, at)
				setDirent(&batch[k], &e)
				k++
			}
			b := batch[:k]
			n := emit(b)
			if n > 0 {
				cookie = b[n-1].Next
			}
			if n == len(b) {
				continue
			}
			if cookie != 0 {
				// The entries not taken: the reply's from the
				// batch's first one not taken on.
				for range n {
					_, bOff, bAt = rep.direntAt(bOff, bAt)
				}
				st.rest = rep.dirents(bOff, bAt)
				st.restAt = cookie
				// The reply after this one continues the rest; an
				// error in it will come again if the listing goes on.
				if next != nil {
					if nrep, err := next.wait(); err == nil {
						if nrep.n == 0 {
							st.endAt = int64(rep.lastOff)
						}
						st.rest = append(st.rest, nrep.dirents(0, 0)...)
						nrep.free()
					}
				}
			} else if next != nil {
				next.discard()
			}
			rep.free()
			return nil
		}
		rep.free()
		ahead = true
	}
}

// setDirent makes d the plain entry e, field by field: while the garbage
// collector marks, storing a whole vfs.Dirent (two pointer words) goes
// through a bulk write barrier (runtime.wbMove), 9% of a guest's CPU
// profile of 400 listings of 5000 entries, where a store of the name's
// pointer takes the ordinary barrier only. d.Entry is nil already: plain
// entries never set it and READDIRPLUS entries leave it nil behind them.
func setDirent(d *vfs.Dirent, e *Dirent) {
	d.Name = e.Name
	d.Ino = e.Ino
	d.Type = uint8(e.Type)
	d.Next = int64(e.Off)
}

// nextSize returns the size of the next plain READDIR.
func (st *dirListing) nextSize(maxIO int) int {
	if st.short {
		return min(readdirEndSize, maxIO)
	}
	size := st.size
	if size == 0 {
		size = readdirFirstSize
	}
	return min(size, maxIO)
}

// readdirReply is a checked READDIR reply in its pooled buffer, which
// free gives back.
type readdirReply struct {
	direntRecords
	buf *[]byte
	// size is the size the READDIR asked for.
	size int
}

// readdirCall is a READDIR in flight (startReaddir), whose reply wait
// returns.
type readdirCall struct {
	rep  readdirReply
	err  error
	done chan struct{}
}

// startReaddir sends a READDIR as readdirRecords does and returns at
// once; wait or discard must follow. Its round trip runs on a goroutine
// of its own, which goes first (runtime.Gosched) so that the request is
// out before the caller goes on: with one processor (GOMAXPROCS=1 in a
// one-vCPU guest) a new goroutine would otherwise wait until the caller
// blocks. Its spin for the reply yields to the caller between looks.
func (c *Conn) startReaddir(ctx context.Context, nodeid uint64, in ReadIn, size int) *readdirCall {
	rc := &readdirCall{done: make(chan struct{})}
	go func() {
		rc.rep, rc.err = c.readdirRecords(ctx, nodeid, in, size)
		close(rc.done)
	}()
	runtime.Gosched()
	return rc
}

// wait returns the reply, which the caller frees.
func (rc *readdirCall) wait() (readdirReply, error) {
	<-rc.done
	return rc.rep, rc.err
}

// discard waits for the reply and frees it.
func (rc *readdirCall) discard() {
	rep, _ := rc.wait()
	rep.free()
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
		return readdirReply{direntRecords: recs, buf: buf, size: size}, nil
	})
}
