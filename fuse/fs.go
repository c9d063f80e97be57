package fuse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/govirtiofs/govirtiofs/vfs"
)

// CacheMode selects how long the client trusts what it has cached: names,
// attributes and file data (the guest side of virtiofsd's -o cache=).
type CacheMode int

const (
	// CacheAuto honours the server's entry and attribute timeouts, caches
	// file data while a file is open, drops it on open unless the server
	// says FOPEN_KEEP_CACHE, and drops it when GETATTR shows that the size
	// or mtime changed (close-to-open consistency, FUSE_AUTO_INVAL_DATA).
	CacheAuto CacheMode = iota
	// CacheNone revalidates every name and attribute on every use and
	// sends every read and write to the server (Linux with entry_timeout
	// and attr_timeout 0 and direct_io).
	CacheNone
	// CacheAlways honours the server's (long) timeouts and keeps file data
	// across opens.
	CacheAlways
)

// String returns the mode as virtiofsd's -o cache= spells it.
func (m CacheMode) String() string {
	switch m {
	case CacheAuto:
		return "auto"
	case CacheNone:
		return "none"
	case CacheAlways:
		return "always"
	}
	return fmt.Sprintf("CacheMode(%d)", int(m))
}

// Defaults of FSOptions.
const (
	// DefaultWritebackLimit is the dirty data buffered before writes
	// start flushing it themselves.
	DefaultWritebackLimit = 16 << 20
	// DefaultForgetDelay is how long a forget waits for company.
	DefaultForgetDelay = 5 * time.Millisecond
)

// FSOptions configure a Filesystem.
type FSOptions struct {
	// Cache is the cache mode; the zero value is CacheAuto.
	Cache CacheMode
	// Writeback buffers writes as dirty pages, written back on Flush
	// (close), Sync, or when more than WritebackLimit bytes are dirty
	// (Linux FUSE_WRITEBACK_CACHE). It takes effect only if the
	// connection negotiated InitWritebackCache (ConnOptions.WritebackCache
	// and a server that agrees, virtiofsd -o writeback), and not for
	// files that bypass the cache.
	Writeback bool
	// WritebackLimit bounds the dirty bytes of the whole filesystem; 0
	// means DefaultWritebackLimit.
	WritebackLimit int64
	// PageCacheSize bounds the clean cached file data of the whole
	// filesystem, in bytes (dirty data is bounded by WritebackLimit);
	// past it the pages of the least recently used files are dropped
	// and re-read on demand. 0 means DefaultPageCacheSize(). The memory
	// behind it can reach about twice that (see pagePool).
	PageCacheSize int64
	// ForgetBatch is how many (nodeid, nlookup) pairs the forget batcher
	// collects before sending them at once; 0 means as many as fit one
	// BATCH_FORGET on the hiprio queue (253 with one-page requests, at
	// most 256).
	ForgetBatch int
	// ForgetDelay is how long a forget may wait for others before a
	// partial batch is sent; 0 means DefaultForgetDelay.
	ForgetDelay time.Duration
	// Logger receives a line for each inconsistency the server shows
	// (a changed file type, a failed FORGET); nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock for attribute validity; nil means time.Now. Tests
	// set it to the same fake clock as vfs.Options.Now.
	Now func() time.Time
}

// Stats are counters of a Filesystem, for tests and benchmarks.
type Stats struct {
	// Lookups counts the lookup references taken from the server: each
	// LOOKUP, CREATE, MKNOD, MKDIR, SYMLINK, LINK reply and READDIRPLUS
	// entry with a nodeid.
	Lookups uint64
	// Forgotten is the sum of nlookup given back in FORGET and
	// BATCH_FORGET messages that were sent.
	Forgotten uint64
	// ForgetEntries counts the (nodeid, nlookup) pairs sent.
	ForgetEntries uint64
	// HiprioMessages counts the FORGET and BATCH_FORGET messages sent.
	HiprioMessages uint64
	// Inodes is the number of inodes the client holds now.
	Inodes int
	// Reads and Writes count READ and WRITE requests sent.
	Reads, Writes uint64
	// DirtyBytes is the data buffered by writeback and not yet written.
	DirtyBytes int64
	// CachedBytes is the memory the clean page cache holds, counted
	// against FSOptions.PageCacheSize.
	CachedBytes int64
}

