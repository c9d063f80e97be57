package fuse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unsafe"

	"github.com/govirtiofs/govirtiofs/vfs"
	"gvisor.dev/gvisor/pkg/abi/linux"
)

// This file is the FUSE wire format after include/uapi/linux/fuse.h,
// protocol 7.36. Every struct is encoded and decoded field by field in
// little endian (virtio-fs is little endian on every architecture, virtio
// spec 1.2 section 5.11.6), so the layout is visible in one place and a
// short buffer from the host is an error, never a panic. gVisor's
// pkg/abi/linux has some of these structs at minor 31; wire_test.go checks
// that the layouts that exist there agree with these.

// Opcode is a FUSE request opcode (enum fuse_opcode).
type Opcode uint32

// The opcodes this client sends. Values from gVisor where it has them.
const (
	OpLookup        Opcode = Opcode(linux.FUSE_LOOKUP)
	OpForget        Opcode = linux.FUSE_FORGET
	OpGetattr       Opcode = linux.FUSE_GETATTR
	OpSetattr       Opcode = linux.FUSE_SETATTR
	OpReadlink      Opcode = linux.FUSE_READLINK
	OpSymlink       Opcode = linux.FUSE_SYMLINK
	OpMknod         Opcode = linux.FUSE_MKNOD
	OpMkdir         Opcode = linux.FUSE_MKDIR
	OpUnlink        Opcode = linux.FUSE_UNLINK
	OpRmdir         Opcode = linux.FUSE_RMDIR
	OpRename        Opcode = linux.FUSE_RENAME
	OpLink          Opcode = linux.FUSE_LINK
	OpOpen          Opcode = linux.FUSE_OPEN
	OpRead          Opcode = linux.FUSE_READ
	OpWrite         Opcode = linux.FUSE_WRITE
	OpStatfs        Opcode = linux.FUSE_STATFS
	OpRelease       Opcode = linux.FUSE_RELEASE
	OpFsync         Opcode = linux.FUSE_FSYNC
	OpSetxattr      Opcode = linux.FUSE_SETXATTR
	OpGetxattr      Opcode = linux.FUSE_GETXATTR
	OpListxattr     Opcode = linux.FUSE_LISTXATTR
	OpRemovexattr   Opcode = linux.FUSE_REMOVEXATTR
	OpFlush         Opcode = linux.FUSE_FLUSH
	OpInit          Opcode = linux.FUSE_INIT
	OpOpendir       Opcode = linux.FUSE_OPENDIR
	OpReaddir       Opcode = linux.FUSE_READDIR
	OpReleasedir    Opcode = linux.FUSE_RELEASEDIR
	OpFsyncdir      Opcode = linux.FUSE_FSYNCDIR
	OpGetlk         Opcode = linux.FUSE_GETLK
	OpSetlk         Opcode = linux.FUSE_SETLK
	OpSetlkw        Opcode = linux.FUSE_SETLKW
	OpAccess        Opcode = linux.FUSE_ACCESS
	OpCreate        Opcode = linux.FUSE_CREATE
	OpInterrupt     Opcode = linux.FUSE_INTERRUPT
	OpDestroy       Opcode = linux.FUSE_DESTROY
	OpBatchForget   Opcode = linux.FUSE_BATCH_FORGET
	OpFallocate     Opcode = linux.FUSE_FALLOCATE
	OpReaddirplus   Opcode = 44
	OpRename2       Opcode = 45
	OpLseek         Opcode = 46
	OpCopyFileRange Opcode = 47
	OpSetupmapping  Opcode = 48
	OpRemovemapping Opcode = 49
	OpSyncfs        Opcode = 50
)

var opNames = map[Opcode]string{
	OpLookup: "LOOKUP", OpForget: "FORGET", OpGetattr: "GETATTR", OpSetattr: "SETATTR",
	OpReadlink: "READLINK", OpSymlink: "SYMLINK", OpMknod: "MKNOD", OpMkdir: "MKDIR",
	OpUnlink: "UNLINK", OpRmdir: "RMDIR", OpRename: "RENAME", OpLink: "LINK", OpOpen: "OPEN",
	OpRead: "READ", OpWrite: "WRITE", OpStatfs: "STATFS", OpRelease: "RELEASE", OpFsync: "FSYNC",
	OpSetxattr: "SETXATTR", OpGetxattr: "GETXATTR", OpListxattr: "LISTXATTR",
	OpRemovexattr: "REMOVEXATTR", OpFlush: "FLUSH", OpInit: "INIT", OpOpendir: "OPENDIR",
	OpReaddir: "READDIR", OpReleasedir: "RELEASEDIR", OpFsyncdir: "FSYNCDIR", OpGetlk: "GETLK",
	OpSetlk: "SETLK", OpSetlkw: "SETLKW", OpAccess: "ACCESS", OpCreate: "CREATE",
	OpInterrupt: "INTERRUPT", OpDestroy: "DESTROY", OpBatchForget: "BATCH_FORGET",
	OpFallocate: "FALLOCATE", OpReaddirplus: "READDIRPLUS", OpRename2: "RENAME2",
	OpLseek: "LSEEK", OpCopyFileRange: "COPY_FILE_RANGE", OpSetupmapping: "SETUPMAPPING",
	OpRemovemapping: "REMOVEMAPPING", OpSyncfs: "SYNCFS",
}

// String returns the opcode's name as fuse.h spells it, without FUSE_.
func (o Opcode) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return fmt.Sprintf("OPCODE_%d", uint32(o))
}

// Protocol version spoken by this client.
const (
	KernelVersion      = 7
	KernelMinorVersion = 36
	// MinServerMinor is the oldest server minor accepted; virtiofsd
	// itself refuses clients older than 7.31.
	MinServerMinor = 31
)

// RootID is the nodeid of the root directory (FUSE_ROOT_ID).
const RootID = linux.FUSE_ROOT_ID

// NameMax is the longest name a dirent may carry (FUSE_NAME_MAX).
const NameMax = linux.FUSE_NAME_MAX

