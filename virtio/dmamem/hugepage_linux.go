package dmamem

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// nrHugepagesPath is the pool of 2 MiB hugepages; /proc/sys/vm/nr_hugepages
// is the same pool when 2 MiB is the default size.
const (
	hugepageDir      = "/sys/kernel/mm/hugepages/hugepages-2048kB"
	nrHugepagesPath  = hugepageDir + "/nr_hugepages"
	freeHugepagePath = hugepageDir + "/free_hugepages"
	pagemapPath      = "/proc/self/pagemap"
	mapHuge2MB       = 21 << unix.MAP_HUGE_SHIFT
)

// New maps pages 2 MiB hugepages, locked in RAM, and returns them as DMA
// memory. If fewer than pages hugepages are free it grows the pool by
// writing nr_hugepages, and Close shrinks it back.
//
// Errors: not root; hugepages that cannot be had (the kernel could not find
// contiguous 2 MiB runs: boot with hugepages=N); a page whose physical
// address cannot be read.
func New(pages int) (*Memory, error) {
	if pages < 1 {
		return nil, fmt.Errorf("dmamem: New(%d): need at least one page", pages)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("dmamem: DMA memory needs root: hugepages are reserved through sysfs and physical addresses read from /proc/self/pagemap (CAP_SYS_ADMIN)")
	}
	added, err := reserve(pages)
	if err != nil {
		return nil, err
	}
	m, err := mapPages(pages)
	if err != nil {
		release(added)
		return nil, err
	}
	unmap := m.unmap
	m.unmap = func() error {
		err := unmap()
		release(added)
		return err
	}
	return m, nil
}

// reserve makes sure pages hugepages are free, growing the pool if not,
// and returns how many it added.
func reserve(pages int) (int, error) {
	free, err := readInt(freeHugepagePath)
	if err != nil {
		return 0, fmt.Errorf("dmamem: 2 MiB hugepages unsupported by this kernel: %w", err)
	}
	if free >= pages {
		return 0, nil
	}
	nr, err := readInt(nrHugepagesPath)
	if err != nil {
		return 0, err
	}
	want := nr + pages - free
	if err := os.WriteFile(nrHugepagesPath, []byte(strconv.Itoa(want)), 0); err != nil {
		return 0, fmt.Errorf("dmamem: reserving hugepages: %w", err)
	}
	got, err := readInt(nrHugepagesPath)
	if err != nil {
		return 0, err
	}
	if got < want {
		// The kernel found fewer free 2 MiB runs than asked for: give back
		// what it found.
		os.WriteFile(nrHugepagesPath, []byte(strconv.Itoa(nr)), 0)
		return 0, fmt.Errorf("dmamem: want %d free 2 MiB hugepages, the kernel could reserve only %d of %d: boot with hugepages=%d on the kernel command line (or write /proc/sys/vm/nr_hugepages early)", pages, got-nr+free, pages, pages)
	}
	return got - nr, nil
}

// release shrinks the pool by n pages added by reserve.
func release(n int) {
	if n == 0 {
		return
	}
	if nr, err := readInt(nrHugepagesPath); err == nil && nr >= n {
		os.WriteFile(nrHugepagesPath, []byte(strconv.Itoa(nr-n)), 0)
	}
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("dmamem: %s: %w", path, err)
	}
	return n, nil
}

// mapPages maps and locks the hugepages and reads their physical addresses.
func mapPages(pages int) (*Memory, error) {
	size := pages * HugePageSize
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_SHARED|unix.MAP_ANONYMOUS|unix.MAP_HUGETLB|mapHuge2MB|unix.MAP_POPULATE|unix.MAP_LOCKED)
	if err != nil {
		return nil, fmt.Errorf("dmamem: mmap of %d hugepages: %w (boot with hugepages=%d on the kernel command line)", pages, err, pages)
	}
	fail := func(err error) (*Memory, error) {
		unix.Munmap(b)
		return nil, err
	}
	// MAP_LOCKED is best effort; mlock reports failure.
	if err := unix.Mlock(b); err != nil {
		return fail(fmt.Errorf("dmamem: mlock of %d bytes: %w", size, err))
	}
	f, err := os.Open(pagemapPath)
	if err != nil {
		return fail(fmt.Errorf("dmamem: %w", err))
	}
	defer f.Close()
	base := uintptrOf(b)
	base4k := os.Getpagesize()
	entries := make([]byte, HugePageSize/base4k*pagemapEntrySize)
	ps := make([]Page, pages)
	for i := range ps {
		page := b[i*HugePageSize : (i+1)*HugePageSize : (i+1)*HugePageSize]
		va := base + uint64(i*HugePageSize)
		if _, err := f.ReadAt(entries, int64(va/uint64(base4k))*pagemapEntrySize); err != nil {
			return fail(fmt.Errorf("dmamem: reading %s: %w", pagemapPath, err))
		}
		pa, err := PhysicalRun(entries, base4k)
		if err != nil {
			return fail(fmt.Errorf("hugepage %d: %w", i, err))
		}
		ps[i] = Page{Bytes: page, Addr: pa}
	}
	m, err := newMemory(ps)
	if err != nil {
		return fail(err)
	}
	m.unmap = func() error { return unix.Munmap(b) }
	return m, nil
}
