package fuse

import (
	"context"
	"math/bits"
	"strings"
	"sync"
	"syscall"

	"github.com/govirtiofs/govirtiofs/vfs"
)

// This file has one method per FUSE opcode. Each builds its request in a
// buffer sized for that opcode, sends it through the helpers in conn.go,
// and decodes the reply with the validating decoders of wire.go. Errors
// common to all of them: the server's errno as a syscall.Errno; EIO for a
// reply that breaks the protocol (logged); ENOTCONN before Init, after
// Destroy, or when the device is gone; ctx.Err(); E2BIG when the Sender
// cannot carry the request; EINVAL for an argument that cannot be encoded
// (an empty name or one containing NUL).

// checkName rejects names the wire cannot carry: a NUL would end them
// early.
func checkName(name string) error {
	if name == "" || strings.IndexByte(name, 0) >= 0 {
		return syscall.EINVAL
	}
	return nil
}

// putName writes name and its terminating NUL, returning the bytes used.
func putName(b []byte, name string) int {
	n := copy(b, name)
	b[n] = 0
	return n + 1
}

// Lookup looks up name in directory parent (FUSE_LOOKUP). The server
// counts one lookup of the returned nodeid, to be returned with Forget.
//
// Errors: ENOENT with Entry.NodeID 0 and Entry.EntryValid set for a
// negative entry the caller may cache for that long.
func (c *Conn) Lookup(ctx context.Context, parent uint64, name string) (Entry, error) {
	return c.lookup(ctx, nil, parent, name)
}

// lookup is Lookup with the request's credentials, if creds is not nil.
func (c *Conn) lookup(ctx context.Context, creds *vfs.Credentials, parent uint64, name string) (Entry, error) {
	if err := checkName(name); err != nil {
		return Entry{}, err
	}
	r := c.newRequest(OpLookup, parent, len(name)+1, entryOutSize)
	r.creds = creds
	putName(r.args(), name)
	en, err := call(ctx, c, r, func(rep reply) (Entry, error) { return decodeLookup(rep.payload) })
	if err == nil && en.NodeID == 0 {
		return en, syscall.ENOENT
	}
	return en, err
}

// Forget drops nlookup lookups of nodeid (FUSE_FORGET, on the hiprio
// queue, no reply).
func (c *Conn) Forget(ctx context.Context, nodeid, nlookup uint64) error {
	r := c.newRequest(OpForget, nodeid, forgetInSize, 0)
	(&forgetIn{Nlookup: nlookup}).encode(r.args())
	return c.sendHiprio(ctx, r, 0)
}

// batchForgetMax bounds the entries of one BATCH_FORGET.
const batchForgetMax = 256

// BatchForget drops lookups of many nodeids (FUSE_BATCH_FORGET, on the
// hiprio queue, no reply), in requests of at most 256 entries.
func (c *Conn) BatchForget(ctx context.Context, forgets []ForgetOne) error {
	for len(forgets) > 0 {
		n := min(len(forgets), batchForgetMax, (c.limits.MaxPages*pageSize-inHeaderSize-batchForgetInSize)/forgetOneSize)
		n = max(n, 1)
		r := c.newRequest(OpBatchForget, 0, batchForgetInSize+n*forgetOneSize, 0)
		a := r.args()
		(&batchForgetIn{Count: uint32(n)}).encode(a)
		for i := range n {
			forgets[i].encode(a[batchForgetInSize+i*forgetOneSize:])
		}
		if err := c.sendHiprio(ctx, r, 0); err != nil {
			return err
		}
		forgets = forgets[n:]
	}
	return nil
}

// Getattr returns the attributes of nodeid (FUSE_GETATTR); with flags
// GetattrFh the server reads them through open file fh. The caller checks
// that the file type did not change (Linux fuse_change_attributes).
func (c *Conn) Getattr(ctx context.Context, nodeid uint64, flags uint32, fh uint64) (AttrOut, error) {
	return c.getattr(ctx, nil, nodeid, flags, fh)
}