// Filesystem is the FUSE client filesystem: it implements
// vfs.FilesystemImpl over a Conn, with inodes keyed by nodeid, attribute
// and entry validity per cache mode, a page cache, writeback and a forget
// batcher (Linux fs/fuse/dir.c, inode.c, file.c). It is safe for
// concurrent use.
type Filesystem struct {
	conn    *Conn        // immutable
	params  Params       // immutable: negotiated by Init
	opts    FSOptions    // immutable, defaults filled in
	log     *slog.Logger // immutable
	now     func() time.Time
	root    *inode // immutable; nodeid 1, pinned
	forgets *forgetBatcher

	// writeback is whether dirty pages are buffered (immutable).
	writeback bool

	// mu guards inodes, stale, files, closed and the refs, nlookup and
	// dead fields of every inode. It is never held across a request.
	mu sync.Mutex
	// inodes maps a nodeid to its current inode.
	inodes map[uint64]*inode
	// stale holds inodes replaced in inodes by a newer one of the same
	// nodeid (another generation or file type) that still have
	// references.
	stale map[*inode]struct{}
	// files are the open file handles, released by Close if the caller
	// did not: a list linked through fileHandle.prev and next, which
	// costs an open and a release a few stores instead of a map insert
	// and delete.
	files  *fileHandle
	closed bool
	// releases counts RELEASE requests not yet answered; Close and
	// FlushForgets wait for them.
	releases inflight

	// dirtyMu guards dirty, the inodes with dirty pages. Leaf lock.
	dirtyMu sync.Mutex
	dirty   map[*inode]struct{}

	// pages is the budget and free list of the clean page cache.
	pages pagePool

	dirtyBytes atomic.Int64  // sum of the inodes' dirty bytes
	lookups    atomic.Uint64 // Stats.Lookups
	reads      atomic.Uint64 // Stats.Reads
	writes     atomic.Uint64 // Stats.Writes
	nextOwner  atomic.Uint64 // lock owner IDs of open files
	noFlush    atomic.Bool   // the server answered FLUSH with ENOSYS
	noFsync    atomic.Bool   // FSYNC answered ENOSYS
	noFsyncdir atomic.Bool   // FSYNCDIR answered ENOSYS
	noSyncfs   atomic.Bool   // SYNCFS answered ENOSYS
	noLseek    atomic.Bool   // LSEEK answered ENOSYS
	noCreate   atomic.Bool   // CREATE answered ENOSYS
	noSetlkw   atomic.Bool   // SETLKW answered EOPNOTSUPP or ENOSYS: poll SETLK
}

var _ vfs.FilesystemImpl = (*Filesystem)(nil)

