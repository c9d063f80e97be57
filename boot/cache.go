package boot

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// CacheEnv names the environment variable that overrides the default cache directory.
const CacheEnv = "GOVIRTIOFS_CACHE"

// CacheDir returns the directory that holds kernels, images and build outputs: $GOVIRTIOFS_CACHE
// if set, else .cache/ in the root of the module that contains the working directory.
//
// Errors: when neither is available (no go.mod above the working directory).
func CacheDir() (string, error) {
	if d := os.Getenv(CacheEnv); d != "" {
		return filepath.Abs(d)
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", fmt.Errorf("boot: no cache directory: set %s or run inside a module: %w", CacheEnv, err)
	}
	return filepath.Join(root, ".cache"), nil
}

// ModuleRoot returns the nearest directory at or above the working directory that holds a go.mod.
func ModuleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return moduleRootFrom(wd)
}

func moduleRootFrom(dir string) (string, error) {
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod at or above %s: %w", dir, os.ErrNotExist)
		}
		d = parent
	}
}

// hasher accumulates a cache key from labelled parts.
type hasher struct{ h io.Writer }

func newHasher() (*hasher, func() string) {
	h := sha256.New()
	return &hasher{h: h}, func() string { return hex.EncodeToString(h.Sum(nil))[:20] }
}

// str adds a labelled string; labels and lengths keep ("ab","c") apart from ("a","bc").
func (k *hasher) str(label, s string) {
	fmt.Fprintf(k.h, "%s:%d:%s\n", label, len(s), s)
}

// file adds a labelled file's contents.
func (k *hasher) file(label, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	fmt.Fprintf(k.h, "%s:%d:", label, fi.Size())
	if _, err := io.Copy(k.h, f); err != nil {
		return err
	}
	_, err = io.WriteString(k.h, "\n")
	return err
}

// exists reports whether path exists; other stat errors count as absence (the artefact is rebuilt).
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// writeFileAtomic writes data to path through a temporary file in the same directory, so readers
// never see a partial artefact.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), perm)); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