// getattr is Getattr with the request's credentials, if creds is not nil.
func (c *Conn) getattr(ctx context.Context, creds *vfs.Credentials, nodeid uint64, flags uint32, fh uint64) (AttrOut, error) {
	r := c.newRequest(OpGetattr, nodeid, getattrInSize, attrOutSize)
	r.creds = creds
	(&getattrIn{Flags: flags, Fh: fh}).encode(r.args())
	return call(ctx, c, r, decodeAttrOutReply)
}

// decodeAttrOutReply decodes a GETATTR or SETATTR reply.
func decodeAttrOutReply(rep reply) (AttrOut, error) { return decodeAttrOut(rep.payload) }

// Setattr changes the attributes of nodeid named in in.Valid
// (FUSE_SETATTR) and returns the new ones.
func (c *Conn) Setattr(ctx context.Context, nodeid uint64, in SetattrIn) (AttrOut, error) {
	return c.setattr(ctx, nil, nodeid, &in)
}

// setattr is Setattr with the request's credentials, if creds is not nil.
func (c *Conn) setattr(ctx context.Context, creds *vfs.Credentials, nodeid uint64, in *SetattrIn) (AttrOut, error) {
	r := c.newRequest(OpSetattr, nodeid, setattrInSize, attrOutSize)
	r.creds = creds
	in.encode(r.args())
	return call(ctx, c, r, decodeAttrOutReply)
}

// pathMax is PATH_MAX: a symlink target is shorter.
const pathMax = 4096

// Readlink returns the target of symlink nodeid (FUSE_READLINK).
//
// Errors: EIO for an empty target, one containing NUL, or one of PATH_MAX
// bytes or more.
func (c *Conn) Readlink(ctx context.Context, nodeid uint64) (string, error) {
	r := c.newRequest(OpReadlink, nodeid, 0, 0)
	r.outData = make([]byte, pathMax)
	return call(ctx, c, r, func(rep reply) (string, error) {
		t := r.outData[:rep.dataN]
		if len(t) == 0 || len(t) >= pathMax {
			return "", badReply("readlink: target of %d bytes", len(t))
		}
		if strings.IndexByte(string(t), 0) >= 0 {
			return "", badReply("readlink: target contains NUL")
		}
		return string(t), nil
	})
}

// Symlink creates symlink name in parent pointing to target
// (FUSE_SYMLINK).
func (c *Conn) Symlink(ctx context.Context, parent uint64, name, target string) (Entry, error) {
	if err := checkName(name); err != nil {
		return Entry{}, err
	}
	if err := checkName(target); err != nil {
		return Entry{}, err
	}
	r := c.newRequest(OpSymlink, parent, len(name)+1+len(target)+1, entryOutSize)
	a := r.args()
	n := putName(a, name)
	putName(a[n:], target)
	return call(ctx, c, r, func(rep reply) (Entry, error) { return decodeNewEntry(rep.payload, ModeLnk) })
}

// Mknod creates node name in parent with mode (file type and
// permissions) and device rdev (FUSE_MKNOD).
func (c *Conn) Mknod(ctx context.Context, parent uint64, name string, mode, rdev, umask uint32) (Entry, error) {
	if err := checkName(name); err != nil {
		return Entry{}, err
	}
	r := c.newRequest(OpMknod, parent, mknodInSize+len(name)+1, entryOutSize)
	a := r.args()
	(&mknodIn{Mode: mode, Rdev: rdev, Umask: umask}).encode(a)
	putName(a[mknodInSize:], name)
	want := mode & ModeType
	if want == 0 {
		want = ModeReg // mknod(2): a zero type is a regular file
	}
	return call(ctx, c, r, func(rep reply) (Entry, error) { return decodeNewEntry(rep.payload, want) })
}

// Mkdir creates directory name in parent (FUSE_MKDIR).
func (c *Conn) Mkdir(ctx context.Context, parent uint64, name string, mode, umask uint32) (Entry, error) {
	if err := checkName(name); err != nil {
		return Entry{}, err
	}
	r := c.newRequest(OpMkdir, parent, mkdirInSize+len(name)+1, entryOutSize)
	a := r.args()
	(&mkdirIn{Mode: mode, Umask: umask}).encode(a)
	putName(a[mkdirInSize:], name)
	return call(ctx, c, r, func(rep reply) (Entry, error) { return decodeNewEntry(rep.payload, ModeDir) })
}