// FUSE_INIT flags (fuse_init_in.flags | fuse_init_in.flags2<<32).
const (
	InitAsyncRead         uint64 = 1 << 0
	InitPosixLocks        uint64 = 1 << 1
	InitFileOps           uint64 = 1 << 2
	InitAtomicOTrunc      uint64 = 1 << 3
	InitExportSupport     uint64 = 1 << 4
	InitBigWrites         uint64 = 1 << 5
	InitDontMask          uint64 = 1 << 6
	InitSpliceWrite       uint64 = 1 << 7
	InitSpliceMove        uint64 = 1 << 8
	InitSpliceRead        uint64 = 1 << 9
	InitFlockLocks        uint64 = 1 << 10
	InitHasIoctlDir       uint64 = 1 << 11
	InitAutoInvalData     uint64 = 1 << 12
	InitDoReaddirplus     uint64 = 1 << 13
	InitReaddirplusAuto   uint64 = 1 << 14
	InitAsyncDIO          uint64 = 1 << 15
	InitWritebackCache    uint64 = 1 << 16
	InitNoOpenSupport     uint64 = 1 << 17
	InitParallelDirops    uint64 = 1 << 18
	InitHandleKillpriv    uint64 = 1 << 19
	InitPosixACL          uint64 = 1 << 20
	InitAbortError        uint64 = 1 << 21
	InitMaxPages          uint64 = 1 << 22
	InitCacheSymlinks     uint64 = 1 << 23
	InitNoOpendirSupport  uint64 = 1 << 24
	InitExplicitInvalData uint64 = 1 << 25
	InitMapAlignment      uint64 = 1 << 26
	InitSubmounts         uint64 = 1 << 27
	InitHandleKillprivV2  uint64 = 1 << 28
	InitSetxattrExt       uint64 = 1 << 29
	InitExt               uint64 = 1 << 30
	InitSecurityCtx       uint64 = 1 << 32
	InitHasInodeDAX       uint64 = 1 << 33
)

// fuse_attr.flags.
const (
	AttrSubmount uint32 = 1 << 0 // FUSE_ATTR_SUBMOUNT: the inode is a submount root
	AttrDAX      uint32 = 1 << 1 // FUSE_ATTR_DAX: use DAX for this file
)

// fuse_open_out.open_flags.
const (
	OpenDirectIO    uint32 = linux.FOPEN_DIRECT_IO
	OpenKeepCache   uint32 = linux.FOPEN_KEEP_CACHE
	OpenNonseekable uint32 = linux.FOPEN_NONSEEKABLE
	OpenCacheDir    uint32 = linux.FOPEN_CACHE_DIR
	OpenStream      uint32 = linux.FOPEN_STREAM
	OpenNoFlush     uint32 = linux.FOPEN_NOFLUSH
)

// fuse_setattr_in.valid bits.
const (
	SetattrMode        uint32 = linux.FATTR_MODE
	SetattrUID         uint32 = linux.FATTR_UID
	SetattrGID         uint32 = linux.FATTR_GID
	SetattrSize        uint32 = linux.FATTR_SIZE
	SetattrAtime       uint32 = linux.FATTR_ATIME
	SetattrMtime       uint32 = linux.FATTR_MTIME
	SetattrFh          uint32 = linux.FATTR_FH
	SetattrAtimeNow    uint32 = linux.FATTR_ATIME_NOW
	SetattrMtimeNow    uint32 = linux.FATTR_MTIME_NOW
	SetattrLockOwner   uint32 = linux.FATTR_LOCKOWNER
	SetattrCtime       uint32 = linux.FATTR_CTIME
	SetattrKillSUIDGID uint32 = 1 << 11
)

// Request flags.
const (
	GetattrFh             uint32 = linux.FUSE_GETATTR_FH // fuse_getattr_in.getattr_flags
	ReadLockOwner         uint32 = linux.FUSE_READ_LOCKOWNER
	WriteCache            uint32 = 1 << 0 // fuse_write_in.write_flags
	WriteLockOwner        uint32 = 1 << 1
	WriteKillSUIDGID      uint32 = 1 << 2
	ReleaseFlush          uint32 = 1 << 0 // fuse_release_in.release_flags
	ReleaseFlockUnlock    uint32 = 1 << 1
	FsyncFdatasync        uint32 = linux.FUSE_FSYNC_FDATASYNC
	LkFlock               uint32 = 1 << 0 // fuse_lk_in.lk_flags
	SetxattrACLKillSGID   uint32 = 1 << 0 // fuse_setxattr_in.setxattr_flags
	SetupmappingFlagWrite uint64 = 1 << 0
	SetupmappingFlagRead  uint64 = 1 << 1
)

// Wire sizes of the structs below.
const (
	inHeaderSize         = 40
	outHeaderSize        = 16
	initInSize           = 64
	initOutSize          = 64
	initOutCompatSize    = 24 // FUSE_COMPAT_22_INIT_OUT_SIZE: up to max_write
	attrSize             = 88
	entryOutSize         = 40 + attrSize
	attrOutSize          = 16 + attrSize
	getattrInSize        = 16
	setattrInSize        = 88
	forgetInSize         = 8
	forgetOneSize        = 16
	batchForgetInSize    = 8
	mknodInSize          = 16
	mkdirInSize          = 8
	renameInSize         = 8
	rename2InSize        = 16
	linkInSize           = 8
	openInSize           = 8
	createInSize         = 16
	openOutSize          = 16
	releaseInSize        = 24
	flushInSize          = 24
	readInSize           = 40
	writeInSize          = 40
	writeOutSize         = 8
	kstatfsSize          = 80
	fsyncInSize          = 16
	setxattrInSize       = 16
	setxattrInCompatSize = 8 // FUSE_COMPAT_SETXATTR_IN_SIZE, without FUSE_SETXATTR_EXT
	getxattrInSize       = 8
	getxattrOutSize      = 8
	fileLockSize         = 24
	lkInSize             = 16 + fileLockSize + 8
	lkOutSize            = fileLockSize
	accessInSize         = 8
	interruptInSize      = 8
	fallocateInSize      = 32
	lseekInSize          = 24
	lseekOutSize         = 8
	copyFileRangeInSize  = 56
	setupmappingInSize   = 40
	removemappingInSize  = 4
	removemappingOneSize = 16
	syncfsInSize         = 8
	direntHeaderSize     = 24 // FUSE_NAME_OFFSET
	direntplusHeaderSize = entryOutSize + direntHeaderSize
	direntAlign          = 8
)

var le = binary.LittleEndian

// enc writes little-endian fields into a buffer sized by the caller from
// the constants above; a short buffer is a bug in this package.
type enc struct {
	b   []byte
	off int
}

func (e *enc) u16(v uint16) { le.PutUint16(e.b[e.off:], v); e.off += 2 }
func (e *enc) u32(v uint32) { le.PutUint32(e.b[e.off:], v); e.off += 4 }
func (e *enc) u64(v uint64) { le.PutUint64(e.b[e.off:], v); e.off += 8 }
func (e *enc) skip(n int)   { e.off += n }

// dec reads little-endian fields. Callers check the length first
// (checkLen); dec itself never reads past its buffer and yields zeros
// instead, so a mistake here cannot become a panic.
type dec struct {
	b   []byte
	off int
}

func (d *dec) u16() uint16 {
	if d.off+2 > len(d.b) {
		d.off = len(d.b)
		return 0
	}
	v := le.Uint16(d.b[d.off:])
	d.off += 2
	return v
}

