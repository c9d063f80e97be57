package fuse

import (
	"errors"
	"fmt"
	"syscall"
)

// maxErrno is the largest errno a reply may carry (Linux MAX_ERRNO).
const maxErrno = 4095

// replyErrno converts the error field of a fuse_out_header. It is the only
// place in the package that turns a server's negative errno into a Go
// error. ok is false if the field is not an error the protocol allows
// (positive, or below -MAX_ERRNO); the caller reports that as EIO.
func replyErrno(field int32) (err error, ok bool) {
	switch {
	case field == 0:
		return nil, true
	case field < 0 && field >= -maxErrno:
		return syscall.Errno(-field), true
	default:
		return nil, false
	}
}

// invalid reports a reply that breaks the protocol: one log line naming
// the opcode and unique ID, and EIO to the caller (Linux "fuse: verify
// attributes"; the server is untrusted).
func (c *Conn) invalid(op Opcode, unique uint64, reason error) error {
	c.log.Warn("fuse: invalid reply", "opcode", op.String(), "unique", unique, "reason", reason.Error())
	return syscall.EIO
}

// ErrProtocolVersion is wrapped by Init's error when the server speaks an
// unsupported protocol version; errors.Is(err, syscall.EPROTO) holds too.
var ErrProtocolVersion = errors.New("fuse: unsupported protocol version")

type versionError struct {
	major, minor uint32
}

func (e *versionError) Error() string {
	return fmt.Sprintf("fuse: server speaks FUSE %d.%d; this client needs %d.%d or newer (up to %d.%d)",
		e.major, e.minor, KernelVersion, MinServerMinor, KernelVersion, KernelMinorVersion)
}

func (e *versionError) Is(target error) bool {
	return target == ErrProtocolVersion || target == syscall.EPROTO
}