// NewFilesystem returns the client filesystem over conn, whose Init must
// have succeeded. The root is nodeid 1 (FUSE_ROOT_ID); its attributes are
// fetched on first use.
//
// Errors: ENOTCONN if conn is not initialized.
func NewFilesystem(conn *Conn, opts FSOptions) (*Filesystem, error) {
	p, ok := conn.Params()
	if !ok {
		return nil, syscall.ENOTCONN
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WritebackLimit <= 0 {
		opts.WritebackLimit = DefaultWritebackLimit
	}
	if opts.ForgetDelay <= 0 {
		opts.ForgetDelay = DefaultForgetDelay
	}
	if opts.PageCacheSize <= 0 {
		opts.PageCacheSize = DefaultPageCacheSize()
	}
	fs := &Filesystem{
		conn:      conn,
		params:    p,
		opts:      opts,
		log:       opts.Logger,
		now:       opts.Now,
		writeback: opts.Writeback && p.Has(InitWritebackCache) && opts.Cache != CacheNone,
		inodes:    make(map[uint64]*inode),
		stale:     make(map[*inode]struct{}),
		dirty:     make(map[*inode]struct{}),
	}
	fs.pages.init(opts.PageCacheSize)
	fs.forgets = newForgetBatcher(conn, opts.ForgetBatch, opts.ForgetDelay, opts.Logger)
	fs.root = fs.newInode(RootID, 0, &Attr{Mode: ModeDir | 0o755, Ino: RootID, Nlink: 2}, 0)
	fs.root.refs = 1 // the pin: vfs never releases the root it is given
	fs.inodes[RootID] = fs.root
	return fs, nil
}

// Root returns the root directory (nodeid 1), to pass to vfs.New. The
// reference is the Filesystem's own: vfs never releases it.
func (fs *Filesystem) Root() vfs.Inode { return fs.root }

// Conn returns the connection the filesystem sends through.
func (fs *Filesystem) Conn() *Conn { return fs.conn }

// Params returns the connection parameters negotiated by FUSE_INIT.
func (fs *Filesystem) Params() Params { return fs.params }

// Options returns the options in force, defaults filled in.
func (fs *Filesystem) Options() FSOptions { return fs.opts }

// WritebackEnabled reports whether writes are buffered (FSOptions.Writeback
// asked for it and the connection negotiated FUSE_WRITEBACK_CACHE).
func (fs *Filesystem) WritebackEnabled() bool { return fs.writeback }

// Stats returns the counters.
func (fs *Filesystem) Stats() Stats {
	fs.mu.Lock()
	n := len(fs.inodes) + len(fs.stale)
	fs.mu.Unlock()
	b := fs.forgets
	return Stats{
		Lookups:        fs.lookups.Load(),
		Forgotten:      b.forgotten.Load(),
		ForgetEntries:  b.entries.Load(),
		HiprioMessages: b.messages.Load(),
		Inodes:         n,
		Reads:          fs.reads.Load(),
		Writes:         fs.writes.Load(),
		DirtyBytes:     fs.dirtyBytes.Load(),
		CachedBytes:    fs.pages.bytes.Load(),
	}
}

// FlushForgets sends the forgets waiting in the batcher now and waits for
// the ones being sent.
func (fs *Filesystem) FlushForgets(ctx context.Context) error {
	fs.releases.wait()
	return fs.forgets.Flush(ctx)
}

// inflight counts background requests and lets callers wait until none is
// left. Leaf lock.
type inflight struct {
	mu   sync.Mutex
	n    int
	idle *sync.Cond // signalled when n drops to 0; created on first use
}

func (c *inflight) add() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

func (c *inflight) done() {
	c.mu.Lock()
	c.n--
	if c.n == 0 && c.idle != nil {
		c.idle.Broadcast()
	}
	c.mu.Unlock()
}

// wait returns once no request counted is left.
func (c *inflight) wait() {
	c.mu.Lock()
	for c.n > 0 {
		if c.idle == nil {
			c.idle = sync.NewCond(&c.mu)
		}
		c.idle.Wait()
	}
	c.mu.Unlock()
}

// Close ends the session: it writes back all dirty data, releases the file
// handles still open, forgets every inode (the root's extra lookups
// included), sends the forgets, and sends FUSE_DESTROY (Linux
// fuse_sb_destroy and fuse_conn_destroy). Call it after
// vfs.VirtualFilesystem.Close and after closing the files; later calls
// into the Filesystem fail with ENOTCONN.
//
// Errors: the first writeback error; the DESTROY's errors; ENOTCONN if
// already closed.
func (fs *Filesystem) Close(ctx context.Context) error {
	fs.mu.Lock()
	if fs.closed {
		fs.mu.Unlock()
		return syscall.ENOTCONN
	}
	fs.mu.Unlock()
	err := fs.syncDirty(ctx)

	fs.mu.Lock()
	var files []*fileHandle
	for f := fs.files; f != nil; f = f.next {
		files = append(files, f)
	}
	fs.mu.Unlock()
	for _, f := range files {
		f.Release(ctx)
	}
	fs.releases.wait()

	fs.mu.Lock()
	fs.closed = true
	var batch []ForgetOne
	forget := func(ino *inode) {
		if ino.nlookup > 0 {
			batch = append(batch, ForgetOne{NodeID: ino.nodeid, Nlookup: ino.nlookup})
		}
		ino.nlookup, ino.dead = 0, true
	}
	for _, ino := range fs.inodes {
		forget(ino)
	}
	for ino := range fs.stale {
		forget(ino)
	}
	clear(fs.inodes)
	clear(fs.stale)
	fs.mu.Unlock()
	for _, f := range batch {
		fs.forgets.add(f.NodeID, f.Nlookup)
	}
	if ferr := fs.forgets.Flush(ctx); err == nil {
		err = ferr
	}
	fs.forgets.close()
	if derr := fs.conn.Destroy(ctx); err == nil {
		err = derr
	}
	return err
}

// isClosed reports whether Close has begun forgetting.
func (fs *Filesystem) isClosed() bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.closed
}

// pid is this process's ID, which requests carry (read once: getpid is a
// system call, and the driver's process never forks).
var pid = uint32(os.Getpid())

// withCreds returns a context whose requests carry creds and this
// process's ID. The context holds the pointer, not a copy (one allocation
// fewer per request): creds must not change while it is in use, as vfs's
// and a fileHandle's do not.
func withCreds(ctx context.Context, creds *vfs.Credentials) context.Context {
	if creds == nil {
		return ctx
	}
	return context.WithValue(ctx, credsKey{}, creds)
}

