package govirtiofs

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/govirtiofs/govirtiofs/internal/virtiofsdtest"
)

// dialTest starts a virtiofsd sharing a fresh directory and dials it. The
// FS is closed when the test ends. It returns the FS and the shared
// directory.
func dialTest(t testing.TB, opts Options, dopts virtiofsdtest.Options) (*FS, string) {
	t.Helper()
	dir := t.TempDir()
	d := virtiofsdtest.Start(t, dir, dopts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := Dial(ctx, d.Socket, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil && !errors.Is(err, fs.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return f, dir
}

// TestCompareVirtiofsd runs every comparison case through the real
// virtiofsd (xattrs on) in each cache mode, against package os on a
// directory of the same host filesystem.
func TestCompareVirtiofsd(t *testing.T) {
	for _, mode := range []CacheMode{CacheAuto, CacheNone, CacheAlways} {
		t.Run(mode.String(), func(t *testing.T) {
			f, _ := dialTest(t, Options{Cache: mode}, virtiofsdtest.Options{Cache: mode.String(), Xattr: true})
			runCompare(t, f, t.TempDir(), nil)
		})
	}
}

// TestHostViewVirtiofsd checks that what the FS writes is what the host
// sees in the shared directory, and the reverse.
func TestHostViewVirtiofsd(t *testing.T) {
	f, dir := dialTest(t, Options{Cache: CacheNone}, virtiofsdtest.Options{Cache: "none"})
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
	if describeInfo(fi) != describeInfo(hi) || !fi.ModTime().Equal(hi.ModTime()) {
		t.Errorf("Stat = %s %v, host %s %v", describeInfo(fi), fi.ModTime(), describeInfo(hi), hi.ModTime())
	}
}

func TestIOFSVirtiofsd(t *testing.T) {
	f, _ := dialTest(t, Options{}, virtiofsdtest.Options{})
	testIOFS(t, f)
}

func TestIOFSInvalidVirtiofsd(t *testing.T) {
	f, _ := dialTest(t, Options{}, virtiofsdtest.Options{})
	testIOFSInvalid(t, f)
}

func TestConcurrencyVirtiofsd(t *testing.T) {
	for _, mode := range []CacheMode{CacheAuto, CacheNone} {
		t.Run(mode.String(), func(t *testing.T) {
			f, _ := dialTest(t, Options{Cache: mode, RequestQueues: 2}, virtiofsdtest.Options{Cache: mode.String()})
			testConcurrency(t, f, 16, 10)
		})
	}
}

func TestLocksVirtiofsd(t *testing.T) {
	f, _ := dialTest(t, Options{}, virtiofsdtest.Options{ExtraArgs: []string{"-o", "flock"}})
	testLocks(t, f)
}

func TestNamesVirtiofsd(t *testing.T) {
	f, _ := dialTest(t, Options{}, virtiofsdtest.Options{})
	testNames(t, f)
}

// TestDAXVirtiofsd checks that asking for DAX on virtiofsd, which has no
// window, fails clearly.
func TestDAXVirtiofsd(t *testing.T) {
	for _, mode := range []DAXMode{DAXAlways, DAXInode} {
		dir := t.TempDir()
		d := virtiofsdtest.Start(t, dir, virtiofsdtest.Options{})
		f, err := Dial(context.Background(), d.Socket, Options{DAX: mode})
		if err == nil {
			f.Close()
			t.Fatalf("Dial with DAX %v succeeded", mode)
		}
		if !errors.Is(err, errNoDAXWindow) {
			t.Errorf("Dial with DAX %v = %v, want the no-DAX-window error", mode, err)
		}
	}
}

// TestDialErrors checks Dial's failures: no back end, bad options.
func TestDialErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := Dial(ctx, filepath.Join(t.TempDir(), "nothing.sock"), Options{}); err == nil {
		t.Errorf("Dial of a missing socket succeeded")
	}
	if _, err := Dial(ctx, "unused", Options{Cache: 42}); err == nil {
		t.Errorf("Dial with an invalid cache mode succeeded")
	}
}

// TestCloseVirtiofsd checks that Close writes back an open file's data and
// ends the session, after which virtiofsd exits.
func TestCloseVirtiofsd(t *testing.T) {
	dir := t.TempDir()
	d := virtiofsdtest.Start(t, dir, virtiofsdtest.Options{Cache: "always", ExtraArgs: []string{"-o", "writeback"}})
	f, err := Dial(context.Background(), d.Socket, Options{Cache: CacheAlways, Writeback: true})
	if err != nil {
		t.Fatal(err)
	}
	file, err := f.Create("unclosed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := file.WriteString("written back at Close"); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := f.Stat("unclosed"); err != nil || i < 0 {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "unclosed")); err != nil || string(b) != "written back at Close" {
		t.Errorf("host reads %q, %v after Close", b, err)
	}
	<-d.Done() // virtiofsd exits once its front end is gone
	if _, err := f.Stat("unclosed"); err == nil {
		t.Errorf("Stat after Close succeeded")
	}
}
