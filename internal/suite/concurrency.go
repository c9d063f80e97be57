package suite

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"testing"

	"github.com/govirtiofs/govirtiofs"
)

// Concurrency uses one FS from many goroutines below base/conc: each worker works in its own
// directory and all of them in a shared one, and one *File is shared for ReadAt and WriteAt. Run
// it with -race.
func Concurrency(t *testing.T, f *govirtiofs.FS, base string, workers, rounds int) {
	conc := join(base, "conc")
	if err := f.MkdirAll(conc+"/shared", 0o755); err != nil {
		t.Fatal(err)
	}
	shared, err := f.Create(conc + "/blocks")
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	const block = 4096
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			if err := concurrencyWorker(f, conc, shared, w, rounds, block); err != nil {
				errs <- fmt.Errorf("worker %d: %w", w, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Each worker left its last round's file in the shared directory.
	names, err := f.ReadDir(conc + "/shared")
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, e := range names {
		got = append(got, e.Name())
	}
	for w := range workers {
		want = append(want, fmt.Sprintf("w%d-%d", w, rounds-1))
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s/shared holds %q, want %q", conc, got, want)
	}
	// Every block of the shared file holds its worker's byte.
	buf := make([]byte, block)
	for w := range workers {
		if _, err := shared.ReadAt(buf, int64(w*block)); err != nil {
			t.Fatalf("ReadAt block %d: %v", w, err)
		}
		if want := bytes.Repeat([]byte{byte('a' + w%26)}, block); !bytes.Equal(buf, want) {
			t.Errorf("block %d holds %q..., want %q...", w, buf[:8], want[:8])
		}
	}
}

func concurrencyWorker(f *govirtiofs.FS, conc string, shared *govirtiofs.File, w, rounds, block int) error {
	dir := fmt.Sprintf("%s/w%d", conc, w)
	if err := f.Mkdir(dir, 0o755); err != nil {
		return err
	}
	mine := bytes.Repeat([]byte{byte('a' + w%26)}, block)
	for r := range rounds {
		name := fmt.Sprintf("%s/f%d", dir, r)
		data := []byte(fmt.Sprintf("worker %d round %d", w, r))
		if err := f.WriteFile(name, data, 0o644); err != nil {
			return err
		}
		got, err := f.ReadFile(name)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, data) {
			return fmt.Errorf("ReadFile(%s) = %q, want %q", name, got, data)
		}
		if fi, err := f.Stat(name); err != nil || fi.Size() != int64(len(data)) {
			return fmt.Errorf("Stat(%s) = %v, %v; want size %d", name, fi, err, len(data))
		}
		// The shared directory: create, rename over the previous round's
		// name, remove the old one.
		sname := fmt.Sprintf("%s/shared/w%d-%d", conc, w, r)
		if err := f.WriteFile(sname+".tmp", data, 0o600); err != nil {
			return err
		}
		if err := f.Rename(sname+".tmp", sname); err != nil {
			return err
		}
		if r > 0 {
			if err := f.Remove(fmt.Sprintf("%s/shared/w%d-%d", conc, w, r-1)); err != nil {
				return err
			}
		}
		if _, err := f.ReadDir(conc + "/shared"); err != nil {
			return err
		}
		// Names others are removing: only ENOENT may come back.
		if _, err := f.Stat(fmt.Sprintf("%s/shared/w%d-%d", conc, (w+1)%8, r)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if _, err := shared.WriteAt(mine, int64(w*block)); err != nil {
			return err
		}
		buf := make([]byte, block)
		if _, err := shared.ReadAt(buf, int64(w*block)); err != nil {
			return err
		}
		if !bytes.Equal(buf, mine) {
			return fmt.Errorf("ReadAt of my block = %q..., want %q...", buf[:8], mine[:8])
		}
		if r%2 == 1 {
			if err := f.Remove(name); err != nil {
				return err
			}
		}
	}
	return f.RemoveAll(dir)
}