// inodeOf converts a vfs.Inode handed back by vfs.
func (fs *Filesystem) inodeOf(i vfs.Inode) (*inode, error) {
	ino, ok := i.(*inode)
	if !ok || ino == nil || ino.fs != fs {
		return nil, syscall.EINVAL
	}
	return ino, nil
}

// entryValid is how long vfs may trust a name.
func (fs *Filesystem) entryValid(d time.Duration) time.Duration {
	if fs.opts.Cache == CacheNone {
		return 0
	}
	return d
}

// entry turns a reply carrying a nodeid into a vfs.Entry, taking one
// lookup reference (Linux fuse_iget in fuse_lookup_name and
// create_new_entry).
func (fs *Filesystem) entry(en *Entry) vfs.Entry {
	ino := fs.iget(en)
	e := vfs.Entry{
		Inode: ino,
		Mode:  en.Attr.Mode,
		Valid: fs.entryValid(en.EntryValid),
		// FUSE_SUBMOUNTS is asked for in every INIT; servers never echo
		// it (libfuse: setting it in want has no effect), they just set
		// FUSE_ATTR_SUBMOUNT, as Linux fc->auto_submounts expects.
		Submount: en.Attr.Mode&ModeType == ModeDir && en.Attr.Flags&AttrSubmount != 0,
	}
	if fs.opts.Cache == CacheNone {
		// Getattr would ask the server again: let a stat use these.
		ino.mu.Lock()
		a := ino.attrLocked()
		ino.mu.Unlock()
		e.HasAttr, e.Attr = true, statx(&a)
	}
	return e
}

// Lookup implements vfs.FilesystemImpl.Lookup (FUSE LOOKUP).
func (fs *Filesystem) Lookup(ctx context.Context, creds *vfs.Credentials, dir vfs.Inode, name string) (vfs.Entry, error) {
	d, err := fs.inodeOf(dir)
	if err != nil {
		return vfs.Entry{}, err
	}
	if !d.advisePlus.Load() {
		d.advisePlus.Store(true)
	}
	en, err := fs.conn.lookup(ctx, creds, d.nodeid, name)
	if err == syscall.ENOENT {
		// A negative entry (nodeid 0 with a timeout) may be cached.
		if v := fs.entryValid(en.EntryValid); v > 0 {
			return vfs.Entry{Valid: v}, nil
		}
		return vfs.Entry{}, syscall.ENOENT
	}
	if err != nil {
		return vfs.Entry{}, err
	}
	return fs.entry(&en), nil
}

// Revalidate implements vfs.FilesystemImpl.Revalidate: a LOOKUP of the
// same name (Linux fuse_dentry_revalidate). The same nodeid, generation
// and file type give back the cached inode.
func (fs *Filesystem) Revalidate(ctx context.Context, creds *vfs.Credentials, dir vfs.Inode, name string, cached vfs.Inode) (vfs.Entry, error) {
	return fs.Lookup(ctx, creds, dir, name)
}

// Release implements vfs.FilesystemImpl.Release: one reference fewer; at
// zero the inode leaves the table and its nlookup goes to the forget
// batcher (Linux fuse_evict_inode -> fuse_queue_forget). It never blocks
// on a request.
func (fs *Filesystem) Release(i vfs.Inode) {
	ino, err := fs.inodeOf(i)
	if err != nil {
		fs.log.Error("fuse: Release of a foreign inode", "inode", fmt.Sprintf("%T", i))
		return
	}
	fs.mu.Lock()
	if ino.dead {
		fs.mu.Unlock()
		return
	}
	if ino.refs <= 0 {
		fs.mu.Unlock()
		fs.log.Error("fuse: Release of an unreferenced inode", "nodeid", ino.nodeid)
		return
	}
	ino.refs--
	if ino.refs > 0 {
		fs.mu.Unlock()
		return
	}
	n := ino.nlookup
	ino.nlookup, ino.dead = 0, true
	if fs.inodes[ino.nodeid] == ino {
		delete(fs.inodes, ino.nodeid)
	} else {
		delete(fs.stale, ino)
	}
	fs.mu.Unlock()
	// Nothing can read the pages of an inode nobody references: they go
	// back to the pool now (Linux drops an evicted inode's page cache),
	// not when the LRU scan reaches them.
	ino.mu.Lock()
	ino.cache.invalidateLocked()
	ino.mu.Unlock()
	if n > 0 {
		fs.forgets.add(ino.nodeid, n)
	}
}

