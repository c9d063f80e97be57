// Package fuse is the FUSE protocol layer of govirtiofs: the wire codec
// (wire.go, after include/uapi/linux/fuse.h 7.36), the protocol
// connection (conn.go) and one typed call per opcode (ops.go). The client
// filesystem (inodes, caches, readdirplus, forget batching) is built on
// these in the same package.
//
// # Who calls it
//
// vfs/ and the client filesystem call the typed methods of *Conn
// (Lookup, Getattr, Read, Write, ...); dax/ calls Setupmapping and
// Removemapping. Below, a Conn sends through a Sender: driver.Device over
// virtio-fs queues, or fusetest.Server in unit tests. This package never
// imports virtio/; transport limits reach it as data (Limits.MaxPages).
//
// # The Sender contract
//
// Sender.RoundTrip carries one request (the fuse_in_header, already
// filled, then the arguments, possibly as several buffers so that WRITE
// data and READ buffers are not copied) and waits for its reply, written
// into the caller's out buffers; SendHiprio carries FORGET, BATCH_FORGET
// and INTERRUPT, which have no reply. The Sender does not interpret the
// bytes: the Conn assigns unique IDs (steps of 2, never 0, as Linux
// fuse_get_unique) and credentials, and validates every reply as
// untrusted input (Linux "fuse: verify attributes" and the argument size
// checks of fuse_simple_request): header length and unique ID, errno
// range, payload size per opcode, file types, sizes, nodeids, dirent
// names and record lengths, lock ranges, and READ/WRITE counts. Each
// violation is syscall.EIO with one log line naming the opcode and unique
// ID; the server's own errors come back as syscall.Errno, converted in one
// place (replyErrno).
//
// # Lock order
//
//	Conn.initMu (Init only; held across the INIT round trip, before any
//	other request can be sent)
//
// Apart from initMu the Conn has no lock: the unique counter, the
// negotiated Params and the destroyed flag are atomics, so any number of
// goroutines may issue requests at once. No lock of this package is held
// across a RoundTrip other than during Init, and callers must not hold
// locks that a reply path could need: above the FUSE connection none may
// be held across a blocking request.
//
// # The client filesystem
//
// Filesystem (fs.go) implements vfs.FilesystemImpl over a Conn and
// fileHandle (file.go, dir.go) vfs.FileDescriptionImpl, after Linux
// fs/fuse/dir.c, inode.c, file.c and readdir.c. The facade builds it with
// NewFilesystem after Conn.Init, hands Root to vfs.New, and ends the
// session with Close (writeback, release, forget everything, DESTROY).
//
//   - Inodes (inode.go) are keyed by nodeid; one object per (nodeid,
//     generation, file type), so a nodeid that comes back as another
//     generation or type is a new inode (Linux fuse_iget). Each LOOKUP,
//     CREATE, MKNOD, MKDIR, SYMLINK, LINK reply and READDIRPLUS entry is
//     one vfs reference and one nlookup; the last vfs Release sends the
//     whole nlookup to the forget batcher (forget.go), which sends
//     BATCH_FORGET on hiprio when ForgetBatch pairs wait or after
//     ForgetDelay. The root (nodeid 1) is pinned.
//   - Entry and attribute validity follow CacheMode: CacheNone forces 0,
//     CacheAuto and CacheAlways honour the server's timeouts.
//   - File data (cache.go) is cached in 4 KiB pages unless CacheNone or
//     FOPEN_DIRECT_IO; the READ reply buffer itself becomes the pages. A
//     sequential miss doubles the handle's read-ahead window up to
//     max_pages (Linux file_ra_state), a random miss reads only the
//     pages asked for (Linux ondemand_readahead); in CacheAuto a read of 128 KiB or
//     more at a page boundary goes straight into the caller's buffer,
//     uncached, since the next open drops it anyway. CacheAuto drops the pages on open without FOPEN_KEEP_CACHE and
//     when GETATTR shows a new size or mtime; CacheAlways keeps them.
//     Clean pages are bounded by PageCacheSize: before a READ for the
//     cache, the oldest READ buffers of the least recently used inodes
//     (second chance for ones read since) are evicted, and the next READ
//     reuses them from a small free list (single pages, carved from
//     slabs, are all kept there).
//     Writes go through to the server and into the cached pages, unless
//     writeback (writeback.go, FUSE_WRITEBACK_CACHE) buffers them as dirty
//     ranges written back on Flush, Sync, lseek, truncation or past
//     WritebackLimit; the client owns the size while data is dirty.
//   - Directories are listed as Linux READDIRPLUS_AUTO does: READDIRPLUS
//     for the first request of a listing of a small directory (Linux: of
//     any) or after a LOOKUP in the directory, plain READDIR otherwise,
//     in requests growing to
//     max_pages; entries the caller did not take wait for the next call.
//   - RELEASE is sent in the background holding the inode (Linux
//     fuse_file_put), so its FORGET follows it; Close and FlushForgets
//     wait for outstanding RELEASEs. FLUSH is skipped for a handle that
//     wrote nothing and took no POSIX lock (virtiofsd's FLUSH would do
//     nothing for it).
//
// Lock order of the client filesystem:
//
//	inode.flushMu (held across the WRITEs of one writeback)
//	  Filesystem.dirtyMu
//	    inode.mu
//	      pagePool.mu (Filesystem.pages: LRU and free list; a leaf)
//	Filesystem.mu, forgetBatcher.mu, Filesystem.releases.mu,
//	fileHandle.dirs.mu: leaves, never held with another
//
// inode.flushMu is the only lock held across requests, as Linux waits on
// page writeback; Filesystem.mu and inode.mu never are, and Release never
// blocks on a request.
package fuse