// nameOp sends a request whose only argument is a name and whose reply is
// empty.
// The request carries creds, if not nil.
func (c *Conn) nameOp(ctx context.Context, creds *vfs.Credentials, op Opcode, nodeid uint64, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	r := c.newRequest(op, nodeid, len(name)+1, 0)
	r.creds = creds
	putName(r.args(), name)
	return c.callEmpty(ctx, r)
}

// Unlink removes the non-directory name from parent (FUSE_UNLINK).
func (c *Conn) Unlink(ctx context.Context, parent uint64, name string) error {
	return c.nameOp(ctx, nil, OpUnlink, parent, name)
}

// Rmdir removes the empty directory name from parent (FUSE_RMDIR).
func (c *Conn) Rmdir(ctx context.Context, parent uint64, name string) error {
	return c.nameOp(ctx, nil, OpRmdir, parent, name)
}

// renameOp encodes RENAME (argSize 8) and RENAME2 (16).
func (c *Conn) renameOp(ctx context.Context, op Opcode, argSize int, olddir uint64, oldname string, newdir uint64, newname string, flags uint32) error {
	if err := checkName(oldname); err != nil {
		return err
	}
	if err := checkName(newname); err != nil {
		return err
	}
	r := c.newRequest(op, olddir, argSize+len(oldname)+1+len(newname)+1, 0)
	a := r.args()
	var fixed [rename2InSize]byte
	(&rename2In{Newdir: newdir, Flags: flags}).encode(fixed[:])
	copy(a, fixed[:argSize])
	n := argSize + putName(a[argSize:], oldname)
	putName(a[n:], newname)
	return c.callEmpty(ctx, r)
}

// Rename moves olddir/oldname to newdir/newname (FUSE_RENAME).
func (c *Conn) Rename(ctx context.Context, olddir uint64, oldname string, newdir uint64, newname string) error {
	return c.renameOp(ctx, OpRename, renameInSize, olddir, oldname, newdir, newname, 0)
}

// Rename2 is Rename with renameat2(2) flags (RENAME_NOREPLACE,
// RENAME_EXCHANGE, RENAME_WHITEOUT) (FUSE_RENAME2). There is no fallback:
// a server without RENAME2 answers ENOSYS, and the caller decides (Linux
// turns that into EINVAL for flags != 0).
func (c *Conn) Rename2(ctx context.Context, olddir uint64, oldname string, newdir uint64, newname string, flags uint32) error {
	return c.renameOp(ctx, OpRename2, rename2InSize, olddir, oldname, newdir, newname, flags)
}

// Link creates newname in newparent as a hard link to oldnodeid
// (FUSE_LINK). The server counts one more lookup of oldnodeid.
func (c *Conn) Link(ctx context.Context, oldnodeid, newparent uint64, newname string) (Entry, error) {
	if err := checkName(newname); err != nil {
		return Entry{}, err
	}
	r := c.newRequest(OpLink, newparent, linkInSize+len(newname)+1, entryOutSize)
	a := r.args()
	(&linkIn{OldNodeID: oldnodeid}).encode(a)
	putName(a[linkInSize:], newname)
	return call(ctx, c, r, func(rep reply) (Entry, error) { return decodeNewEntry(rep.payload, 0) })
}

func (c *Conn) openOp(ctx context.Context, creds *vfs.Credentials, op Opcode, nodeid uint64, flags uint32) (OpenOut, error) {
	r := c.newRequest(op, nodeid, openInSize, openOutSize)
	r.creds = creds
	(&openIn{Flags: flags}).encode(r.args())
	return call(ctx, c, r, func(rep reply) (OpenOut, error) { return decodeOpenOut(rep.payload) })
}

// Open opens file nodeid with open(2) flags (no O_CREAT, O_EXCL, O_NOCTTY)
// (FUSE_OPEN).
func (c *Conn) Open(ctx context.Context, nodeid uint64, flags uint32) (OpenOut, error) {
	return c.openOp(ctx, nil, OpOpen, nodeid, flags)
}