// Getattr implements vfs.FilesystemImpl.Getattr (FUSE GETATTR, or the
// attribute cache while valid).
func (fs *Filesystem) Getattr(ctx context.Context, creds *vfs.Credentials, i vfs.Inode) (vfs.Statx, error) {
	ino, err := fs.inodeOf(i)
	if err != nil {
		return vfs.Statx{}, err
	}
	if a, ok := ino.cachedAttr(); ok {
		return statx(&a), nil
	}
	a, err := ino.getattr(ctx, creds, nil, false)
	if err != nil {
		return vfs.Statx{}, err
	}
	return statx(&a), nil
}

// Setattr implements vfs.FilesystemImpl.Setattr (FUSE SETATTR).
func (fs *Filesystem) Setattr(ctx context.Context, creds *vfs.Credentials, i vfs.Inode, opts *vfs.SetStatOptions) (vfs.Statx, error) {
	ino, err := fs.inodeOf(i)
	if err != nil {
		return vfs.Statx{}, err
	}
	return ino.setattr(ctx, creds, nil, opts)
}

// Readlink implements vfs.FilesystemImpl.Readlink (FUSE READLINK). Except
// with CacheNone the target is kept: a symlink's target never changes (a
// new target is a new inode).
func (fs *Filesystem) Readlink(ctx context.Context, creds *vfs.Credentials, i vfs.Inode) (string, error) {
	ino, err := fs.inodeOf(i)
	if err != nil {
		return "", err
	}
	if ino.ftype != ModeLnk {
		return "", syscall.EINVAL
	}
	ino.mu.Lock()
	t := ino.target
	ino.mu.Unlock()
	if t != "" {
		return t, nil
	}
	t, err = fs.conn.Readlink(withCreds(ctx, creds), ino.nodeid)
	if err != nil {
		return "", err
	}
	if fs.opts.Cache != CacheNone {
		ino.mu.Lock()
		ino.target = t
		ino.mu.Unlock()
	}
	return t, nil
}

// Create implements vfs.FilesystemImpl.Create (FUSE CREATE; MKNOD and
// OPEN if the server lacks CREATE, as Linux fuse_atomic_open falls back
// to fuse_mknod). vfs calls it without a LOOKUP first for names it has no
// dentry for, with O_EXCL, so a new file costs one round trip; an
// existing one fails with EEXIST and is looked up and opened instead.
// Without O_EXCL the name was found negative: QEMU 7.2's virtiofsd aborts
// on a CREATE without O_EXCL of an existing file.
func (fs *Filesystem) Create(ctx context.Context, creds *vfs.Credentials, dir vfs.Inode, name string, flags int, mode uint32) (vfs.Entry, vfs.FileDescriptionImpl, error) {
	d, err := fs.inodeOf(dir)
	if err != nil {
		return vfs.Entry{}, nil, err
	}
	mode = mode&0o7777 | ModeReg
	if !fs.noCreate.Load() {
		en, out, err := fs.conn.create(ctx, creds, d.nodeid, name, uint32(flags), mode, 0)
		if err == nil {
			d.invalidateAttr()
			e := fs.entry(&en)
			ino := e.Inode.(*inode)
			return e, fs.newFile(ino, creds, flags&^(syscall.O_CREAT|syscall.O_EXCL|syscall.O_TRUNC), &out, false), nil
		}
		if err != syscall.ENOSYS {
			return vfs.Entry{}, nil, err
		}
		fs.noCreate.Store(true)
	}
	en, err := fs.conn.Mknod(withCreds(ctx, creds), d.nodeid, name, mode, 0, 0)
	if err != nil {
		return vfs.Entry{}, nil, err
	}
	d.invalidateAttr()
	e := fs.entry(&en)
	impl, err := fs.Open(ctx, creds, e.Inode, flags&^(syscall.O_CREAT|syscall.O_EXCL|syscall.O_TRUNC))
	if err != nil {
		fs.Release(e.Inode)
		return vfs.Entry{}, nil, err
	}
	return e, impl, nil
}

// Mknod implements vfs.FilesystemImpl.Mknod (FUSE MKNOD).
func (fs *Filesystem) Mknod(ctx context.Context, creds *vfs.Credentials, dir vfs.Inode, name string, mode uint32, rdev uint32) (vfs.Entry, error) {
	return fs.newEntry(dir, func(d *inode) (Entry, error) {
		return fs.conn.Mknod(withCreds(ctx, creds), d.nodeid, name, mode, rdev, 0)
	})
}

