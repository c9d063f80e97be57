package pci

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// A vhost-user-fs-pci device on q35 as the guest's sysfs showed it (QEMU
// 7.2): BAR1 the MSI-X table, BAR4 the 64-bit prefetchable virtio BAR.
const qemuResource = `0x0000000000000000 0x0000000000000000 0x0000000000000000
0x00000000febd5000 0x00000000febd5fff 0x0000000000040200
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x00000000fe000000 0x00000000fe003fff 0x000000000014220c
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
`

func TestParseResource(t *testing.T) {
	bars, err := ParseResource([]byte(qemuResource))
	if err != nil {
		t.Fatalf("ParseResource: %v", err)
	}
	wantSizes := [6]uint64{1: 0x1000, 4: 0x4000}
	if got := memorySizes(bars); got != wantSizes {
		t.Errorf("memorySizes = %#x, want %#x", got, wantSizes)
	}
	if bars[4].Start != 0xfe000000 {
		t.Errorf("BAR4 start = %#x, want 0xfe000000", bars[4].Start)
	}
	io := "0x000000000000c000 0x000000000000c03f 0x0000000000040101\n" + strings.Repeat("0x0 0x0 0x0\n", 5)
	bars, err = ParseResource([]byte(io))
	if err != nil {
		t.Fatalf("ParseResource(io): %v", err)
	}
	if got := memorySizes(bars); got != ([6]uint64{}) {
		t.Errorf("memorySizes of an I/O BAR = %#x, want zeros", got)
	}
	for _, bad := range []string{"", "0x0 0x0 0x0\n", strings.Repeat("0x0 0x0\n", 6), strings.Repeat("0xg 0x0 0x0\n", 6)} {
		if _, err := ParseResource([]byte(bad)); err == nil {
			t.Errorf("ParseResource(%q): no error", bad)
		}
	}
}

func TestFind(t *testing.T) {
	dir := t.TempDir()
	devs := map[string][2]string{
		"0000:00:04.0": {"0x1af4", "0x105a"},
		"0000:00:03.0": {"0x1af4", "0x105a"},
		"0000:00:02.0": {"0x1af4", "0x1041"},
		"0000:00:01.0": {"0x8086", "0x105a"},
		"0000:00:05.0": {"junk", "0x105a"},
	}
	for name, ids := range devs {
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "vendor"), []byte(ids[0]+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "device"), []byte(ids[1]+"\n"), 0o644)
	}
	got, err := findIn(dir, VendorVirtio, DeviceFS)
	if err != nil {
		t.Fatalf("findIn: %v", err)
	}
	if want := []string{"0000:00:03.0", "0000:00:04.0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("findIn = %q, want %q", got, want)
	}
	if _, err := findIn(filepath.Join(dir, "missing"), VendorVirtio, DeviceFS); err == nil {
		t.Errorf("findIn of a missing directory: no error")
	}
}
