package dmamem

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/virtio"
)

// compactUnevictablePath is the sysctl that lets compaction migrate
// mlocked pages (Documentation/admin-guide/sysctl/vm.rst). It is absent
// from kernels built without CONFIG_COMPACTION, which migrate nothing.
const compactUnevictablePath = "/proc/sys/vm/compact_unevictable_allowed"

// userPageSize is the base page size, the granularity of pagemap.
var userPageSize = os.Getpagesize()

// LockProcess prepares the whole process for DMA from its ordinary
// memory (the Go heap), as a user-space driver with no pin_user_pages
// must: it is for a VM whose only business is this program. It
//
//   - locks every present and every future page in RAM
//     (mlockall MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT: nothing is populated
//     ahead of use, and no locked page is reclaimed or swapped);
//   - stops compaction from migrating locked pages
//     (vm.compact_unevictable_allowed = 0), the one thing that moves an
//     mlocked page of a single-node guest with no memory hotplug;
//   - turns transparent hugepages off for the process (PR_SET_THP_DISABLE),
//     so that khugepaged never collapses pages into a new huge page.
//
// After it a page of the Go heap keeps its physical address while it is
// reachable: Go never moves heap objects, and the kernel no longer moves
// the page. (Goroutine stacks do move, so a buffer must be on the heap; a
// slice handed through an interface, as every file write is, escapes to
// the heap.) Go's scavenger can no longer give freed memory back
// (MADV_DONTNEED fails on locked memory), so the process keeps its peak.
//
// LockProcess is idempotent: the first call does the work and later ones
// return its result.
//
// Errors: not root (CAP_IPC_LOCK, and the sysctl); a kernel without
// MCL_ONFAULT (before 4.4).
func LockProcess() error {
	lockOnce.Do(func() { lockErr = lockProcess() })
	return lockErr
}

var (
	lockOnce sync.Once
	lockErr  error
)