// Opendir opens directory nodeid (FUSE_OPENDIR).
func (c *Conn) Opendir(ctx context.Context, nodeid uint64, flags uint32) (OpenOut, error) {
	return c.openOp(ctx, nil, OpOpendir, nodeid, flags)
}

// maxIO is the largest READ or WRITE data this connection allows.
func (c *Conn) maxIO() int {
	if p := c.params.Load(); p != nil {
		return p.MaxPages * pageSize
	}
	return 0
}

// Read reads up to len(buf) bytes of open file fh at in.Offset straight
// into buf (FUSE_READ) and returns how many the server wrote; fewer than
// asked means end of file (or a direct-I/O short read).
//
// Errors: EINVAL if len(buf) exceeds Params.MaxPages*4096.
func (c *Conn) Read(ctx context.Context, nodeid uint64, in ReadIn, buf []byte) (int, error) {
	return c.read(ctx, nil, nodeid, in, buf)
}

// read is Read with the request's credentials, if creds is not nil.
func (c *Conn) read(ctx context.Context, creds *vfs.Credentials, nodeid uint64, in ReadIn, buf []byte) (int, error) {
	if len(buf) > c.maxIO() {
		if err := c.ready(OpRead); err != nil {
			return 0, err
		}
		return 0, syscall.EINVAL
	}
	r := c.newRequest(OpRead, nodeid, readInSize, 0)
	r.creds = creds
	in.encode(r.args(), uint32(len(buf)))
	r.outData = buf
	return call(ctx, c, r, func(rep reply) (int, error) { return rep.dataN, nil })
}

// Write writes data to open file fh at in.Offset (FUSE_WRITE), sending
// data without copying it, and returns how many bytes the server wrote.
//
// Errors: EINVAL if len(data) exceeds Params.MaxWrite; EIO if the server
// claims more than len(data).
func (c *Conn) Write(ctx context.Context, nodeid uint64, in WriteIn, data []byte) (int, error) {
	return c.write(ctx, nil, nodeid, in, data)
}

// write is Write with the request's credentials, if creds is not nil.
func (c *Conn) write(ctx context.Context, creds *vfs.Credentials, nodeid uint64, in WriteIn, data []byte) (int, error) {
	if p := c.params.Load(); p != nil && len(data) > int(p.MaxWrite) {
		return 0, syscall.EINVAL
	}
	r := c.newRequest(OpWrite, nodeid, writeInSize, writeOutSize)
	r.creds = creds
	in.encode(r.args(), uint32(len(data)))
	r.data = data
	n, err := call(ctx, c, r, func(rep reply) (uint32, error) { return decodeWriteOut(rep.payload, uint64(len(data))) })
	return int(n), err
}

// Statfs returns file system statistics (FUSE_STATFS).
func (c *Conn) Statfs(ctx context.Context, nodeid uint64) (Statfs, error) {
	r := c.newRequest(OpStatfs, nodeid, 0, kstatfsSize)
	return call(ctx, c, r, func(rep reply) (Statfs, error) { return decodeStatfs(rep.payload) })
}

// Release closes open file in.Fh (FUSE_RELEASE).
func (c *Conn) Release(ctx context.Context, nodeid uint64, in ReleaseIn) error {
	r := c.newRequest(OpRelease, nodeid, releaseInSize, 0)
	in.encode(r.args())
	return c.callEmpty(ctx, r)
}

// Releasedir closes open directory in.Fh (FUSE_RELEASEDIR).
func (c *Conn) Releasedir(ctx context.Context, nodeid uint64, in ReleaseIn) error {
	r := c.newRequest(OpReleasedir, nodeid, releaseInSize, 0)
	in.encode(r.args())
	return c.callEmpty(ctx, r)
}