// Mkdir implements vfs.FilesystemImpl.Mkdir (FUSE MKDIR).
func (fs *Filesystem) Mkdir(ctx context.Context, creds *vfs.Credentials, dir vfs.Inode, name string, mode uint32) (vfs.Entry, error) {
	return fs.newEntry(dir, func(d *inode) (Entry, error) {
		return fs.conn.Mkdir(withCreds(ctx, creds), d.nodeid, name, mode&0o7777, 0)
	})
}

// Symlink implements vfs.FilesystemImpl.Symlink (FUSE SYMLINK).
func (fs *Filesystem) Symlink(ctx context.Context, creds *vfs.Credentials, dir vfs.Inode, name string, target string) (vfs.Entry, error) {
	return fs.newEntry(dir, func(d *inode) (Entry, error) {
		return fs.conn.Symlink(withCreds(ctx, creds), d.nodeid, name, target)
	})
}

// Link implements vfs.FilesystemImpl.Link (FUSE LINK). The reply is
// another lookup of the same nodeid, so the same inode gains a reference.
func (fs *Filesystem) Link(ctx context.Context, creds *vfs.Credentials, i vfs.Inode, dir vfs.Inode, name string) (vfs.Entry, error) {
	ino, err := fs.inodeOf(i)
	if err != nil {
		return vfs.Entry{}, err
	}
	e, err := fs.newEntry(dir, func(d *inode) (Entry, error) {
		return fs.conn.Link(withCreds(ctx, creds), ino.nodeid, d.nodeid, name)
	})
	if err == nil {
		ino.invalidateAttr() // nlink and ctime changed
	}
	return e, err
}

// newEntry runs a request that creates a name in dir and converts its
// reply, invalidating dir's attributes (mtime, nlink).
func (fs *Filesystem) newEntry(dir vfs.Inode, req func(d *inode) (Entry, error)) (vfs.Entry, error) {
	d, err := fs.inodeOf(dir)
	if err != nil {
		return vfs.Entry{}, err
	}
	en, err := req(d)
	if err != nil {
		return vfs.Entry{}, err
	}
	d.invalidateAttr()
	return fs.entry(&en), nil
}

// Unlink implements vfs.FilesystemImpl.Unlink (FUSE UNLINK). The parent's
// and the victim's attributes (mtime, nlink) are invalidated, as Linux
// fuse_unlink does with fuse_invalidate_attr and drop_nlink.
func (fs *Filesystem) Unlink(ctx context.Context, creds *vfs.Credentials, dir vfs.Inode, name string, child vfs.Inode) error {
	return fs.remove(ctx, creds, dir, name, child, OpUnlink)
}

// Rmdir implements vfs.FilesystemImpl.Rmdir (FUSE RMDIR).
func (fs *Filesystem) Rmdir(ctx context.Context, creds *vfs.Credentials, dir vfs.Inode, name string, child vfs.Inode) error {
	return fs.remove(ctx, creds, dir, name, child, OpRmdir)
}

// remove sends UNLINK or RMDIR (op).
func (fs *Filesystem) remove(ctx context.Context, creds *vfs.Credentials, dir vfs.Inode, name string, child vfs.Inode, op Opcode) error {
	d, err := fs.inodeOf(dir)
	if err != nil {
		return err
	}
	if err := fs.conn.nameOp(ctx, creds, op, d.nodeid, name); err != nil {
		return err
	}
	d.invalidateAttr()
	if c, err := fs.inodeOf(child); err == nil {
		c.dropNlink()
	}
	return nil
}

// Rename implements vfs.FilesystemImpl.Rename (FUSE RENAME, or RENAME2
// with flags; ENOSYS for RENAME2 becomes EINVAL as in Linux
// fuse_rename2).
func (fs *Filesystem) Rename(ctx context.Context, creds *vfs.Credentials, oldDir vfs.Inode, oldName string, newDir vfs.Inode, newName string, flags uint32, child, replaced vfs.Inode) error {
	od, err := fs.inodeOf(oldDir)
	if err != nil {
		return err
	}
	nd, err := fs.inodeOf(newDir)
	if err != nil {
		return err
	}
	ctx = withCreds(ctx, creds)
	if flags != 0 {
		err = fs.conn.Rename2(ctx, od.nodeid, oldName, nd.nodeid, newName, flags)
		if err == syscall.ENOSYS {
			err = syscall.EINVAL
		}
	} else {
		err = fs.conn.Rename(ctx, od.nodeid, oldName, nd.nodeid, newName)
	}
	if err != nil {
		return err
	}
	od.invalidateAttr()
	nd.invalidateAttr()
	if c, err := fs.inodeOf(child); err == nil {
		c.invalidateAttr() // ctime
	}
	if r, err := fs.inodeOf(replaced); err == nil {
		if flags&renameExchange != 0 {
			r.invalidateAttr()
		} else {
			r.dropNlink()
		}
	}
	return nil
}

