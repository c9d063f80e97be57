package govirtiofs

import (
	"fmt"
	"log/slog"
	"time"
)

// CacheMode selects how long the client trusts what it has cached about
// names, attributes and file data, as virtiofsd's and the Linux guest's
// -o cache= option does. The host's virtiofsd has its own cache option; the
// two are usually set alike.
type CacheMode int

const (
	// CacheAuto trusts names and attributes for one second and keeps file
	// data cached while the file's size and modification time are
	// unchanged (the default).
	CacheAuto CacheMode = iota
	// CacheNone revalidates every name and attribute on every use and
	// reads and writes file data straight through: for shares the host
	// changes under the guest.
	CacheNone
	// CacheAlways trusts names, attributes and data for a long time: for
	// shares only this client changes.
	CacheAlways
)

var cacheModeNames = [...]string{CacheAuto: "auto", CacheNone: "none", CacheAlways: "always"}

// String returns the mode's name: "auto", "none" or "always".
func (m CacheMode) String() string {
	if m >= 0 && int(m) < len(cacheModeNames) {
		return cacheModeNames[m]
	}
	return fmt.Sprintf("CacheMode(%d)", int(m))
}

// ParseCacheMode parses a cache mode name as String returns it.
//
// Errors: an error naming s for anything else.
func ParseCacheMode(s string) (CacheMode, error) {
	for m, name := range cacheModeNames {
		if s == name {
			return CacheMode(m), nil
		}
	}
	return 0, fmt.Errorf("govirtiofs: unknown cache mode %q (want auto, none or always)", s)
}