func (d *dec) u32() uint32 {
	if d.off+4 > len(d.b) {
		d.off = len(d.b)
		return 0
	}
	v := le.Uint32(d.b[d.off:])
	d.off += 4
	return v
}

func (d *dec) u64() uint64 {
	if d.off+8 > len(d.b) {
		d.off = len(d.b)
		return 0
	}
	v := le.Uint64(d.b[d.off:])
	d.off += 8
	return v
}

func (d *dec) skip(n int) { d.off = min(d.off+n, len(d.b)) }

// errBadReply is wrapped by every reply-validation error; the Conn turns
// all of them into EIO with one log line.
var errBadReply = errors.New("invalid reply")

func badReply(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadReply, fmt.Sprintf(format, args...))
}

// checkLen requires a fixed-size reply payload.
func checkLen(what string, p []byte, want int) error {
	if len(p) != want {
		return badReply("%s: payload is %d bytes, want %d", what, len(p), want)
	}
	return nil
}

// inHeader is struct fuse_in_header.
type inHeader struct {
	Len    uint32
	Opcode Opcode
	Unique uint64
	NodeID uint64
	UID    uint32
	GID    uint32
	PID    uint32
}

func (h *inHeader) encode(b []byte) {
	e := enc{b: b}
	e.u32(h.Len)
	e.u32(uint32(h.Opcode))
	e.u64(h.Unique)
	e.u64(h.NodeID)
	e.u32(h.UID)
	e.u32(h.GID)
	e.u32(h.PID)
	e.u32(0) // padding
}

func decodeInHeader(b []byte) (inHeader, bool) {
	if len(b) < inHeaderSize {
		return inHeader{}, false
	}
	d := dec{b: b}
	return inHeader{Len: d.u32(), Opcode: Opcode(d.u32()), Unique: d.u64(), NodeID: d.u64(),
		UID: d.u32(), GID: d.u32(), PID: d.u32()}, true
}

// outHeader is struct fuse_out_header.
type outHeader struct {
	Len    uint32
	Error  int32
	Unique uint64
}

func (h *outHeader) encode(b []byte) {
	e := enc{b: b}
	e.u32(h.Len)
	e.u32(uint32(h.Error))
	e.u64(h.Unique)
}

func decodeOutHeader(b []byte) (outHeader, bool) {
	if len(b) < outHeaderSize {
		return outHeader{}, false
	}
	d := dec{b: b}
	return outHeader{Len: d.u32(), Error: int32(d.u32()), Unique: d.u64()}, true
}

// initIn is struct fuse_init_in (7.36: flags2 and unused[11]).
type initIn struct {
	Major, Minor, MaxReadahead, Flags, Flags2 uint32
}

func (r *initIn) encode(b []byte) {
	e := enc{b: b}
	e.u32(r.Major)
	e.u32(r.Minor)
	e.u32(r.MaxReadahead)
	e.u32(r.Flags)
	e.u32(r.Flags2)
	clear(b[20:initInSize])
}

// initOut is struct fuse_init_out (7.36: map_alignment, flags2).
type initOut struct {
	Major               uint32
	Minor               uint32
	MaxReadahead        uint32
	Flags               uint32
	MaxBackground       uint16
	CongestionThreshold uint16
	MaxWrite            uint32
	TimeGran            uint32
	MaxPages            uint16
	MapAlignment        uint16
	Flags2              uint32
}

func (r *initOut) encode(b []byte) {
	e := enc{b: b}
	e.u32(r.Major)
	e.u32(r.Minor)
	e.u32(r.MaxReadahead)
	e.u32(r.Flags)
	e.u16(r.MaxBackground)
	e.u16(r.CongestionThreshold)
	e.u32(r.MaxWrite)
	e.u32(r.TimeGran)
	e.u16(r.MaxPages)
	e.u16(r.MapAlignment)
	e.u32(r.Flags2)
	clear(b[36:initOutSize])
}

// decodeInitOut decodes an INIT reply. Servers older than 7.23 send a
// 24-byte reply (and the kernel accepts that: the reply is out_argvar);
// missing fields read as zero. A reply shorter than major+minor, or
// longer than the struct, is invalid.
func decodeInitOut(p []byte) (initOut, error) {
	if len(p) < 8 || len(p) > initOutSize {
		return initOut{}, badReply("INIT: payload is %d bytes, want 8..%d", len(p), initOutSize)
	}
	var full [initOutSize]byte
	copy(full[:], p)
	d := dec{b: full[:]}
	return initOut{Major: d.u32(), Minor: d.u32(), MaxReadahead: d.u32(), Flags: d.u32(),
		MaxBackground: d.u16(), CongestionThreshold: d.u16(), MaxWrite: d.u32(),
		TimeGran: d.u32(), MaxPages: d.u16(), MapAlignment: d.u16(), Flags2: d.u32()}, nil
}

// Attr is a file's attributes as the server reports them (struct
// fuse_attr).
type Attr struct {
	Ino     uint64
	Size    uint64
	Blocks  uint64 // 512-byte blocks
	Atime   time.Time
	Mtime   time.Time
	Ctime   time.Time
	Mode    uint32 // file type (S_IFMT bits) and permissions, as in Linux
	Nlink   uint32
	UID     uint32
	GID     uint32
	Rdev    uint32
	Blksize uint32
	Flags   uint32 // AttrSubmount, AttrDAX
}

// wireTime converts a time to fuse's (seconds, nanoseconds); seconds are
// the two's complement of a negative Unix time, as Linux stores s64 in
// u64.
func wireTime(t time.Time) (uint64, uint32) {
	if t.IsZero() {
		return 0, 0
	}
	return uint64(t.Unix()), uint32(t.Nanosecond())
}

func (a *Attr) encode(b []byte) {
	e := enc{b: b}
	e.u64(a.Ino)
	e.u64(a.Size)
	e.u64(a.Blocks)
	as, an := wireTime(a.Atime)
	ms, mn := wireTime(a.Mtime)
	cs, cn := wireTime(a.Ctime)
	e.u64(as)
	e.u64(ms)
	e.u64(cs)
	e.u32(an)
	e.u32(mn)
	e.u32(cn)
	e.u32(a.Mode)
	e.u32(a.Nlink)
	e.u32(a.UID)
	e.u32(a.GID)
	e.u32(a.Rdev)
	e.u32(a.Blksize)
	e.u32(a.Flags)
}