// renameExchange is RENAME_EXCHANGE.
const renameExchange = 1 << 1

// Open implements vfs.FilesystemImpl.Open (FUSE OPEN or OPENDIR). O_TRUNC
// goes in the OPEN with FUSE_ATOMIC_O_TRUNC, else as a SETATTR of size 0
// after it (Linux fuse_open_common and fuse_finish_open).
func (fs *Filesystem) Open(ctx context.Context, creds *vfs.Credentials, i vfs.Inode, flags int) (vfs.FileDescriptionImpl, error) {
	ino, err := fs.inodeOf(i)
	if err != nil {
		return nil, err
	}
	flags &^= syscall.O_CREAT | syscall.O_EXCL | syscall.O_NOCTTY
	if ino.ftype == ModeDir {
		out, err := fs.conn.openOp(ctx, creds, OpOpendir, ino.nodeid, uint32(flags))
		if err != nil {
			return nil, err
		}
		return fs.newFile(ino, creds, flags, &out, true), nil
	}
	trunc := flags&syscall.O_TRUNC != 0 && ino.ftype == ModeReg
	oflags := flags
	if trunc && !fs.params.Has(InitAtomicOTrunc) {
		oflags &^= syscall.O_TRUNC
	}
	if trunc {
		ctx = withCreds(ctx, creds) // for the flush; the SETATTR carries f's
		// Dirty data up to now is discarded by the truncation anyway,
		// but write it first so that nothing lands after it.
		if err := ino.flushDirty(ctx); err != nil {
			return nil, err
		}
	}
	out, err := fs.conn.openOp(ctx, creds, OpOpen, ino.nodeid, uint32(oflags))
	if err != nil {
		return nil, err
	}
	f := fs.newFile(ino, creds, flags&^syscall.O_TRUNC, &out, false)
	if trunc {
		if oflags&syscall.O_TRUNC == 0 {
			if _, err := ino.setattr(ctx, creds, f, &vfs.SetStatOptions{Mask: vfs.SetSize}); err != nil {
				f.Release(ctx)
				return nil, err
			}
		} else {
			ino.truncated(0)
		}
	}
	return f, nil
}

// Statfs implements vfs.FilesystemImpl.Statfs (FUSE STATFS).
func (fs *Filesystem) Statfs(ctx context.Context, creds *vfs.Credentials, i vfs.Inode) (vfs.Statfs, error) {
	ino, err := fs.inodeOf(i)
	if err != nil {
		return vfs.Statfs{}, err
	}
	s, err := fs.conn.Statfs(withCreds(ctx, creds), ino.nodeid)
	if err != nil {
		return vfs.Statfs{}, err
	}
	return vfs.Statfs{Blocks: s.Blocks, Bfree: s.Bfree, Bavail: s.Bavail, Files: s.Files, Ffree: s.Ffree,
		Bsize: s.Bsize, Namelen: s.Namelen, Frsize: s.Frsize}, nil
}

// xattrErr maps ENOSYS to EOPNOTSUPP, as Linux does once it has set
// fc->no_getxattr and friends.
func xattrErr(err error) error {
	if err == syscall.ENOSYS {
		return syscall.EOPNOTSUPP
	}
	return err
}

// Getxattr implements vfs.FilesystemImpl.Getxattr: a size probe, then the
// value, again if it grew in between (Linux fuse_getxattr as driven by
// getxattr(2) callers).
func (fs *Filesystem) Getxattr(ctx context.Context, creds *vfs.Credentials, i vfs.Inode, name string) ([]byte, error) {
	ino, err := fs.inodeOf(i)
	if err != nil {
		return nil, err
	}
	ctx = withCreds(ctx, creds)
	for range 4 {
		n, err := fs.conn.Getxattr(ctx, ino.nodeid, name, nil)
		if err != nil {
			return nil, xattrErr(err)
		}
		if n == 0 {
			return []byte{}, nil
		}
		buf := make([]byte, n)
		m, err := fs.conn.Getxattr(ctx, ino.nodeid, name, buf)
		if err == syscall.ERANGE {
			continue
		}
		if err != nil {
			return nil, xattrErr(err)
		}
		return buf[:m], nil
	}
	return nil, syscall.ERANGE
}