// Set implements flag.Value.
func (m *CacheMode) Set(s string) error {
	v, err := ParseCacheMode(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (m CacheMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *CacheMode) UnmarshalText(b []byte) error { return m.Set(string(b)) }

// DAXMode selects when file data is mapped through the device's DAX window
// instead of being copied through FUSE READ and WRITE (Linux -o dax=).
type DAXMode int

const (
	// DAXNever never uses the DAX window (the default).
	DAXNever DAXMode = iota
	// DAXAlways maps every regular file through the window.
	DAXAlways
	// DAXInode maps the files the server marks with FUSE_ATTR_DAX.
	DAXInode
)

var daxModeNames = [...]string{DAXNever: "never", DAXAlways: "always", DAXInode: "inode"}

// String returns the mode's name: "never", "always" or "inode".
func (m DAXMode) String() string {
	if m >= 0 && int(m) < len(daxModeNames) {
		return daxModeNames[m]
	}
	return fmt.Sprintf("DAXMode(%d)", int(m))
}

// ParseDAXMode parses a DAX mode name as String returns it.
//
// Errors: an error naming s for anything else.
func ParseDAXMode(s string) (DAXMode, error) {
	for m, name := range daxModeNames {
		if s == name {
			return DAXMode(m), nil
		}
	}
	return 0, fmt.Errorf("govirtiofs: unknown DAX mode %q (want never, always or inode)", s)
}

// Set implements flag.Value.
func (m *DAXMode) Set(s string) error {
	v, err := ParseDAXMode(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (m DAXMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *DAXMode) UnmarshalText(b []byte) error { return m.Set(string(b)) }

// DefaultDentryCacheSize is the number of unused names (negative ones
// included) kept cached when Options.DentryCacheSize is 0.
const DefaultDentryCacheSize = 10000

// Options configure Dial and Open. The zero value takes the defaults noted.
type Options struct {
	// Cache is the client's cache mode; the zero value is CacheAuto.
	Cache CacheMode
	// Writeback asks the server for FUSE_WRITEBACK_CACHE: writes are
	// gathered in the client's page cache and sent later (at Sync, Close
	// of the file, or when the cache fills).
	Writeback bool
	// DAX selects the use of the device's DAX window. Anything but
	// DAXNever fails with an error when the device has no window.
	DAX DAXMode
	// DentryCacheSize bounds the unused names kept cached (each holds a
	// reference on a server inode until it is forgotten); 0 means
	// DefaultDentryCacheSize, negative means none.
	DentryCacheSize int
	// PageCacheSize bounds the clean file data the client caches, in
	// bytes: past it the pages of the least recently used files are
	// dropped and read again when needed. 0 means an eighth of the
	// machine's memory, between 32 MiB and 1 GiB
	// (fuse.DefaultPageCacheSize). Data written but not yet written back
	// (Writeback) is not counted: it is bounded separately. The memory
	// behind the cache can reach about twice PageCacheSize: single pages
	// (small files, random reads) are carved from larger allocations and
	// kept for reuse once dropped.
	PageCacheSize int64
	// UID and GID are the credentials every request carries in its FUSE
	// header; the server creates files with them and checks permissions
	// against them. The zero value is root.
	UID, GID uint32
	// Umask is applied to the permission bits of files and directories
	// created through the FS, as the Linux kernel applies the caller's
	// umask before a FUSE CREATE, MKNOD or MKDIR. nil means this process's
	// umask (read once, at Dial or Open).
	Umask *uint32
	// Logger receives the lower layers' diagnostics (misbehaving device
	// or server); nil discards them.
	Logger *slog.Logger

	// RequestQueues is how many virtio request queues to use, at most what
	// the device offers; 0 means 1.
	RequestQueues int
	// QueueSize is each virtqueue's size, at most what the transport
	// allows; 0 means the driver's default.
	QueueSize int
	// MemorySize is the size of the DMA memory the rings and request
	// buffers come from: the shared memfd on the host (vhost-user), the
	// hugepages in a guest (rounded up to 2 MiB); 0 means 64 MiB on the
	// host and 16 MiB in a guest.
	MemorySize int

	// RequestTimeout is how long a request may go without a reply before
	// the device is taken for dead and every operation fails with ENOTCONN
	// (as Linux 6.14's fuse max_request_timeout): QEMU does not tell the
	// guest when virtiofsd dies, and without it a request waits forever.
	// 0 means DefaultRequestTimeout; negative means none.
	RequestTimeout time.Duration

	// ZeroCopy lets the device read a large write (32 KiB or more, up
	// to the server's max_write per request) straight from the caller's
	// buffer, and write a large read's data straight into the caller's
	// buffer or the page cache's, as Linux's virtio transports use the
	// pages they pinned, instead of copying through DMA memory. A
	// user-space driver cannot pin pages, so Open prepares the whole
	// process instead (dmamem.LockProcess): every page is locked in RAM
	// as it is first touched, compaction leaves locked pages alone and
	// transparent hugepages are off for the process, and the Go runtime
	// can no longer hand freed memory back to the kernel. The heap then
	// grows a 4 KiB page fault at a time (10-25 µs each under TCG):
	// a cold open, read and close of a small file, which caches a new
	// page, takes 1.2-1.6 faults instead of 0.02. That suits a VM
	// that exists to run this program, which is what Open is for; Open
	// fails if it cannot be done. With it a QueueSize of 0 means 1024, so
	// that 1 MiB of scattered 4 KiB pages fits a chain. A request that
	// outlives RequestTimeout fails while the device may still hold its
	// buffer: as with any DMA, a dead daemon's late write into a READ's
	// buffer cannot be ruled out. Dial ignores ZeroCopy: a vhost-user
	// back end reaches only the shared memory.
	ZeroCopy bool

	// OnRoundTrip, if set, is called after every FUSE request the client
	// waited for, with its opcode (include/uapi/linux/fuse.h: FUSE_GETATTR
	// is 3) and its round trip through the device: from handing the
	// request to the device to seeing the reply, without the client's own
	// work around it. It runs on the goroutine that made the request and
	// must be quick. It is for measurements; unset, no clock is read.
	OnRoundTrip func(opcode uint32, d time.Duration)
}

// DefaultRequestTimeout is Options.RequestTimeout's default: long enough
// for a slow fsync of a big file or a large write-back on a busy host, short
// enough that a dead virtiofsd does not hang a program for good.
const DefaultRequestTimeout = time.Minute

func (o *Options) requestTimeout() time.Duration {
	switch {
	case o.RequestTimeout == 0:
		return DefaultRequestTimeout
	case o.RequestTimeout < 0:
		return 0 // the driver's "none"
	}
	return o.RequestTimeout
}

// discardLogger is the Logger used when Options.Logger is nil.
var discardLogger = slog.New(slog.DiscardHandler)

func (o *Options) logger() *slog.Logger {
	if o.Logger == nil {
		return discardLogger
	}
	return o.Logger
}

func (o *Options) dentryCacheSize() int {
	switch {
	case o.DentryCacheSize == 0:
		return DefaultDentryCacheSize
	case o.DentryCacheSize < 0:
		return -1
	}
	return o.DentryCacheSize
}

// check rejects options that no device can satisfy.
func (o *Options) check() error {
	if o.Cache < CacheAuto || o.Cache > CacheAlways {
		return fmt.Errorf("govirtiofs: invalid cache mode %v", o.Cache)
	}
	if o.DAX < DAXNever || o.DAX > DAXInode {
		return fmt.Errorf("govirtiofs: invalid DAX mode %v", o.DAX)
	}
	if o.RequestQueues < 0 || o.QueueSize < 0 || o.MemorySize < 0 {
		return fmt.Errorf("govirtiofs: negative RequestQueues, QueueSize or MemorySize")
	}
	if o.PageCacheSize < 0 {
		return fmt.Errorf("govirtiofs: negative PageCacheSize %d", o.PageCacheSize)
	}
	return nil
}