func (d *dec) attr() Attr {
	var a Attr
	a.Ino = d.u64()
	a.Size = d.u64()
	a.Blocks = d.u64()
	as, ms, cs := d.u64(), d.u64(), d.u64()
	an, mn, cn := d.u32(), d.u32(), d.u32()
	a.Atime = time.Unix(int64(as), int64(an))
	a.Mtime = time.Unix(int64(ms), int64(mn))
	a.Ctime = time.Unix(int64(cs), int64(cn))
	a.Mode = d.u32()
	a.Nlink = d.u32()
	a.UID = d.u32()
	a.GID = d.u32()
	a.Rdev = d.u32()
	a.Blksize = d.u32()
	a.Flags = d.u32()
	return a
}

// File types in Attr.Mode (S_IFMT and its values): the same bits vfs walks
// with, so an Attr's mode passes to vfs unchanged.
const (
	ModeType = vfs.S_IFMT
	ModeSock = vfs.S_IFSOCK
	ModeLnk  = vfs.S_IFLNK
	ModeReg  = vfs.S_IFREG
	ModeBlk  = vfs.S_IFBLK
	ModeDir  = vfs.S_IFDIR
	ModeChr  = vfs.S_IFCHR
	ModeFIFO = vfs.S_IFIFO
)

// validateAttr mirrors Linux fuse_invalid_attr: the file type must be one
// of the seven and the size must fit in loff_t.
func validateAttr(a *Attr) error {
	switch a.Mode & ModeType {
	case ModeSock, ModeLnk, ModeReg, ModeBlk, ModeDir, ModeChr, ModeFIFO:
	default:
		return badReply("attr: invalid file type in mode %#o", a.Mode)
	}
	if a.Size > math.MaxInt64 {
		return badReply("attr: size %d exceeds MaxInt64", a.Size)
	}
	return nil
}

// validity converts a (seconds, nanoseconds) timeout to a Duration,
// saturating as Linux fuse_time_to_jiffies does.
func validity(sec uint64, nsec uint32) time.Duration {
	nsec = min(nsec, 999_999_999)
	if sec >= uint64(math.MaxInt64/int64(time.Second)) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(sec)*time.Second + time.Duration(nsec)
}

func splitDuration(d time.Duration) (uint64, uint32) {
	if d <= 0 {
		return 0, 0
	}
	return uint64(d / time.Second), uint32(d % time.Second)
}

// Entry is the reply to LOOKUP, MKNOD, MKDIR, SYMLINK, LINK and CREATE
// (struct fuse_entry_out).
type Entry struct {
	NodeID     uint64 // 0 in a LOOKUP reply: a negative entry
	Generation uint64
	EntryValid time.Duration // how long the name may be cached
	AttrValid  time.Duration // how long Attr may be cached
	Attr       Attr
}

func (en *Entry) encode(b []byte) {
	e := enc{b: b}
	e.u64(en.NodeID)
	e.u64(en.Generation)
	es, ens := splitDuration(en.EntryValid)
	as, ans := splitDuration(en.AttrValid)
	e.u64(es)
	e.u64(as)
	e.u32(ens)
	e.u32(ans)
	en.Attr.encode(b[40:])
}

func (d *dec) entry() Entry {
	var en Entry
	en.NodeID = d.u64()
	en.Generation = d.u64()
	es, as := d.u64(), d.u64()
	ens, ans := d.u32(), d.u32()
	en.EntryValid = validity(es, ens)
	en.AttrValid = validity(as, ans)
	en.Attr = d.attr()
	return en
}

// decodeLookup decodes and checks a LOOKUP reply as Linux
// fuse_lookup_name does: nodeid 0 is a negative entry (its attributes are
// not looked at); otherwise the attributes must be valid, and the root
// must be a directory with generation 0.
func decodeLookup(p []byte) (Entry, error) {
	if err := checkLen("entry", p, entryOutSize); err != nil {
		return Entry{}, err
	}
	d := dec{b: p}
	en := d.entry()
	if en.NodeID == 0 {
		return Entry{NodeID: 0, EntryValid: en.EntryValid}, nil
	}
	if err := validateAttr(&en.Attr); err != nil {
		return Entry{}, err
	}
	if en.NodeID == RootID && (en.Attr.Mode&ModeType != ModeDir || en.Generation != 0) {
		return Entry{}, badReply("entry: root nodeid with mode %#o generation %d", en.Attr.Mode, en.Generation)
	}
	return en, nil
}

// decodeNewEntry decodes and checks the reply to a request that creates a
// name (Linux create_new_entry): nodeid neither 0 nor the root, valid
// attributes, and the file type asked for (wantType 0: not checked, as for
// LINK).
func decodeNewEntry(p []byte, wantType uint32) (Entry, error) {
	if err := checkLen("entry", p, entryOutSize); err != nil {
		return Entry{}, err
	}
	d := dec{b: p}
	en := d.entry()
	if en.NodeID == 0 || en.NodeID == RootID {
		return Entry{}, badReply("entry: invalid nodeid %d for a new entry", en.NodeID)
	}
	if err := validateAttr(&en.Attr); err != nil {
		return Entry{}, err
	}
	if wantType != 0 && en.Attr.Mode&ModeType != wantType {
		return Entry{}, badReply("entry: file type %#o, want %#o", en.Attr.Mode&ModeType, wantType)
	}
	return en, nil
}

// AttrOut is the reply to GETATTR and SETATTR (struct fuse_attr_out).
type AttrOut struct {
	AttrValid time.Duration
	Attr      Attr
}

func (a *AttrOut) encode(b []byte) {
	e := enc{b: b}
	s, ns := splitDuration(a.AttrValid)
	e.u64(s)
	e.u32(ns)
	e.u32(0)
	a.Attr.encode(b[16:])
}

func decodeAttrOut(p []byte) (AttrOut, error) {
	if err := checkLen("attr_out", p, attrOutSize); err != nil {
		return AttrOut{}, err
	}
	d := dec{b: p}
	s := d.u64()
	ns := d.u32()
	d.skip(4)
	out := AttrOut{AttrValid: validity(s, ns), Attr: d.attr()}
	if err := validateAttr(&out.Attr); err != nil {
		return AttrOut{}, err
	}
	return out, nil
}

// getattrIn is struct fuse_getattr_in.
type getattrIn struct {
	Flags uint32
	Fh    uint64
}

func (r *getattrIn) encode(b []byte) {
	e := enc{b: b}
	e.u32(r.Flags)
	e.u32(0)
	e.u64(r.Fh)
}

// SetattrIn says which attributes SETATTR changes (struct
// fuse_setattr_in). Only the fields named in Valid are used.
type SetattrIn struct {
	Valid     uint32 // Setattr* bits
	Fh        uint64 // with SetattrFh
	Size      uint64
	LockOwner uint64 // with SetattrLockOwner
	Atime     time.Time
	Mtime     time.Time
	Ctime     time.Time
	Mode      uint32
	UID       uint32
	GID       uint32
}

