package vfstest

import (
	"context"
	"sort"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/vfs"
)

// File is an open file of an FS, implementing vfs.FileDescriptionImpl.
type File struct {
	fs    *FS    // immutable
	n     *Inode // immutable
	flags int    // immutable
	// released is guarded by fs.mu.
	released bool
}

func (h *File) begin(op string) error {
	h.fs.begin(op)
	if h.released {
		h.fs.violate("%s: file of inode %d used after Release", op, h.n.ino)
		h.fs.mu.Unlock()
		return syscall.EBADF
	}
	return nil
}

// Read implements vfs.FileDescriptionImpl.Read.
func (h *File) Read(ctx context.Context, dst []byte, off int64) (int, error) {
	if err := h.begin("Read"); err != nil {
		return 0, err
	}
	defer h.fs.mu.Unlock()
	if off >= int64(len(h.n.data)) {
		return 0, nil
	}
	return copy(dst, h.n.data[off:]), nil
}

// Write implements vfs.FileDescriptionImpl.Write.
func (h *File) Write(ctx context.Context, src []byte, off int64, appending bool) (int, int64, error) {
	if err := h.begin("Write"); err != nil {
		return 0, 0, err
	}
	defer h.fs.mu.Unlock()
	if appending {
		off = int64(len(h.n.data))
	}
	end := off + int64(len(src))
	if end > 1<<40 {
		return 0, 0, syscall.EFBIG
	}
	if end > int64(len(h.n.data)) {
		resize(h.n, int(end))
	}
	copy(h.n.data[off:], src)
	h.n.mtime = time.Now()
	return len(src), end, nil
}

// Seek implements vfs.FileDescriptionImpl.Seek: the whole file is data.
func (h *File) Seek(ctx context.Context, offset int64, whence int) (int64, error) {
	if err := h.begin("Seek"); err != nil {
		return 0, err
	}
	defer h.fs.mu.Unlock()
	size := int64(len(h.n.data))
	switch whence {
	case unix.SEEK_END:
		return size + offset, nil
	case unix.SEEK_DATA:
		if offset >= size {
			return 0, syscall.ENXIO
		}
		return offset, nil
	case unix.SEEK_HOLE:
		if offset >= size {
			return 0, syscall.ENXIO
		}
		return size, nil
	}
	return 0, syscall.EINVAL
}

// ReadDir implements vfs.FileDescriptionImpl.ReadDir. The listing is
// ".", "..", then the names in sorted order; cookie i resumes at index i.
func (h *File) ReadDir(ctx context.Context, cookie int64, emit func(vfs.Dirent) bool) error {
	if err := h.begin("ReadDir"); err != nil {
		return err
	}
	if !isDir(h.n) {
		h.fs.mu.Unlock()
		return syscall.ENOTDIR
	}
	names := make([]string, 0, len(h.n.children))
	for name := range h.n.children {
		names = append(names, name)
	}
	sort.Strings(names)
	all := append([]string{".", ".."}, names...)
	var ents []vfs.Dirent
	for i := int(max(cookie, 0)); i < len(all); i++ {
		name := all[i]
		de := vfs.Dirent{Name: name, Type: vfs.DT_DIR, Next: int64(i + 1)}
		if c := h.n.children[name]; c != nil {
			de.Ino, de.Type = c.ino, vfs.DirentType(c.mode)
			if h.fs.opts.ReaddirPlus {
				e := h.fs.entryLocked(c)
				de.Entry = &e
			}
		}
		ents = append(ents, de)
	}
	h.fs.mu.Unlock()
	for i, de := range ents {
		if !emit(de) {
			// The references in the rest were never handed over.
			h.fs.mu.Lock()
			for _, r := range ents[i+1:] {
				if r.Entry == nil {
					continue
				}
				if n, ok := r.Entry.Inode.(*Inode); ok {
					h.fs.refs[n]--
					if h.fs.refs[n] == 0 {
						delete(h.fs.refs, n)
					}
					h.fs.handedOut--
				}
			}
			h.fs.mu.Unlock()
			return nil
		}
	}
	return nil
}

// Stat implements vfs.FileDescriptionImpl.Stat.
func (h *File) Stat(ctx context.Context) (vfs.Statx, error) {
	if err := h.begin("Stat"); err != nil {
		return vfs.Statx{}, err
	}
	defer h.fs.mu.Unlock()
	return statLocked(h.n), nil
}

// SetStat implements vfs.FileDescriptionImpl.SetStat.
func (h *File) SetStat(ctx context.Context, o *vfs.SetStatOptions) (vfs.Statx, error) {
	if err := h.begin("SetStat"); err != nil {
		return vfs.Statx{}, err
	}
	defer h.fs.mu.Unlock()
	return setattrLocked(h.n, o)
}

// Sync implements vfs.FileDescriptionImpl.Sync.
func (h *File) Sync(ctx context.Context, dataOnly bool) error {
	if err := h.begin("Fsync"); err != nil {
		return err
	}
	h.fs.mu.Unlock()
	return nil
}

// Lock implements vfs.FileDescriptionImpl.Lock with whole-file locks per
// open file (byte ranges are treated as the whole file).
func (h *File) Lock(ctx context.Context, lk vfs.LockRequest, wait bool) error {
	for {
		if err := h.begin("Lock"); err != nil {
			return err
		}
		n := h.n
		if lk.Type == unix.F_UNLCK {
			h.unlockLocked()
			h.fs.mu.Unlock()
			return nil
		}
		conflict := false
		for owner, t := range n.locks {
			if owner != h && (t == unix.F_WRLCK || lk.Type == unix.F_WRLCK) {
				conflict = true
			}
		}
		if !conflict {
			if n.locks == nil {
				n.locks = make(map[*File]int16)
			}
			n.locks[h] = lk.Type
			h.fs.mu.Unlock()
			return nil
		}
		changed := h.fs.lockChanged
		h.fs.mu.Unlock()
		if !wait {
			return syscall.EAGAIN
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// unlockLocked drops h's lock.
//
// Preconditions: fs.mu is held.
func (h *File) unlockLocked() {
	if _, ok := h.n.locks[h]; ok {
		delete(h.n.locks, h)
		close(h.fs.lockChanged)
		h.fs.lockChanged = make(chan struct{})
	}
}

// Flush implements vfs.FileDescriptionImpl.Flush.
func (h *File) Flush(ctx context.Context) error {
	if err := h.begin("Flush"); err != nil {
		return err
	}
	h.fs.mu.Unlock()
	return nil
}

// Release implements vfs.FileDescriptionImpl.Release; it drops h's lock.
func (h *File) Release(ctx context.Context) {
	if err := h.begin("FileRelease"); err != nil {
		return
	}
	h.released = true
	h.unlockLocked()
	h.fs.mu.Unlock()
}

// OpenFiles returns how many files are open (not yet released).
func (f *FS) OpenFiles() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls["Open"] + f.calls["Create"] - f.calls["FileRelease"]
}
