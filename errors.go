package govirtiofs

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// errnoOf returns the syscall.Errno inside err, or err itself when it holds
// none (a context error, for example), so that the public errors carry the
// errno directly, as package os does.
func errnoOf(err error) error {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return err
}

// pathErr wraps err from vfs into a *fs.PathError naming op and the path as
// the caller gave it. It returns nil for a nil err.
func pathErr(op, name string, err error) error {
	if err == nil {
		return nil
	}
	return &fs.PathError{Op: op, Path: name, Err: errnoOf(err)}
}

// linkErr wraps err into an *os.LinkError, the type package os returns from
// Rename, Link and Symlink.
func linkErr(op, oldname, newname string, err error) error {
	if err == nil {
		return nil
	}
	return &os.LinkError{Op: op, Old: oldname, New: newname, Err: errnoOf(err)}
}