func (r *SetattrIn) encode(b []byte) {
	e := enc{b: b}
	e.u32(r.Valid)
	e.u32(0)
	e.u64(r.Fh)
	e.u64(r.Size)
	e.u64(r.LockOwner)
	as, an := wireTime(r.Atime)
	ms, mn := wireTime(r.Mtime)
	cs, cn := wireTime(r.Ctime)
	e.u64(as)
	e.u64(ms)
	e.u64(cs)
	e.u32(an)
	e.u32(mn)
	e.u32(cn)
	e.u32(r.Mode)
	e.u32(0)
	e.u32(r.UID)
	e.u32(r.GID)
	e.u32(0)
}

// ForgetOne is one entry of BATCH_FORGET (struct fuse_forget_one).
type ForgetOne struct {
	NodeID  uint64
	Nlookup uint64
}

func (f *ForgetOne) encode(b []byte) {
	e := enc{b: b}
	e.u64(f.NodeID)
	e.u64(f.Nlookup)
}

// forgetIn is struct fuse_forget_in.
type forgetIn struct{ Nlookup uint64 }

func (r *forgetIn) encode(b []byte) { le.PutUint64(b, r.Nlookup) }

// batchForgetIn is struct fuse_batch_forget_in.
type batchForgetIn struct{ Count uint32 }

func (r *batchForgetIn) encode(b []byte) {
	e := enc{b: b}
	e.u32(r.Count)
	e.u32(0)
}

// mknodIn is struct fuse_mknod_in.
type mknodIn struct{ Mode, Rdev, Umask uint32 }

func (r *mknodIn) encode(b []byte) {
	e := enc{b: b}
	e.u32(r.Mode)
	e.u32(r.Rdev)
	e.u32(r.Umask)
	e.u32(0)
}

// mkdirIn is struct fuse_mkdir_in.
type mkdirIn struct{ Mode, Umask uint32 }

func (r *mkdirIn) encode(b []byte) {
	e := enc{b: b}
	e.u32(r.Mode)
	e.u32(r.Umask)
}

// rename2In is struct fuse_rename2_in (fuse_rename_in is its first 8
// bytes).
type rename2In struct {
	Newdir uint64
	Flags  uint32
}

func (r *rename2In) encode(b []byte) {
	e := enc{b: b}
	e.u64(r.Newdir)
	e.u32(r.Flags)
	e.u32(0)
}

// linkIn is struct fuse_link_in.
type linkIn struct{ OldNodeID uint64 }

func (r *linkIn) encode(b []byte) { le.PutUint64(b, r.OldNodeID) }

// openIn is struct fuse_open_in.
type openIn struct{ Flags, OpenFlags uint32 }

func (r *openIn) encode(b []byte) {
	e := enc{b: b}
	e.u32(r.Flags)
	e.u32(r.OpenFlags)
}

// createIn is struct fuse_create_in.
type createIn struct{ Flags, Mode, Umask, OpenFlags uint32 }

func (r *createIn) encode(b []byte) {
	e := enc{b: b}
	e.u32(r.Flags)
	e.u32(r.Mode)
	e.u32(r.Umask)
	e.u32(r.OpenFlags)
}

// OpenOut is the reply to OPEN, OPENDIR and CREATE (struct
// fuse_open_out).
type OpenOut struct {
	Fh        uint64
	OpenFlags uint32 // Open* (FOPEN_*) bits
}

func (o *OpenOut) encode(b []byte) {
	e := enc{b: b}
	e.u64(o.Fh)
	e.u32(o.OpenFlags)
	e.u32(0)
}

func (d *dec) openOut() OpenOut {
	o := OpenOut{Fh: d.u64(), OpenFlags: d.u32()}
	d.skip(4)
	return o
}

func decodeOpenOut(p []byte) (OpenOut, error) {
	if err := checkLen("open_out", p, openOutSize); err != nil {
		return OpenOut{}, err
	}
	d := dec{b: p}
	return d.openOut(), nil
}

// decodeCreate checks a CREATE reply as Linux fuse_create_open: a
// regular file with a valid nodeid and attributes.
func decodeCreate(p []byte) (Entry, OpenOut, error) {
	if err := checkLen("create", p, entryOutSize+openOutSize); err != nil {
		return Entry{}, OpenOut{}, err
	}
	en, err := decodeNewEntry(p[:entryOutSize], ModeReg)
	if err != nil {
		return Entry{}, OpenOut{}, err
	}
	d := dec{b: p[entryOutSize:]}
	return en, d.openOut(), nil
}

// ReleaseIn is struct fuse_release_in, for RELEASE and RELEASEDIR.
type ReleaseIn struct {
	Fh           uint64
	Flags        uint32 // the open flags
	ReleaseFlags uint32 // Release* bits
	LockOwner    uint64
}

func (r *ReleaseIn) encode(b []byte) {
	e := enc{b: b}
	e.u64(r.Fh)
	e.u32(r.Flags)
	e.u32(r.ReleaseFlags)
	e.u64(r.LockOwner)
}

// flushIn is struct fuse_flush_in.
type flushIn struct {
	Fh        uint64
	LockOwner uint64
}

func (r *flushIn) encode(b []byte) {
	e := enc{b: b}
	e.u64(r.Fh)
	e.u32(0)
	e.u32(0)
	e.u64(r.LockOwner)
}

// ReadIn is struct fuse_read_in without its size, which is the length of
// the caller's buffer. READDIR and READDIRPLUS use it too.
type ReadIn struct {
	Fh        uint64
	Offset    uint64
	ReadFlags uint32 // ReadLockOwner
	LockOwner uint64
	Flags     uint32 // the open flags
}

func (r *ReadIn) encode(b []byte, size uint32) {
	e := enc{b: b}
	e.u64(r.Fh)
	e.u64(r.Offset)
	e.u32(size)
	e.u32(r.ReadFlags)
	e.u64(r.LockOwner)
	e.u32(r.Flags)
	e.u32(0)
}

// WriteIn is struct fuse_write_in without its size, which is the length of
// the data.
type WriteIn struct {
	Fh         uint64
	Offset     uint64
	WriteFlags uint32 // Write* bits
	LockOwner  uint64
	Flags      uint32 // the open flags
}

func (r *WriteIn) encode(b []byte, size uint32) {
	e := enc{b: b}
	e.u64(r.Fh)
	e.u64(r.Offset)
	e.u32(size)
	e.u32(r.WriteFlags)
	e.u64(r.LockOwner)
	e.u32(r.Flags)
	e.u32(0)
}