// Setxattr implements vfs.FilesystemImpl.Setxattr (FUSE SETXATTR).
func (fs *Filesystem) Setxattr(ctx context.Context, creds *vfs.Credentials, i vfs.Inode, name string, value []byte, flags int) error {
	ino, err := fs.inodeOf(i)
	if err != nil {
		return err
	}
	if err := fs.conn.Setxattr(withCreds(ctx, creds), ino.nodeid, name, value, uint32(flags), 0); err != nil {
		return xattrErr(err)
	}
	ino.invalidateAttr() // ctime
	return nil
}

// Listxattr implements vfs.FilesystemImpl.Listxattr (FUSE LISTXATTR).
func (fs *Filesystem) Listxattr(ctx context.Context, creds *vfs.Credentials, i vfs.Inode) ([]string, error) {
	ino, err := fs.inodeOf(i)
	if err != nil {
		return nil, err
	}
	ctx = withCreds(ctx, creds)
	for range 4 {
		n, err := fs.conn.Listxattr(ctx, ino.nodeid, nil)
		if err != nil {
			return nil, xattrErr(err)
		}
		if n == 0 {
			return nil, nil
		}
		buf := make([]byte, n)
		m, err := fs.conn.Listxattr(ctx, ino.nodeid, buf)
		if err == syscall.ERANGE {
			continue
		}
		if err != nil {
			return nil, xattrErr(err)
		}
		var names []string
		for b := buf[:m]; len(b) > 0; {
			j := 0
			for j < len(b) && b[j] != 0 {
				j++
			}
			names = append(names, string(b[:j]))
			b = b[min(j+1, len(b)):]
		}
		return names, nil
	}
	return nil, syscall.ERANGE
}

// Removexattr implements vfs.FilesystemImpl.Removexattr (FUSE
// REMOVEXATTR).
func (fs *Filesystem) Removexattr(ctx context.Context, creds *vfs.Credentials, i vfs.Inode, name string) error {
	ino, err := fs.inodeOf(i)
	if err != nil {
		return err
	}
	if err := fs.conn.Removexattr(withCreds(ctx, creds), ino.nodeid, name); err != nil {
		return xattrErr(err)
	}
	ino.invalidateAttr()
	return nil
}

// Sync implements vfs.FilesystemImpl.Sync: writeback of every dirty inode,
// then FUSE SYNCFS where the server has it (Linux fuse_sync_fs).
func (fs *Filesystem) Sync(ctx context.Context) error {
	err := fs.syncDirty(ctx)
	if !fs.noSyncfs.Load() {
		serr := fs.conn.Syncfs(ctx, RootID)
		if serr == syscall.ENOSYS {
			fs.noSyncfs.Store(true)
		} else if err == nil {
			err = serr
		}
	}
	return err
}

// syncDirty writes back every inode with dirty pages.
func (fs *Filesystem) syncDirty(ctx context.Context) error {
	fs.dirtyMu.Lock()
	inos := make([]*inode, 0, len(fs.dirty))
	for ino := range fs.dirty {
		inos = append(inos, ino)
	}
	fs.dirtyMu.Unlock()
	var errs []error
	for _, ino := range inos {
		if err := ino.flushDirty(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return firstErrno(errs)
	}
	return nil
}

// firstErrno returns the first error, unwrapped to its syscall.Errno when
// there is one, so that callers comparing with == still work.
func firstErrno(errs []error) error {
	var e syscall.Errno
	if errors.As(errs[0], &e) {
		return e
	}
	return errs[0]
}

// statx converts FUSE attributes for vfs (which fills in Dev).
func statx(a *Attr) vfs.Statx {
	var st vfs.Statx
	fillStatx(&st, a)
	return st
}

// fillStatx is statx into *st.
func fillStatx(st *vfs.Statx, a *Attr) {
	*st = vfs.Statx{
		Ino: a.Ino, Mode: a.Mode, Nlink: a.Nlink, UID: a.UID, GID: a.GID, Rdev: uint64(a.Rdev),
		Size: a.Size, Blocks: a.Blocks, Blksize: a.Blksize, Atime: a.Atime, Mtime: a.Mtime, Ctime: a.Ctime,
	}
}
