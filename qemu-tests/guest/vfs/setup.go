// Package vfs is the guest half of qemutests.TestVFS: its tests (built with "go test -c" and run
// as the guest program) open the virtio-fs share with govirtiofs.Open, over PCI on q35 or
// virtio-mmio on microvm, and run the shared VFS suites of internal/suite on it once per cache
// mode, in one boot.
//
// The host prepares the share before boot and describes it in a [Setup] file at its root: the
// os-comparison reference it recorded, a tree for fstest.TestFS that it wrote itself, and a tmpfs
// mount point inside the share (virtiofsd runs with -o announce_submounts, -o xattr and -o
// flock). Each cache mode works in its own directory, [ModeDir], which the host inspects after
// the guest has exited.
//
// Lock order: the package has no locks.
package vfs

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/govirtiofs/govirtiofs/internal/suite"
)

// SetupFile is the name of the [Setup] file at the root of the share.
const SetupFile = "vfs-setup.json"

// Setup is what the host prepared in the share for the guest suites.
type Setup struct {
	// Reference is the comparison cases' record through package os on the host, on the
	// filesystem that backs the share.
	Reference *suite.Reference `json:"reference"`
	// Tree is the directory, relative to the share's root, where the host wrote the
	// suite.WriteTree tree; TreeNames are the names that call returned.
	Tree      string   `json:"tree"`
	TreeNames []string `json:"tree_names"`
	// Submount is the host mount point inside the share (relative), holding suite.SubmountInner.
	Submount string `json:"submount"`
	// Modes are the client cache modes to run the suites in, in order ("none", "auto",
	// "always").
	Modes []string `json:"modes"`
	// IOFSModes and HostTreeModes are the modes that run fstest.TestFS (suite.IOFS on a tree the
	// guest writes, suite.CheckTree on the host's). fstest reads files a few bytes at a time:
	// with cache none (direct I/O) that is a round trip each, minutes under TCG, and even
	// cached it is the slowest suite, so each runs in one mode.
	IOFSModes     []string `json:"iofs_modes"`
	HostTreeModes []string `json:"host_tree_modes"`
	// LatencyCalls is how many Stat calls to time with cache "none" (0: none).
	LatencyCalls int `json:"latency_calls"`
	// Workers and Rounds size the concurrency suite.
	Workers int `json:"workers"`
	Rounds  int `json:"rounds"`
}

// ModeDir is the directory, relative to the share's root, where the suites of cache mode run.
func ModeDir(mode string) string { return "guest-" + mode }

// FromGuest is the file, relative to ModeDir, that the guest writes for the host to check
// after exit, and FromGuestData its contents for mode.
const FromGuest = "from-guest"

// FromGuestData is what the guest writes to ModeDir(mode)/FromGuest.
func FromGuestData(mode string) string { return "written by the guest with cache " + mode + "\n" }

// ResultPrefix starts the line the guest prints as each suite of a mode ends:
// "VFSGUEST PASS auto/Compare 1.2s" (or FAIL). The guest runs without -test.v, whose results
// all come in one burst at the end; these lines come as the suites end.
const ResultPrefix = "VFSGUEST "

// LatencyPrefix starts the guest's output line reporting Stat latency with cache none.
const LatencyPrefix = "VFSGUEST GETATTR "

// WriteSetup writes s as dir/SetupFile.
//
// Errors: encoding or writing the file failed.
func WriteSetup(dir string, s *Setup) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encoding the setup: %w", err)
	}
	return os.WriteFile(dir+"/"+SetupFile, b, 0o644)
}

// ZeroCopyFile is the file, relative to the share's root, that the guest writes through an FS
// opened with Options.ZeroCopy; ZeroCopyData returns its contents, which the host checks after
// exit.
const ZeroCopyFile = "guest-zerocopy"

// ZeroCopy layout: ZeroCopySize bytes of a fixed pseudo-random pattern, except for ZeroCopyHole
// bytes of zeros at ZeroCopyHoleOff (the guest writes those from a freshly allocated buffer).
const (
	ZeroCopySize    = 3<<20 + 12345
	ZeroCopyHoleOff = 2 << 20
	ZeroCopyHole    = 256 << 10
)

// ZeroCopyData returns the contents of ZeroCopyFile.
func ZeroCopyData() []byte {
	b := make([]byte, ZeroCopySize)
	x := uint32(2463534242) // xorshift32
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	clear(b[ZeroCopyHoleOff : ZeroCopyHoleOff+ZeroCopyHole])
	return b
}