// decodeWriteOut decodes struct fuse_write_out (WRITE and
// COPY_FILE_RANGE); the server may not claim more than was asked (Linux
// fuse_send_write).
func decodeWriteOut(p []byte, asked uint64) (uint32, error) {
	if err := checkLen("write_out", p, writeOutSize); err != nil {
		return 0, err
	}
	n := le.Uint32(p)
	if uint64(n) > asked {
		return 0, badReply("write_out: size %d exceeds the %d bytes asked", n, asked)
	}
	return n, nil
}

// Statfs is the reply to STATFS (struct fuse_kstatfs).
type Statfs struct {
	Blocks  uint64
	Bfree   uint64
	Bavail  uint64
	Files   uint64
	Ffree   uint64
	Bsize   uint32
	Namelen uint32
	Frsize  uint32
}

func (s *Statfs) encode(b []byte) {
	e := enc{b: b}
	e.u64(s.Blocks)
	e.u64(s.Bfree)
	e.u64(s.Bavail)
	e.u64(s.Files)
	e.u64(s.Ffree)
	e.u32(s.Bsize)
	e.u32(s.Namelen)
	e.u32(s.Frsize)
	clear(b[52:kstatfsSize])
}

func decodeStatfs(p []byte) (Statfs, error) {
	if err := checkLen("statfs", p, kstatfsSize); err != nil {
		return Statfs{}, err
	}
	d := dec{b: p}
	return Statfs{Blocks: d.u64(), Bfree: d.u64(), Bavail: d.u64(), Files: d.u64(), Ffree: d.u64(),
		Bsize: d.u32(), Namelen: d.u32(), Frsize: d.u32()}, nil
}

// fsyncIn is struct fuse_fsync_in.
type fsyncIn struct {
	Fh         uint64
	FsyncFlags uint32
}

func (r *fsyncIn) encode(b []byte) {
	e := enc{b: b}
	e.u64(r.Fh)
	e.u32(r.FsyncFlags)
	e.u32(0)
}

// setxattrIn is struct fuse_setxattr_in. Without FUSE_SETXATTR_EXT only
// its first 8 bytes are sent (FUSE_COMPAT_SETXATTR_IN_SIZE); virtiofsd
// reads the extended form only when it negotiated the flag.
type setxattrIn struct{ Size, Flags, SetxattrFlags uint32 }

func (r *setxattrIn) encode(b []byte, ext bool) {
	e := enc{b: b}
	e.u32(r.Size)
	e.u32(r.Flags)
	if ext {
		e.u32(r.SetxattrFlags)
		e.u32(0)
	}
}

// getxattrIn is struct fuse_getxattr_in (GETXATTR and LISTXATTR).
type getxattrIn struct{ Size uint32 }

func (r *getxattrIn) encode(b []byte) {
	e := enc{b: b}
	e.u32(r.Size)
	e.u32(0)
}

// decodeGetxattrOut decodes struct fuse_getxattr_out, the reply to a
// size query.
func decodeGetxattrOut(p []byte) (int, error) {
	if err := checkLen("getxattr_out", p, getxattrOutSize); err != nil {
		return 0, err
	}
	n := le.Uint32(p)
	if n > xattrSizeMax {
		return 0, badReply("getxattr_out: size %d exceeds XATTR_SIZE_MAX", n)
	}
	return int(n), nil
}

// xattrSizeMax is XATTR_SIZE_MAX and XATTR_LIST_MAX.
const xattrSizeMax = 65536

// validateXattrList mirrors Linux fuse_verify_xattr_list: a LISTXATTR
// reply is a sequence of non-empty NUL-terminated names.
func validateXattrList(p []byte) error {
	for len(p) > 0 {
		i := 0
		for i < len(p) && p[i] != 0 {
			i++
		}
		if i == 0 || i == len(p) {
			return badReply("listxattr: malformed name list")
		}
		p = p[i+1:]
	}
	return nil
}

// FileLock is a POSIX lock range (struct fuse_file_lock). End is
// inclusive; OFFSET_MAX (MaxInt64) means to the end of the file.
type FileLock struct {
	Start uint64
	End   uint64
	Type  uint32 // F_RDLCK, F_WRLCK, F_UNLCK
	PID   uint32
}

func (l *FileLock) encode(b []byte) {
	e := enc{b: b}
	e.u64(l.Start)
	e.u64(l.End)
	e.u32(l.Type)
	e.u32(l.PID)
}

// Lock types (asm-generic/fcntl.h).
const (
	LockRead   = 0 // F_RDLCK
	LockWrite  = 1 // F_WRLCK
	LockUnlock = 2 // F_UNLCK
)

// LkIn is struct fuse_lk_in, for GETLK, SETLK and SETLKW.
type LkIn struct {
	Fh      uint64
	Owner   uint64
	Lk      FileLock
	LkFlags uint32 // LkFlock for flock(2) locks
}

func (r *LkIn) encode(b []byte) {
	e := enc{b: b}
	e.u64(r.Fh)
	e.u64(r.Owner)
	r.Lk.encode(b[16:])
	e.skip(fileLockSize)
	e.u32(r.LkFlags)
	e.u32(0)
}

// decodeLkOut decodes struct fuse_lk_out and checks it as Linux
// convert_fuse_file_lock: a known type and, unless unlocked, a range
// within loff_t with start <= end.
func decodeLkOut(p []byte) (FileLock, error) {
	if err := checkLen("lk_out", p, lkOutSize); err != nil {
		return FileLock{}, err
	}
	d := dec{b: p}
	l := FileLock{Start: d.u64(), End: d.u64(), Type: d.u32(), PID: d.u32()}
	switch l.Type {
	case LockUnlock:
	case LockRead, LockWrite:
		if l.Start > math.MaxInt64 || l.End > math.MaxInt64 || l.End < l.Start {
			return FileLock{}, badReply("lk_out: invalid range %d..%d", l.Start, l.End)
		}
	default:
		return FileLock{}, badReply("lk_out: invalid lock type %d", l.Type)
	}
	return l, nil
}

// accessIn is struct fuse_access_in.
type accessIn struct{ Mask uint32 }

func (r *accessIn) encode(b []byte) {
	e := enc{b: b}
	e.u32(r.Mask)
	e.u32(0)
}

// interruptIn is struct fuse_interrupt_in.
type interruptIn struct{ Unique uint64 }

func (r *interruptIn) encode(b []byte) { le.PutUint64(b, r.Unique) }

// fallocateIn is struct fuse_fallocate_in.
type fallocateIn struct {
	Fh, Offset, Length uint64
	Mode               uint32
}

func (r *fallocateIn) encode(b []byte) {
	e := enc{b: b}
	e.u64(r.Fh)
	e.u64(r.Offset)
	e.u64(r.Length)
	e.u32(r.Mode)
	e.u32(0)
}

// lseekIn is struct fuse_lseek_in.
type lseekIn struct {
	Fh, Offset uint64
	Whence     uint32
}