// releaseBackground sends RELEASE or RELEASEDIR (op) as Release and
// Releasedir do, without waiting for the reply (Linux fuse_file_put's
// fuse_simple_background): done gets what they would have returned. The
// request carries creds.
func (c *Conn) releaseBackground(ctx context.Context, creds *vfs.Credentials, op Opcode, nodeid uint64, in ReleaseIn, done backgroundWaiter) {
	r := c.newRequest(op, nodeid, releaseInSize, 0)
	r.creds = creds
	in.encode(r.args())
	c.background(ctx, r, done)
}

func (c *Conn) fsyncOp(ctx context.Context, op Opcode, nodeid, fh uint64, flags uint32) error {
	r := c.newRequest(op, nodeid, fsyncInSize, 0)
	(&fsyncIn{Fh: fh, FsyncFlags: flags}).encode(r.args())
	return c.callEmpty(ctx, r)
}

// Fsync flushes open file fh to stable storage (FUSE_FSYNC); flags
// FsyncFdatasync for fdatasync(2).
func (c *Conn) Fsync(ctx context.Context, nodeid, fh uint64, flags uint32) error {
	return c.fsyncOp(ctx, OpFsync, nodeid, fh, flags)
}

// Fsyncdir flushes open directory fh (FUSE_FSYNCDIR).
func (c *Conn) Fsyncdir(ctx context.Context, nodeid, fh uint64, flags uint32) error {
	return c.fsyncOp(ctx, OpFsyncdir, nodeid, fh, flags)
}

// Setxattr sets extended attribute name of nodeid to value
// (FUSE_SETXATTR); flags are XATTR_CREATE / XATTR_REPLACE. setxattrFlags
// (SetxattrACLKillSGID) are sent only if FUSE_SETXATTR_EXT was negotiated.
func (c *Conn) Setxattr(ctx context.Context, nodeid uint64, name string, value []byte, flags, setxattrFlags uint32) error {
	if err := checkName(name); err != nil {
		return err
	}
	p := c.params.Load()
	ext := p != nil && p.Has(InitSetxattrExt)
	fixed := setxattrInCompatSize
	if ext {
		fixed = setxattrInSize
	}
	r := c.newRequest(OpSetxattr, nodeid, fixed+len(name)+1, 0)
	a := r.args()
	(&setxattrIn{Size: uint32(len(value)), Flags: flags, SetxattrFlags: setxattrFlags}).encode(a, ext)
	putName(a[fixed:], name)
	r.data = value
	return c.callEmpty(ctx, r)
}

// xattrQuery sends GETXATTR or LISTXATTR: with an empty buf the reply is
// the size needed, else the data in buf.
func (c *Conn) xattrQuery(ctx context.Context, op Opcode, nodeid uint64, name string, buf []byte) (int, error) {
	nameLen := 0
	if op == OpGetxattr {
		if err := checkName(name); err != nil {
			return 0, err
		}
		nameLen = len(name) + 1
	}
	if len(buf) > xattrSizeMax {
		buf = buf[:xattrSizeMax]
	}
	replySize := 0
	if len(buf) == 0 {
		replySize = getxattrOutSize
	}
	r := c.newRequest(op, nodeid, getxattrInSize+nameLen, replySize)
	a := r.args()
	(&getxattrIn{Size: uint32(len(buf))}).encode(a)
	if nameLen > 0 {
		putName(a[getxattrInSize:], name)
	}
	r.outData = buf
	return call(ctx, c, r, func(rep reply) (int, error) {
		if len(buf) == 0 {
			return decodeGetxattrOut(rep.payload)
		}
		if op == OpListxattr {
			if err := validateXattrList(buf[:rep.dataN]); err != nil {
				return 0, err
			}
		}
		return rep.dataN, nil
	})
}

// Getxattr reads extended attribute name of nodeid into buf
// (FUSE_GETXATTR) and returns its length; with an empty buf it returns
// the length only.
//
// Errors: ERANGE if buf is too small; ENODATA if there is no such
// attribute.
func (c *Conn) Getxattr(ctx context.Context, nodeid uint64, name string, buf []byte) (int, error) {
	return c.xattrQuery(ctx, OpGetxattr, nodeid, name, buf)
}

