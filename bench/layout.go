package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// Sizes scales the workloads.
type Sizes struct {
	// SmallFiles files of SmallFileSize bytes each, in small/: stat and open+read+close.
	SmallFiles    int `json:"small_files"`
	SmallFileSize int `json:"small_file_size"`
	// BigFileSize is the size of big, read sequentially and at random; also the size written by
	// the sequential write.
	BigFileSize int64 `json:"big_file_size"`
	// IOSize is the buffer of one sequential read or write call.
	IOSize int `json:"io_size"`
	// RandomReads is the number of 4 KiB reads at random 4 KiB-aligned offsets of big.
	RandomReads int `json:"random_reads"`
	// DirEntries empty files in dir/, listed by the readdir workload.
	DirEntries int `json:"dir_entries"`
	// CreateFiles files created, written (SmallFileSize bytes), closed and unlinked.
	CreateFiles int `json:"create_files"`
	// MixedWorkers goroutines do MixedOps operations each in the mixed workload.
	MixedWorkers int `json:"mixed_workers"`
	MixedOps     int `json:"mixed_ops"`
	// RoundTrips is the number of fstat calls of the getattr workload.
	RoundTrips int `json:"round_trips"`
}

// DefaultSizes are the sizes of the full benchmark.
func DefaultSizes() Sizes {
	return Sizes{
		SmallFiles: 1000, SmallFileSize: 4096,
		BigFileSize: 64 << 20, IOSize: 1 << 20, RandomReads: 4096,
		DirEntries: 5000, CreateFiles: 500,
		MixedWorkers: 4, MixedOps: 500,
		RoundTrips: 2000,
	}
}

// QuickSizes are small sizes for CI smoke runs.
func QuickSizes() Sizes {
	return Sizes{
		SmallFiles: 100, SmallFileSize: 4096,
		BigFileSize: 4 << 20, IOSize: 1 << 20, RandomReads: 256,
		DirEntries: 300, CreateFiles: 50,
		MixedWorkers: 4, MixedOps: 50,
		RoundTrips: 2000,
	}
}

// Validate reports sizes that the workloads cannot run with.
//
// Errors: an error naming the first bad field.
func (s Sizes) Validate() error {
	switch {
	case s.SmallFiles <= 0:
		return errors.New("bench: SmallFiles must be positive")
	case s.SmallFileSize <= 0:
		return errors.New("bench: SmallFileSize must be positive")
	case s.BigFileSize < randomReadSize:
		return fmt.Errorf("bench: BigFileSize must be at least %d", randomReadSize)
	case s.IOSize <= 0:
		return errors.New("bench: IOSize must be positive")
	case s.RandomReads <= 0 || s.DirEntries <= 0 || s.CreateFiles <= 0:
		return errors.New("bench: RandomReads, DirEntries and CreateFiles must be positive")
	case s.MixedWorkers <= 0 || s.MixedOps <= 0:
		return errors.New("bench: MixedWorkers and MixedOps must be positive")
	case s.RoundTrips <= 0:
		return errors.New("bench: RoundTrips must be positive")
	}
	return nil
}

// Names in the prepared directory. Each round of each workload has a file set of its own,
// sets/r<round>-<workload>/, holding what the workload reads (small/, big, dir/), so that a client
// that lives across measurements (govirtiofs in the guest, see GovirtiofsShared) meets files it
// has never seen in every cold measurement.
const (
	setsDir    = "sets"
	smallDir   = "small"
	bigFile    = "big"
	listDir    = "dir"
	scratchDir = "scratch"
	// layoutFile records the Sizes and rounds a directory was prepared with.
	layoutFile = "layout.json"
)

// Uses says which parts of a file set a workload reads.
type Uses uint8

const (
	UsesSmall Uses = 1 << iota // small/: SmallFiles files of SmallFileSize bytes
	UsesBig                    // big: BigFileSize bytes
	UsesDir                    // dir/: DirEntries empty files
)

// SetDir returns the file set of round r of workload w, relative to the shared directory.
func SetDir(r int, w string) string { return fmt.Sprintf("%s/r%d-%s", setsDir, r, w) }

func smallName(set string, i int) string { return fmt.Sprintf("%s/%s/f%05d", set, smallDir, i) }
func bigName(set string) string          { return set + "/" + bigFile }
func listName(set string, i int) string  { return fmt.Sprintf("%s/%s/e%06d", set, listDir, i) }

// fill writes deterministic pseudo-random bytes into b.
func fill(b []byte, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	for i := 0; i < len(b); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
}

// Prepare lays out dir for rounds rounds of the workloads at sizes s: a file set per round and
// workload (SetDir) with what the workload uses, and an empty scratch/. A directory already
// prepared with the same sizes, rounds and workloads is kept as it is, except that scratch/ is
// emptied.
//
// Errors: invalid sizes, or the first failing file operation.
func Prepare(dir string, s Sizes, rounds int) error {
	if err := s.Validate(); err != nil {
		return err
	}
	var names []string // a new workload needs file sets of its own
	for _, w := range Workloads() {
		names = append(names, w.Name)
	}
	want, err := json.Marshal(struct {
		Sizes     Sizes    `json:"sizes"`
		Rounds    int      `json:"rounds"`
		Workloads []string `json:"workloads"`
	}{s, rounds, names})
	if err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(dir, scratchDir)); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, scratchDir), 0o777); err != nil {
		return err
	}
	if got, err := os.ReadFile(filepath.Join(dir, layoutFile)); err == nil && string(got) == string(want) {
		return nil
	}
	for _, d := range []string{setsDir, layoutFile} {
		if err := os.RemoveAll(filepath.Join(dir, d)); err != nil {
			return err
		}
	}
	buf := make([]byte, s.SmallFileSize)
	for r := 1; r <= rounds; r++ {
		for _, w := range Workloads() {
			set := SetDir(r, w.Name)
			if err := os.MkdirAll(filepath.Join(dir, set), 0o777); err != nil {
				return err
			}
			if w.Uses&UsesSmall != 0 {
				if err := os.Mkdir(filepath.Join(dir, set, smallDir), 0o777); err != nil {
					return err
				}
				for i := range s.SmallFiles {
					fill(buf, uint64(i))
					if err := os.WriteFile(filepath.Join(dir, smallName(set, i)), buf, 0o666); err != nil {
						return err
					}
				}
			}
			if w.Uses&UsesDir != 0 {
				if err := os.Mkdir(filepath.Join(dir, set, listDir), 0o777); err != nil {
					return err
				}
				for i := range s.DirEntries {
					if err := os.WriteFile(filepath.Join(dir, listName(set, i)), nil, 0o666); err != nil {
						return err
					}
				}
			}
			if w.Uses&UsesBig != 0 {
				if err := writeBig(filepath.Join(dir, bigName(set)), s.BigFileSize); err != nil {
					return err
				}
			}
		}
	}
	// Written last: a directory whose preparation was interrupted is prepared again.
	return os.WriteFile(filepath.Join(dir, layoutFile), want, 0o666)
}

func writeBig(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		n := int64(len(buf))
		if size-off < n {
			n = size - off
		}
		fill(buf[:n], uint64(off)+1<<40)
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