func (r *lseekIn) encode(b []byte) {
	e := enc{b: b}
	e.u64(r.Fh)
	e.u64(r.Offset)
	e.u32(r.Whence)
	e.u32(0)
}

// decodeLseekOut decodes struct fuse_lseek_out; the offset must fit in
// loff_t.
func decodeLseekOut(p []byte) (uint64, error) {
	if err := checkLen("lseek_out", p, lseekOutSize); err != nil {
		return 0, err
	}
	off := le.Uint64(p)
	if off > math.MaxInt64 {
		return 0, badReply("lseek_out: offset %d exceeds MaxInt64", off)
	}
	return off, nil
}

// CopyFileRangeIn is struct fuse_copy_file_range_in; the request's nodeid
// is the source inode.
type CopyFileRangeIn struct {
	FhIn      uint64
	OffIn     uint64
	NodeIDOut uint64
	FhOut     uint64
	OffOut    uint64
	Len       uint64
	Flags     uint64
}

func (r *CopyFileRangeIn) encode(b []byte) {
	e := enc{b: b}
	e.u64(r.FhIn)
	e.u64(r.OffIn)
	e.u64(r.NodeIDOut)
	e.u64(r.FhOut)
	e.u64(r.OffOut)
	e.u64(r.Len)
	e.u64(r.Flags)
}

// SetupmappingIn is struct fuse_setupmapping_in: map Len bytes of the
// file open as Fh at Foffset to offset Moffset of the DAX window.
type SetupmappingIn struct {
	Fh      uint64
	Foffset uint64
	Len     uint64
	Flags   uint64 // SetupmappingFlag* bits
	Moffset uint64
}

func (r *SetupmappingIn) encode(b []byte) {
	e := enc{b: b}
	e.u64(r.Fh)
	e.u64(r.Foffset)
	e.u64(r.Len)
	e.u64(r.Flags)
	e.u64(r.Moffset)
}

// RemovemappingOne is struct fuse_removemapping_one: a range of the DAX
// window to unmap.
type RemovemappingOne struct {
	Moffset uint64
	Len     uint64
}

func (r *RemovemappingOne) encode(b []byte) {
	e := enc{b: b}
	e.u64(r.Moffset)
	e.u64(r.Len)
}

// removemappingIn is struct fuse_removemapping_in.
type removemappingIn struct{ Count uint32 }

func (r *removemappingIn) encode(b []byte) { le.PutUint32(b, r.Count) }

// removemappingMax is FUSE_REMOVEMAPPING_MAX_ENTRY: entries per request.
const removemappingMax = 4096 / removemappingOneSize

// Dirent is one directory entry (struct fuse_dirent).
type Dirent struct {
	Ino  uint64
	Off  uint64 // the offset to pass to the next READDIR to continue after this entry
	Type uint32 // DT_* (the S_IFMT bits >> 12)
	Name string
}

// direntSize is FUSE_DIRENT_SIZE: the record length with its padding.
func direntSize(namelen int) int {
	return (direntHeaderSize + namelen + direntAlign - 1) &^ (direntAlign - 1)
}

func (de *Dirent) encode(b []byte) int {
	e := enc{b: b}
	e.u64(de.Ino)
	e.u64(de.Off)
	e.u32(uint32(len(de.Name)))
	e.u32(de.Type)
	n := copy(b[direntHeaderSize:], de.Name)
	end := direntSize(len(de.Name))
	clear(b[direntHeaderSize+n : end])
	return end
}

// decodeDirent decodes the fuse_dirent at the start of p and returns its
// padded record length. As Linux parse_dirfile it rejects names that are
// empty, longer than NameMax or contain '/', and also names containing
// NUL; unlike Linux, a record that runs past the reply is an error, not
// the end of the listing, since a well-formed reply holds whole records.
func decodeDirent(p []byte) (Dirent, int, error) {
	de, name, reclen, err := decodeDirentName(p)
	if err != nil {
		return Dirent{}, 0, err
	}
	de.Name = string(name)
	return de, reclen, nil
}

// decodeDirentName is decodeDirent with the name left in p, unconverted.
func decodeDirentName(p []byte) (Dirent, []byte, int, error) {
	if len(p) < direntHeaderSize {
		return Dirent{}, nil, 0, badReply("dirent: %d trailing bytes, shorter than a header", len(p))
	}
	d := dec{b: p}
	de := Dirent{Ino: d.u64(), Off: d.u64()}
	namelen := d.u32()
	de.Type = d.u32()
	if namelen == 0 || namelen > NameMax {
		return Dirent{}, nil, 0, badReply("dirent: invalid namelen %d", namelen)
	}
	reclen := direntSize(int(namelen))
	if reclen > len(p) {
		return Dirent{}, nil, 0, badReply("dirent: record of %d bytes runs past the %d left", reclen, len(p))
	}
	name := p[direntHeaderSize : direntHeaderSize+int(namelen)]
	for _, c := range name {
		if c == '/' || c == 0 {
			return Dirent{}, nil, 0, badReply("dirent: name %q contains '/' or NUL", name)
		}
	}
	return de, name, reclen, nil
}

// decodeDirents decodes a READDIR reply (see scanDirents for the checks).
// The names share one string (one allocation for the reply instead of one
// per name; a 5000-entry listing made 5000): holding any of them holds the
// reply's names, no more than the reply itself.
func decodeDirents(p []byte) ([]Dirent, error) {
	recs, err := scanDirents(p)
	if err != nil || recs.n == 0 {
		return nil, err
	}
	return recs.dirents(0, 0), nil
}

// direntRecords is a READDIR reply whose records scanDirents checked:
// listings read the entries straight from the reply, without a []Dirent.
type direntRecords struct {
	// p holds n whole fuse_dirent records.
	p []byte
	n int
	// names holds the records' names in order, each padded to a multiple
	// of 8 bytes as in its record.
	names string
	// lastOff is the d_off of the last record, the cookie that
	// continues the listing after p.
	lastOff uint64
}

// direntAt returns the record at offset off of r.p, whose name starts at
// offset at of r.names, and the offsets of the next record and name.
//
// Preconditions: off and at are 0 or offsets that direntAt returned.
func (r *direntRecords) direntAt(off, at int) (de Dirent, nextOff, nextAt int) {
	h := r.p[off : off+direntHeaderSize]
	namelen := int(le.Uint32(h[16:]))
	de = Dirent{Ino: le.Uint64(h), Off: le.Uint64(h[8:]), Type: le.Uint32(h[20:]), Name: r.names[at : at+namelen]}
	padded := (namelen + direntAlign - 1) &^ (direntAlign - 1)
	return de, off + direntHeaderSize + padded, at + padded
}