// Listxattr reads the NUL-separated names of nodeid's extended attributes
// into buf (FUSE_LISTXATTR); with an empty buf it returns the length only.
//
// Errors: ERANGE if buf is too small; EIO if the list is malformed.
func (c *Conn) Listxattr(ctx context.Context, nodeid uint64, buf []byte) (int, error) {
	return c.xattrQuery(ctx, OpListxattr, nodeid, "", buf)
}

// Removexattr removes extended attribute name of nodeid
// (FUSE_REMOVEXATTR).
func (c *Conn) Removexattr(ctx context.Context, nodeid uint64, name string) error {
	return c.nameOp(ctx, nil, OpRemovexattr, nodeid, name)
}

// Flush is sent on each close(2) of open file fh (FUSE_FLUSH).
func (c *Conn) Flush(ctx context.Context, nodeid, fh, lockOwner uint64) error {
	return c.flush(ctx, nil, nodeid, fh, lockOwner)
}

// flush is Flush with the request's credentials, if creds is not nil.
func (c *Conn) flush(ctx context.Context, creds *vfs.Credentials, nodeid, fh, lockOwner uint64) error {
	r := c.newRequest(OpFlush, nodeid, flushInSize, 0)
	r.creds = creds
	(&flushIn{Fh: fh, LockOwner: lockOwner}).encode(r.args())
	return c.callEmpty(ctx, r)
}

// readdirBuf builds a READDIR or READDIRPLUS asking for size bytes, its
// reply buffer from dirBufs.
func (c *Conn) readdirBuf(op Opcode, nodeid uint64, in ReadIn, size int) (*request, *[]byte, error) {
	if size <= 0 || size > c.maxIO() {
		if err := c.ready(op); err != nil {
			return nil, nil, err
		}
		return nil, nil, syscall.EINVAL
	}
	r := c.newRequest(op, nodeid, readInSize, 0)
	in.encode(r.args(), uint32(size))
	buf := getDirBuf(size)
	r.outData = (*buf)[:size]
	return r, buf, nil
}

// dirBufs recycles READDIR reply buffers by size class: class i holds
// buffers of pageSize<<i bytes. A listing of 5000 names used to allocate
// and clear 388 KiB; the decoders copy what they keep, so a buffer goes
// back as soon as its reply is decoded. The buffers are never cleared: the
// decoders read only the bytes the server wrote.
var dirBufs [dirBufClasses]sync.Pool

// dirBufClasses covers replies up to 128 MiB (pageSize<<15).
const dirBufClasses = 16

// dirBufClass returns the class of buffers of at least size bytes, or -1
// if size is beyond the largest.
func dirBufClass(size int) int {
	if size <= pageSize {
		return 0
	}
	i := bits.Len(uint(size-1)) - bits.Len(pageSize-1)
	if i >= dirBufClasses {
		return -1
	}
	return i
}

// getDirBuf returns a buffer of at least size bytes.
func getDirBuf(size int) *[]byte {
	i := dirBufClass(size)
	if i < 0 {
		b := make([]byte, size)
		return &b
	}
	if b, ok := dirBufs[i].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, pageSize<<i)
	return &b
}

// putDirBuf gives back a buffer from getDirBuf. The caller must not use
// it afterwards.
func putDirBuf(b *[]byte) {
	if i := dirBufClass(cap(*b)); i >= 0 && cap(*b) == pageSize<<i {
		dirBufs[i].Put(b)
	}
}

// Readdir reads entries of open directory in.Fh from cookie in.Offset
// (FUSE_READDIR), asking for at most size bytes of them (at most
// Params.MaxPages*4096; Linux asks for one page). An empty result is the
// end of the directory.
func (c *Conn) Readdir(ctx context.Context, nodeid uint64, in ReadIn, size int) ([]Dirent, error) {
	r, buf, err := c.readdirBuf(OpReaddir, nodeid, in, size)
	if err != nil {
		return nil, err
	}
	return call(ctx, c, r, func(rep reply) ([]Dirent, error) {
		ents, err := decodeDirents(r.outData[:rep.dataN])
		putDirBuf(buf)
		return ents, err
	})
}

