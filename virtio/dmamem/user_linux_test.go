package dmamem

import (
	"os"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/virtio"
)

// TestResolveRuns resolves a heap buffer that starts and ends inside a
// page and checks the runs: in order, covering it exactly, each starting
// at its byte's offset in the page, merged wherever the pages are physical
// neighbours.
func TestResolveRuns(t *testing.T) {
	r, err := NewPageResolver()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 1<<20+8192)
	for i := range buf {
		buf[i] = byte(i) // populate every page
	}
	for _, c := range []struct{ off, n int }{{0, 1}, {77, 4096}, {4095, 2}, {123, 600001}, {0, 1 << 20}} {
		b := buf[c.off : c.off+c.n]
		runs, err := r.Resolve(b, make([]virtio.Buffer, 1, 8))
		if err != nil {
			t.Fatalf("Resolve(%d bytes at %d): %v", c.n, c.off, err)
		}
		runs = runs[1:] // the slot the caller kept
		pos := 0
		for i, run := range runs {
			if len(run.Bytes) == 0 || unsafe.SliceData(run.Bytes) != &b[pos] {
				t.Fatalf("%d bytes at %d: run %d (%d bytes) is not b[%d:]", c.n, c.off, i, len(run.Bytes), pos)
			}
			va := uintptrOf(run.Bytes)
			if run.Addr%uint64(userPageSize) != va%uint64(userPageSize) {
				t.Errorf("%d bytes at %d: run %d at physical %#x for virtual %#x: page offsets differ", c.n, c.off, i, run.Addr, va)
			}
			if i > 0 {
				prev := runs[i-1]
				if prev.Addr+uint64(len(prev.Bytes)) == run.Addr {
					t.Errorf("%d bytes at %d: runs %d and %d are physical neighbours, not merged", c.n, c.off, i-1, i)
				}
			}
			pos += len(run.Bytes)
		}
		if pos != len(b) {
			t.Errorf("%d bytes at %d: runs cover %d bytes", c.n, c.off, pos)
		}
	}
}

// TestResolveHugepage checks Resolve against the hugepage memory's own
// translation: a buffer inside one hugepage is one run at its address.
func TestResolveHugepage(t *testing.T) {
	m, err := New(1)
	if err != nil {
		t.Fatalf("New(1): %v", err)
	}
	defer m.Close()
	r, err := NewPageResolver()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := m.Alloc(1<<20, 4096)
	if err != nil {
		t.Fatal(err)
	}
	part := b.Bytes[100 : 100+(512<<10)]
	runs, err := r.Resolve(part, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].Addr != b.Addr+100 || len(runs[0].Bytes) != len(part) {
		t.Errorf("Resolve of 512 KiB at byte 100 of a hugepage buffer at %#x: %d runs, first at %#x; want one at %#x", b.Addr, len(runs), runs[0].Addr, b.Addr+100)
	}
}

// TestResolveRejects checks the buffers Resolve cannot hand a device.
func TestResolveRejects(t *testing.T) {
	r, err := NewPageResolver()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Resolve(nil, nil); err == nil {
		t.Error("Resolve(nil): no error")
	}
	// Mapped, never touched: no page is present, so no address exists.
	m, err := unix.Mmap(-1, 0, 2*userPageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	if _, err := r.Resolve(m, nil); err == nil || !strings.Contains(err.Error(), "not present") {
		t.Errorf("Resolve of untouched memory: %v, want a page not present", err)
	}
	big := make([]byte, (maxResolvePages+1)*userPageSize)
	if _, err := r.Resolve(big, nil); err == nil {
		t.Errorf("Resolve of %d pages: no error", maxResolvePages+1)
	}
}

// TestParseSystemRAM reads the top-level RAM ranges of an iomem listing
// and refuses one whose addresses are hidden.
func TestParseSystemRAM(t *testing.T) {
	iomem := "00000000-00000fff : Reserved\n" +
		"00001000-0009fbff : System RAM\n" +
		"000a0000-000bffff : PCI Bus 0000:00\n" +
		"100000000-23fffffff : System RAM\n" +
		"  1c5a00000-1c6801fff : Kernel code\n" +
		"00100000-7ffdffff : System RAM\n" +
		"  00200000-003fffff : System RAM\n" + // nested: not a range of its own
		"fd000000-fdffffff : 0000:00:02.0\n"
	ram, err := parseSystemRAM(iomem)
	if err != nil {
		t.Fatal(err)
	}
	want := []physRange{{0x1000, 0x9fc00}, {0x100000, 0x7ffe0000}, {0x100000000, 0x240000000}}
	if !slices.Equal(ram, want) {
		t.Errorf("parseSystemRAM = %x, want %x", ram, want)
	}
	r := &PageResolver{ram: ram}
	for _, c := range []struct {
		addr, n uint64
		in      bool
	}{
		{0x100000, 4096, true}, {0x7ffdf000, 4096, true}, {0x7ffdf000, 8192, false},
		{0xfd000000, 4096, false}, {0x23ffff000, 4096, true}, {0x240000000, 4096, false}, {0, 4096, false},
	} {
		if got := r.inRAM(c.addr, c.n); got != c.in {
			t.Errorf("inRAM(%#x, %d) = %v, want %v", c.addr, c.n, got, c.in)
		}
	}
	hidden := "00000000-00000000 : System RAM\n00000000-00000000 : System RAM\n"
	if _, err := parseSystemRAM(hidden); err == nil {
		t.Error("parseSystemRAM of hidden addresses: no error")
	}
	if _, err := parseSystemRAM("0010zzzz-00ffffff : System RAM\n"); err == nil {
		t.Error("parseSystemRAM of a malformed line: no error")
	}
}

// TestResolveWritable resolves memory for the device to write: the
// process's own written pages resolve; untouched pages, the zero page,
// shared memory and a file's pages do not.
func TestResolveWritable(t *testing.T) {
	r, err := NewPageResolver()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	own := make([]byte, 64*userPageSize)
	for i := range own {
		own[i] = byte(i)
	}
	b := own[100 : 60*userPageSize+3]
	runs, err := r.ResolveWritable(b, nil)
	if err != nil {
		t.Fatalf("ResolveWritable of written heap memory: %v", err)
	}
	total := 0
	for _, run := range runs {
		total += len(run.Bytes)
	}
	if total != len(b) {
		t.Errorf("runs cover %d bytes, want %d", total, len(b))
	}

	mapping := func(prot, flags, fd int) []byte {
		m, err := unix.Mmap(fd, 0, 4*userPageSize, prot, flags)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Munmap(m) })
		return m
	}
	untouched := mapping(unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, -1)
	zero := mapping(unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, -1)
	for i := 0; i < len(zero); i += userPageSize {
		_ = zero[i] // read-faulted: the shared zero page
	}
	shared := mapping(unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS, -1)
	for i := range shared {
		shared[i] = 1
	}
	f, err := os.CreateTemp(t.TempDir(), "page")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, 4*userPageSize)); err != nil {
		t.Fatal(err)
	}
	file := mapping(unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE, int(f.Fd()))
	for i := 0; i < len(file); i += userPageSize {
		_ = file[i] // read-faulted: the file's page-cache pages
	}
	for name, m := range map[string][]byte{"untouched": untouched, "zero page": zero, "shared": shared, "file": file} {
		if _, err := r.ResolveWritable(m, nil); err == nil {
			t.Errorf("ResolveWritable of %s memory: no error", name)
		}
	}
	// Reading them is fine: the device only reads.
	if _, err := r.Resolve(shared, nil); err != nil {
		t.Errorf("Resolve of shared memory: %v", err)
	}
}