func lockProcess() error {
	if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT); err != nil {
		return fmt.Errorf("dmamem: mlockall: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_THP_DISABLE, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("dmamem: prctl(PR_SET_THP_DISABLE): %w", err)
	}
	if err := os.WriteFile(compactUnevictablePath, []byte("0\n"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("dmamem: keeping compaction off locked pages: %w", err)
	}
	return nil
}

// PageResolver finds the guest-physical pages under a caller's buffer, for
// a device to read it in place (zero-copy) instead of from a copy in DMA
// memory. Its results are only valid in a process prepared by LockProcess;
// its methods are safe for concurrent use.
type PageResolver struct {
	f   *os.File    // /proc/self/pagemap
	ram []physRange // immutable: System RAM, sorted
}

// physRange is the guest-physical range [start, end).
type physRange struct{ start, end uint64 }

// NewPageResolver opens /proc/self/pagemap and reads where RAM is
// (/proc/iomem): a page elsewhere (a BAR or a DAX window mapped into the
// process) is not something the device can read through its memory
// table, so Resolve refuses it.
//
// Errors: either file cannot be read, or /proc/iomem lists no RAM (its
// addresses read as zero without CAP_SYS_ADMIN).
func NewPageResolver() (*PageResolver, error) {
	iomem, err := os.ReadFile(iomemPath)
	if err != nil {
		return nil, fmt.Errorf("dmamem: %w", err)
	}
	ram, err := parseSystemRAM(string(iomem))
	if err != nil {
		return nil, err
	}
	f, err := os.Open(pagemapPath)
	if err != nil {
		return nil, fmt.Errorf("dmamem: %w", err)
	}
	return &PageResolver{f: f, ram: ram}, nil
}

const iomemPath = "/proc/iomem"

// parseSystemRAM returns the top-level "System RAM" ranges of a
// /proc/iomem listing ("00100000-bfffffff : System RAM"), sorted.
//
// Errors: a malformed RAM line, or no RAM with a non-zero end (addresses
// hidden from a caller without CAP_SYS_ADMIN).
func parseSystemRAM(iomem string) ([]physRange, error) {
	var ram []physRange
	for line := range strings.Lines(iomem) {
		span, name, ok := strings.Cut(strings.TrimRight(line, "\n"), " : ")
		if !ok || name != "System RAM" || strings.HasPrefix(span, " ") {
			continue
		}
		lo, hi, ok := strings.Cut(span, "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		last, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || last < start {
			return nil, fmt.Errorf("dmamem: %s: malformed line %q", iomemPath, line)
		}
		if last > 0 {
			ram = append(ram, physRange{start, last + 1})
		}
	}
	if len(ram) == 0 {
		return nil, fmt.Errorf("dmamem: %s lists no System RAM (reading its addresses needs CAP_SYS_ADMIN)", iomemPath)
	}
	slices.SortFunc(ram, func(a, b physRange) int { return cmp.Compare(a.start, b.start) })
	return ram, nil
}

// inRAM reports whether [addr, addr+n) lies in one RAM range.
func (r *PageResolver) inRAM(addr, n uint64) bool {
	for _, g := range r.ram {
		if addr >= g.start && addr < g.end {
			return n <= g.end-addr
		}
	}
	return false
}

// Close closes the pagemap file.
func (r *PageResolver) Close() error { return r.f.Close() }

// maxResolvePages bounds one Resolve: 4 MiB of 4 KiB pages, more than any
// FUSE request carries (max_pages is at most 256).
const maxResolvePages = 1024

// Resolve appends to dst the device's view of b: physically contiguous
// runs of it, in order, each a virtio.Buffer whose Bytes is that part of b
// and whose Addr is where it starts in guest-physical memory. Neighbouring
// pages that are physically neighbours too make one run.
//
// b must stay reachable, and its pages unchanged in their mapping (not
// unmapped, not remapped), for as long as the device may read the runs.
//
// Errors: an empty b or one of more than maxResolvePages pages; a page
// not present (never touched, so not populated) or not in RAM (a device
// window mapped into the process); PFNs hidden (not root); a read error.
func (r *PageResolver) Resolve(b []byte, dst []virtio.Buffer) ([]virtio.Buffer, error) {
	return r.resolve(b, dst, false)
}

// ResolveWritable is Resolve for a buffer the device is to write into.
// Every page must be this process's own anonymous page: present and
// mapped here alone (pagemap's exclusive bit), not the shared zero page,
// not a file's page-cache page or shared memory, not a copy-on-write page
// another process still maps. A device writing into such a page changes
// this buffer and nothing else; a page that is none of those (never
// touched, say) makes the caller copy instead. It reads the pagemap only:
// faulting the pages in writable first (MADV_POPULATE_WRITE) cost a TCG
// guest more than the copy it saves.
//
// Errors: as Resolve; a page that is not the process's own.
func (r *PageResolver) ResolveWritable(b []byte, dst []virtio.Buffer) ([]virtio.Buffer, error) {
	return r.resolve(b, dst, true)
}

// resolve is Resolve; with exclusive, every page must be mapped by this
// process alone.
func (r *PageResolver) resolve(b []byte, dst []virtio.Buffer, exclusive bool) ([]virtio.Buffer, error) {
	if len(b) == 0 {
		return dst, errors.New("dmamem: resolve of an empty buffer")
	}
	ps := uintptr(userPageSize)
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	first := start / ps
	last := (start + uintptr(len(b)) - 1) / ps
	pages := int(last - first + 1)
	if pages > maxResolvePages {
		return dst, fmt.Errorf("dmamem: resolve of %d bytes: %d pages, at most %d", len(b), pages, maxResolvePages)
	}
	var stack [64 * pagemapEntrySize]byte
	entries := stack[:]
	if pages*pagemapEntrySize > len(entries) {
		entries = make([]byte, pages*pagemapEntrySize)
	}
	entries = entries[:pages*pagemapEntrySize]
	if n, err := r.f.ReadAt(entries, int64(first)*pagemapEntrySize); n != len(entries) {
		return dst, fmt.Errorf("dmamem: reading pagemap: %d of %d bytes: %w", n, len(entries), err)
	}
	off := 0 // into b
	for i := range pages {
		e, _ := ParsePagemapEntry(entries[i*pagemapEntrySize:])
		switch {
		case !e.Present:
			return dst, fmt.Errorf("dmamem: page %d of a %d-byte buffer is not present in RAM", i, len(b))
		case e.PFN == 0:
			return dst, errors.New("dmamem: pagemap hides PFNs: resolving buffers needs CAP_SYS_ADMIN (run as root)")
		case exclusive && (!e.Exclusive || e.FileOrShared):
			return dst, fmt.Errorf("dmamem: page %d of a %d-byte buffer is not this process's own anonymous page", i, len(b))
		case !r.inRAM(e.PFN*uint64(ps), uint64(ps)):
			return dst, fmt.Errorf("dmamem: page %d of a %d-byte buffer is at %#x, outside RAM", i, len(b), e.PFN*uint64(ps))
		}
		inPage := 0
		if i == 0 {
			inPage = int(start % ps)
		}
		n := min(int(ps)-inPage, len(b)-off)
		addr := e.PFN*uint64(ps) + uint64(inPage)
		if k := len(dst) - 1; i > 0 && dst[k].Addr+uint64(len(dst[k].Bytes)) == addr {
			dst[k].Bytes = b[off-len(dst[k].Bytes) : off+n]
		} else {
			dst = append(dst, virtio.Buffer{Bytes: b[off : off+n], Addr: addr})
		}
		off += n
	}
	return dst, nil
}
