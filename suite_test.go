package govirtiofs_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/govirtiofs/govirtiofs"
	"github.com/govirtiofs/govirtiofs/internal/suite"
	"github.com/govirtiofs/govirtiofs/internal/virtiofsdtest"
)

// The shared suites (internal/suite) over vfstest's in-memory filesystem and over the real
// virtiofsd; qemu-tests runs the same suites in a guest, over PCI and virtio-mmio.

// reference records the comparison cases through package os in a fresh directory.
func reference(t *testing.T) *suite.Reference {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the comparison needs root (chown on the reference directory)")
	}
	ref, err := suite.RecordReference(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// TestCompareMem runs the comparison cases over the in-memory filesystem, which has Linux
// semantics but no extended attribute namespaces.
func TestCompareMem(t *testing.T) {
	suite.Compare(t, govirtiofs.NewMemFS(t), "", reference(t), "Xattr")
}

// TestCompareVirtiofsd runs every comparison case through the real virtiofsd (xattrs on) in each
// cache mode, against package os on a directory of the same host filesystem.
func TestCompareVirtiofsd(t *testing.T) {
	for _, mode := range []govirtiofs.CacheMode{govirtiofs.CacheAuto, govirtiofs.CacheNone, govirtiofs.CacheAlways} {
		t.Run(mode.String(), func(t *testing.T) {
			f, _ := govirtiofs.DialTest(t, govirtiofs.Options{Cache: mode}, virtiofsdtest.Options{Cache: mode.String(), Xattr: true})
			suite.Compare(t, f, "", reference(t))
		})
	}
}

// TestHostViewVirtiofsd checks that what the FS writes is what the host sees in the shared
// directory, and the reverse.
func TestHostViewVirtiofsd(t *testing.T) {
	f, dir := govirtiofs.DialTest(t, govirtiofs.Options{Cache: govirtiofs.CacheNone}, virtiofsdtest.Options{Cache: "none"})
	if err := f.WriteFile("/from-guest", []byte("guest"), 0o640); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "from-guest")); err != nil || string(b) != "guest" {
		t.Errorf("host reads %q, %v; want %q", b, err, "guest")
	}
	if err := os.WriteFile(filepath.Join(dir, "from-host"), []byte("host"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := f.ReadFile("from-host"); err != nil || string(b) != "host" {
		t.Errorf("FS reads %q, %v; want %q", b, err, "host")
	}
	hi, err := os.Stat(filepath.Join(dir, "from-host"))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat("from-host")
	if err != nil {
		t.Fatal(err)
	}
	if suite.DescribeInfo(fi) != suite.DescribeInfo(hi) || !fi.ModTime().Equal(hi.ModTime()) {
		t.Errorf("Stat = %s %v, host %s %v", suite.DescribeInfo(fi), fi.ModTime(), suite.DescribeInfo(hi), hi.ModTime())
	}
}

func TestIOFSMem(t *testing.T)        { suite.IOFS(t, govirtiofs.NewMemFS(t), "") }
func TestIOFSInvalidMem(t *testing.T) { suite.IOFSInvalid(t, govirtiofs.NewMemFS(t), "") }

func TestIOFSVirtiofsd(t *testing.T) {
	f, _ := govirtiofs.DialTest(t, govirtiofs.Options{}, virtiofsdtest.Options{})
	suite.IOFS(t, f, "")
}

// TestIOFSHostTreeVirtiofsd runs fstest.TestFS on a tree the host wrote before the FS saw it.
func TestIOFSHostTreeVirtiofsd(t *testing.T) {
	f, dir := govirtiofs.DialTest(t, govirtiofs.Options{}, virtiofsdtest.Options{})
	if err := os.Mkdir(filepath.Join(dir, "tree"), 0o755); err != nil {
		t.Fatal(err)
	}
	want, err := suite.WriteTree(suite.OS(filepath.Join(dir, "tree")))
	if err != nil {
		t.Fatal(err)
	}
	suite.CheckTree(t, f, "tree", want)
}

func TestIOFSInvalidVirtiofsd(t *testing.T) {
	f, _ := govirtiofs.DialTest(t, govirtiofs.Options{}, virtiofsdtest.Options{})
	suite.IOFSInvalid(t, f, "")
}

func TestConcurrencyMem(t *testing.T) { suite.Concurrency(t, govirtiofs.NewMemFS(t), "", 16, 20) }

func TestConcurrencyVirtiofsd(t *testing.T) {
	for _, mode := range []govirtiofs.CacheMode{govirtiofs.CacheAuto, govirtiofs.CacheNone} {
		t.Run(mode.String(), func(t *testing.T) {
			f, _ := govirtiofs.DialTest(t, govirtiofs.Options{Cache: mode, RequestQueues: 2}, virtiofsdtest.Options{Cache: mode.String()})
			suite.Concurrency(t, f, "", 16, 10)
		})
	}
}

func TestLocksMem(t *testing.T) { suite.Locks(t, govirtiofs.NewMemFS(t), "") }

func TestLocksVirtiofsd(t *testing.T) {
	f, _ := govirtiofs.DialTest(t, govirtiofs.Options{}, virtiofsdtest.Options{ExtraArgs: []string{"-o", "flock"}})
	suite.Locks(t, f, "")
}

func TestNamesMem(t *testing.T) { suite.Names(t, govirtiofs.NewMemFS(t), "") }

func TestNamesVirtiofsd(t *testing.T) {
	f, _ := govirtiofs.DialTest(t, govirtiofs.Options{}, virtiofsdtest.Options{})
	suite.Names(t, f, "")
}

// TestSubmountVirtiofsd checks that a host mount point inside the share (announced by
// virtiofsd) shows as another device, as in a Linux guest.
func TestSubmountVirtiofsd(t *testing.T) {
	dir := t.TempDir()
	mnt := virtiofsdtest.Submount(t, dir, "mnt")
	if err := os.WriteFile(filepath.Join(mnt, suite.SubmountInner), []byte(suite.SubmountData), 0o644); err != nil {
		t.Fatal(err)
	}
	d := virtiofsdtest.Start(t, dir, virtiofsdtest.Options{AnnounceSubmounts: true})
	f, err := govirtiofs.Dial(context.Background(), d.Socket, govirtiofs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	suite.Submount(t, f, "mnt")
}
