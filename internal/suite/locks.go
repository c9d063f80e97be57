package suite

import (
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs"
)

// locker is the flock interface of one open file.
type locker interface {
	Lock() error
	RLock() error
	TryLock() (bool, error)
	TryRLock() (bool, error)
	Unlock() error
	Close() error
}

// osLocker is flock(2) on an *os.File.
type osLocker struct{ f *os.File }

func (l osLocker) flock(how int) error { return unix.Flock(int(l.f.Fd()), how) }
func (l osLocker) Lock() error         { return l.flock(unix.LOCK_EX) }
func (l osLocker) RLock() error        { return l.flock(unix.LOCK_SH) }
func (l osLocker) Unlock() error       { return l.flock(unix.LOCK_UN) }
func (l osLocker) Close() error        { return l.f.Close() }
func (l osLocker) try(how int) (bool, error) {
	err := l.flock(how | unix.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}
func (l osLocker) TryLock() (bool, error)  { return l.try(unix.LOCK_EX) }
func (l osLocker) TryRLock() (bool, error) { return l.try(unix.LOCK_SH) }

// lockSteps is a sequence of flock operations on three open files of one
// file, with the results flock(2) gives.
var lockSteps = []struct {
	file int
	op   string
	want bool // for Try*
}{
	{0, "Lock", true},
	{1, "TryLock", false},
	{1, "TryRLock", false},
	{0, "Lock", true}, // again: no change
	{0, "Unlock", true},
	{1, "TryRLock", true},
	{2, "TryRLock", true},
	{0, "TryLock", false},
	{1, "TryLock", false}, // conversion blocked by file 2's shared lock
	{2, "Unlock", true},
	{1, "TryLock", true}, // conversion
	{2, "TryRLock", false},
	{1, "Close", true}, // closing releases
	{2, "TryLock", true},
	{0, "Unlock", true}, // no lock held: not an error
	{2, "Unlock", true},
	{0, "TryRLock", true},
}

func runLockSteps(t *testing.T, open func() locker) []string {
	t.Helper()
	files := []locker{open(), open(), open()}
	var got []string
	for i, s := range lockSteps {
		l := files[s.file]
		var ok bool
		var err error
		switch s.op {
		case "Lock":
			ok, err = true, l.Lock()
		case "RLock":
			ok, err = true, l.RLock()
		case "TryLock":
			ok, err = l.TryLock()
		case "TryRLock":
			ok, err = l.TryRLock()
		case "Unlock":
			ok, err = true, l.Unlock()
		case "Close":
			ok, err = true, l.Close()
		}
		if err != nil {
			t.Errorf("step %d: file %d %s: %v", i, s.file, s.op, err)
		}
		if ok != s.want {
			t.Errorf("step %d: file %d %s = %v, want %v", i, s.file, s.op, ok, s.want)
		}
		got = append(got, s.op)
	}
	files[0].Close()
	files[2].Close()
	return got
}

// Locks runs lockSteps on base/lockme through the FS (virtiofsd needs -o flock) and, to check
// the expectations themselves, through flock(2) on a file in a local temporary directory; then
// checks that a waiting Lock is granted once the holder unlocks, and Lock of a closed file.
func Locks(t *testing.T, f *govirtiofs.FS, base string) {
	lockme := join(base, "lockme")
	if err := f.WriteFile(lockme, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("FS", func(t *testing.T) {
		runLockSteps(t, func() locker {
			file, err := f.OpenFile(lockme, govirtiofs.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			return file
		})
	})
	t.Run("os", func(t *testing.T) {
		ref := t.TempDir() + "/lockme"
		if err := os.WriteFile(ref, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		runLockSteps(t, func() locker {
			file, err := os.OpenFile(ref, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			return osLocker{file}
		})
	})
	// A waiting Lock returns only once the holder has unlocked.
	holder, err := f.OpenFile(lockme, govirtiofs.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	waiter, err := f.OpenFile(lockme, govirtiofs.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	var unlocked atomic.Bool
	done := make(chan error)
	go func() {
		err := waiter.Lock()
		if err == nil && !unlocked.Load() {
			err = errors.New("granted while the holder still had the lock")
		}
		done <- err
	}()
	unlocked.Store(true)
	if err := holder.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("waiting Lock: %v", err)
	}
	holder.Close()
	waiter.Close()

	file, err := f.Open(lockme)
	if err != nil {
		t.Fatal(err)
	}
	file.Close()
	if err := file.Lock(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Lock of a closed file = %v, want fs.ErrClosed", err)
	}
}