// Readdirplus is Readdir with a lookup of each entry
// (FUSE_READDIRPLUS); see DirentPlus for which entries count as lookups.
func (c *Conn) Readdirplus(ctx context.Context, nodeid uint64, in ReadIn, size int) ([]DirentPlus, error) {
	r, buf, err := c.readdirBuf(OpReaddirplus, nodeid, in, size)
	if err != nil {
		return nil, err
	}
	return call(ctx, c, r, func(rep reply) ([]DirentPlus, error) {
		ents, err := decodeDirentsPlus(r.outData[:rep.dataN])
		putDirBuf(buf)
		return ents, err
	})
}

// Getlk tests for a lock conflicting with in.Lk (FUSE_GETLK) and returns
// it, or a lock of type LockUnlock if there is none.
func (c *Conn) Getlk(ctx context.Context, nodeid uint64, in LkIn) (FileLock, error) {
	r := c.newRequest(OpGetlk, nodeid, lkInSize, lkOutSize)
	in.encode(r.args())
	return call(ctx, c, r, func(rep reply) (FileLock, error) { return decodeLkOut(rep.payload) })
}

// Setlk acquires or releases a lock without waiting (FUSE_SETLK).
//
// Errors: EAGAIN if a conflicting lock is held.
func (c *Conn) Setlk(ctx context.Context, nodeid uint64, in LkIn) error {
	r := c.newRequest(OpSetlk, nodeid, lkInSize, 0)
	in.encode(r.args())
	return c.callEmpty(ctx, r)
}

// Setlkw acquires a lock, waiting for conflicting ones (FUSE_SETLKW).
func (c *Conn) Setlkw(ctx context.Context, nodeid uint64, in LkIn) error {
	r := c.newRequest(OpSetlkw, nodeid, lkInSize, 0)
	in.encode(r.args())
	return c.callEmpty(ctx, r)
}

// Access checks access(2) mask (R_OK, W_OK, X_OK) for nodeid
// (FUSE_ACCESS).
func (c *Conn) Access(ctx context.Context, nodeid uint64, mask uint32) error {
	r := c.newRequest(OpAccess, nodeid, accessInSize, 0)
	(&accessIn{Mask: mask}).encode(r.args())
	return c.callEmpty(ctx, r)
}

// Create atomically creates and opens regular file name in parent
// (FUSE_CREATE); flags are the open(2) flags, mode the permissions.
//
// Preconditions: as Linux fuse_atomic_open, send CREATE only for a name a
// LOOKUP found missing, or with O_EXCL; for an existing name use LOOKUP
// and OPEN. QEMU 7.2's virtiofsd aborts (glibc "O_CREAT without mode")
// on a CREATE without O_EXCL of an existing file.
func (c *Conn) Create(ctx context.Context, parent uint64, name string, flags, mode, umask uint32) (Entry, OpenOut, error) {
	return c.create(ctx, nil, parent, name, flags, mode, umask)
}

// create is Create with the request's credentials, if creds is not nil.
func (c *Conn) create(ctx context.Context, creds *vfs.Credentials, parent uint64, name string, flags, mode, umask uint32) (Entry, OpenOut, error) {
	if err := checkName(name); err != nil {
		return Entry{}, OpenOut{}, err
	}
	r := c.newRequest(OpCreate, parent, createInSize+len(name)+1, entryOutSize+openOutSize)
	r.creds = creds
	a := r.args()
	(&createIn{Flags: flags, Mode: mode, Umask: umask}).encode(a)
	putName(a[createInSize:], name)
	type created struct {
		e Entry
		o OpenOut
	}
	v, err := call(ctx, c, r, func(rep reply) (created, error) {
		e, o, err := decodeCreate(rep.payload)
		return created{e, o}, err
	})
	return v.e, v.o, err
}