// dirents decodes the records from offset off (name offset at) on.
func (r *direntRecords) dirents(off, at int) []Dirent {
	out := make([]Dirent, 0, r.n)
	for off < len(r.p) {
		var de Dirent
		de, off, at = r.direntAt(off, at)
		out = append(out, de)
	}
	return out
}

// Bytes of a 64-bit word, for checking a name eight bytes at a time.
const (
	wordOnes   = 0x0101010101010101
	wordHighs  = 0x8080808080808080
	wordSlashs = '/' * wordOnes
)

// zeroOrSlash is nonzero if a byte of w is 0 or '/' (the exact test for a
// zero byte: (x - 0x01..01) &^ x has a byte's top bit set only below or at
// a zero byte of x).
func zeroOrSlash(w uint64) uint64 {
	s := w ^ wordSlashs
	return ((w-wordOnes)&^w | (s-wordOnes)&^s) & wordHighs
}

// scanDirents checks a READDIR reply and copies its names out of it
// (sizeDirents, then copyNames).
func scanDirents(p []byte) (direntRecords, error) {
	sz, err := sizeDirents(p)
	if err != nil || sz.n == 0 {
		return direntRecords{}, err
	}
	return copyNames(p, sz)
}

// direntSizes is what sizeDirents finds in a READDIR reply.
type direntSizes struct {
	// n is the number of records, nameBytes their names' bytes with
	// padding.
	n, nameBytes int
	// lastOff is the d_off of the last record: the cookie that
	// continues the listing after the reply.
	lastOff uint64
}

// sizeDirents checks the record lengths of a READDIR reply and finds
// its last d_off, the first pass of scanDirents. As Linux parse_dirfile it
// rejects names that are empty or longer than NameMax; unlike Linux, a
// record that runs past the reply is an error, not the end of the
// listing, since a well-formed reply holds whole records.
func sizeDirents(p []byte) (direntSizes, error) {
	var sz direntSizes
	for q := p; len(q) > 0; sz.n++ {
		if len(q) < direntHeaderSize {
			return direntSizes{}, badReply("dirent: %d trailing bytes, shorter than a header", len(q))
		}
		namelen := le.Uint32(q[16:])
		if namelen == 0 || namelen > NameMax {
			return direntSizes{}, badReply("dirent: invalid namelen %d", namelen)
		}
		reclen := direntSize(int(namelen))
		if reclen > len(q) {
			return direntSizes{}, badReply("dirent: record of %d bytes runs past the %d left", reclen, len(q))
		}
		sz.nameBytes += reclen - direntHeaderSize
		sz.lastOff = le.Uint64(q[8:])
		q = q[reclen:]
	}
	return sz, nil
}

// copyNames is the second pass of scanDirents over a reply p that
// sizeDirents checked (sz, with at least one record): it rejects names
// that contain '/' (as Linux) or NUL and copies the names out.
//
// A listing's reply holds thousands of names, and in a guest under TCG
// every instruction per name costs: each name is checked and copied a
// word at a time, its padding included, into one buffer that becomes the
// names' string, through pointers, since sizeDirents checked that every
// record lies whole in p (slicing each record and name took 116
// instructions per 7-byte name, this takes about 60).
//
// Preconditions: sizeDirents(p) returned sz and no error.
func copyNames(p []byte, sz direntSizes) (direntRecords, error) {
	names := make([]byte, sz.nameBytes)
	src := unsafe.Pointer(unsafe.SliceData(p))
	dst := unsafe.Pointer(unsafe.SliceData(names))
	for off, at := 0, 0; off < len(p); {
		namelen := int(le.Uint32((*[4]byte)(unsafe.Add(src, off+16))[:]))
		name := unsafe.Add(src, off+direntHeaderSize)
		// All words but the last are name bytes; the last has 1 to 8.
		last := (namelen - 1) &^ 7
		var bad uint64
		for i := 0; i < last; i += 8 {
			w := *(*[8]byte)(unsafe.Add(name, i))
			*(*[8]byte)(unsafe.Add(dst, at+i)) = w
			bad |= zeroOrSlash(le.Uint64(w[:]))
		}
		lw := *(*[8]byte)(unsafe.Add(name, last))
		*(*[8]byte)(unsafe.Add(dst, at+last)) = lw
		// Padding bytes become 0x01, which passes.
		keep := uint64(1)<<(8*(namelen-last)) - 1 // all ones for 8 bytes
		w := le.Uint64(lw[:])&keep | wordOnes&^keep
		if bad|zeroOrSlash(w) != 0 {
			return direntRecords{}, badReply("dirent: name %q contains '/' or NUL", p[off+direntHeaderSize:off+direntHeaderSize+namelen])
		}
		off += direntHeaderSize + last + 8
		at += last + 8
	}
	// The buffer is never written again, so it can be the string itself
	// (as strings.Builder does) instead of a copy of it.
	return direntRecords{p: p, n: sz.n, names: unsafe.String(unsafe.SliceData(names), len(names)), lastOff: sz.lastOff}, nil
}

// DirentPlus is one READDIRPLUS entry (struct fuse_direntplus). Entry is
// the zero Entry (NodeID 0) when the server gave no lookup for the name,
// and for "." and "..", which Linux fuse_direntplus_link ignores; a
// nonzero NodeID counts as a LOOKUP that must be forgotten.
type DirentPlus struct {
	Dirent
	Entry Entry
}

func (dp *DirentPlus) encode(b []byte) int {
	dp.Entry.encode(b)
	return entryOutSize + dp.Dirent.encode(b[entryOutSize:])
}

// decodeDirentsPlus decodes a READDIRPLUS reply and checks each entry as
// Linux parse_dirplusfile and fuse_direntplus_link.
func decodeDirentsPlus(p []byte) ([]DirentPlus, error) {
	var out []DirentPlus
	for len(p) > 0 {
		if len(p) < direntplusHeaderSize {
			return nil, badReply("direntplus: %d trailing bytes, shorter than a header", len(p))
		}
		d := dec{b: p}
		en := d.entry()
		de, n, err := decodeDirent(p[entryOutSize:])
		if err != nil {
			return nil, err
		}
		if en.NodeID == 0 || de.Name == "." || de.Name == ".." {
			en = Entry{}
		} else {
			if en.NodeID == RootID {
				return nil, badReply("direntplus: %q has the root nodeid", de.Name)
			}
			if err := validateAttr(&en.Attr); err != nil {
				return nil, err
			}
		}
		out = append(out, DirentPlus{Dirent: de, Entry: en})
		p = p[entryOutSize+n:]
	}
	return out, nil
}

// decodeEmpty checks a reply that carries no payload.
func decodeEmpty(p []byte) error {
	return checkLen("empty reply", p, 0)
}