// Interrupt asks the server to interrupt the request with ID unique
// (FUSE_INTERRUPT, on the hiprio queue, no reply). Its own ID is unique
// with the low bit set, as Linux sends it.
//
// Errors: ENOSYS, without sending anything, unless
// ConnOptions.SendInterrupts is set (see there why).
func (c *Conn) Interrupt(ctx context.Context, unique uint64) error {
	if !c.opts.SendInterrupts {
		if err := c.ready(OpInterrupt); err != nil {
			return err
		}
		return syscall.ENOSYS
	}
	r := c.newRequest(OpInterrupt, 0, interruptInSize, 0)
	(&interruptIn{Unique: unique}).encode(r.args())
	return c.sendHiprio(ctx, r, unique|1)
}

// Fallocate allocates or deallocates space of open file fh (FUSE_FALLOCATE);
// mode as fallocate(2) (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE...).
func (c *Conn) Fallocate(ctx context.Context, nodeid, fh, offset, length uint64, mode uint32) error {
	r := c.newRequest(OpFallocate, nodeid, fallocateInSize, 0)
	(&fallocateIn{Fh: fh, Offset: offset, Length: length, Mode: mode}).encode(r.args())
	return c.callEmpty(ctx, r)
}

// Lseek finds data or a hole in open file fh from offset (FUSE_LSEEK);
// whence is SEEK_DATA or SEEK_HOLE (the others need no server).
//
// Errors: ENXIO if there is no data or hole after offset.
func (c *Conn) Lseek(ctx context.Context, nodeid, fh, offset uint64, whence uint32) (uint64, error) {
	r := c.newRequest(OpLseek, nodeid, lseekInSize, lseekOutSize)
	(&lseekIn{Fh: fh, Offset: offset, Whence: whence}).encode(r.args())
	return call(ctx, c, r, func(rep reply) (uint64, error) { return decodeLseekOut(rep.payload) })
}

// CopyFileRange copies in.Len bytes from nodeid's open file in.FhIn to
// in.NodeIDOut's in.FhOut inside the server (FUSE_COPY_FILE_RANGE) and
// returns how many it copied.
func (c *Conn) CopyFileRange(ctx context.Context, nodeid uint64, in CopyFileRangeIn) (int, error) {
	r := c.newRequest(OpCopyFileRange, nodeid, copyFileRangeInSize, writeOutSize)
	in.encode(r.args())
	n, err := call(ctx, c, r, func(rep reply) (uint32, error) { return decodeWriteOut(rep.payload, in.Len) })
	return int(n), err
}

// Syncfs flushes the whole file system of nodeid (FUSE_SYNCFS).
func (c *Conn) Syncfs(ctx context.Context, nodeid uint64) error {
	r := c.newRequest(OpSyncfs, nodeid, syncfsInSize, 0)
	return c.callEmpty(ctx, r)
}

// Destroy ends the session (FUSE_DESTROY). Afterwards every request fails
// with ENOTCONN.
func (c *Conn) Destroy(ctx context.Context) error {
	r := c.newRequest(OpDestroy, 0, 0, 0)
	err := c.callEmpty(ctx, r)
	c.dead.Store(true) // even on error: the session is being torn down
	return err
}

// Setupmapping maps a range of open file in.Fh into the DAX window
// (FUSE_SETUPMAPPING).
func (c *Conn) Setupmapping(ctx context.Context, nodeid uint64, in SetupmappingIn) error {
	r := c.newRequest(OpSetupmapping, nodeid, setupmappingInSize, 0)
	in.encode(r.args())
	return c.callEmpty(ctx, r)
}

// Removemapping unmaps ranges of the DAX window (FUSE_REMOVEMAPPING), in
// requests of at most 256 ranges (FUSE_REMOVEMAPPING_MAX_ENTRY).
func (c *Conn) Removemapping(ctx context.Context, nodeid uint64, ranges []RemovemappingOne) error {
	for len(ranges) > 0 {
		n := min(len(ranges), removemappingMax)
		r := c.newRequest(OpRemovemapping, nodeid, removemappingInSize+n*removemappingOneSize, 0)
		a := r.args()
		(&removemappingIn{Count: uint32(n)}).encode(a)
		for i := range n {
			ranges[i].encode(a[removemappingInSize+i*removemappingOneSize:])
		}
		if err := c.callEmpty(ctx, r); err != nil {
			return err
		}
		ranges = ranges[n:]
	}
	return nil
}
