package fuse

import (
	"context"
	"syscall"

	"github.com/govirtiofs/govirtiofs/vfs"
)

// readdirSize is how many bytes of entries one READDIR or READDIRPLUS asks
// for (Linux asks for one page; a little more saves round trips on large
// directories, and each READDIRPLUS entry is 152 bytes or more).
const readdirSize = 16 << 10

// ReadDir implements vfs.FileDescriptionImpl.ReadDir with READDIRPLUS when
// negotiated (each entry's lookup becomes an Entry reference for vfs's
// dentry cache, Linux fuse_direntplus_link), READDIR otherwise. Entries
// with nodeid 0, and "." and "..", carry no reference. When emit stops
// the listing, the lookups of the entries not handed over are released at
// once, so that they are forgotten.
func (f *fileHandle) ReadDir(ctx context.Context, cookie int64, emit func(vfs.Dirent) bool) error {
	if !f.dir {
		return syscall.ENOTDIR
	}
	ctx = f.ctx(ctx)
	fs := f.fs
	size := min(readdirSize, fs.params.MaxPages*pageSize)
	plus := fs.params.Has(InitDoReaddirplus)
	for {
		in := ReadIn{Fh: f.fh, Offset: uint64(cookie), Flags: uint32(f.flags)}
		if plus {
			ents, err := fs.conn.Readdirplus(ctx, f.ino.nodeid, in, size)
			if err != nil {
				return err
			}
			if len(ents) == 0 {
				return nil
			}
			stopped := false
			for i := range ents {
				e := &ents[i]
				var ve vfs.Entry
				if e.Entry.NodeID != 0 {
					ve = fs.entry(&e.Entry)
				}
				if stopped {
					if ve.Inode != nil {
						fs.Release(ve.Inode)
					}
					continue
				}
				if !emit(vfs.Dirent{Name: e.Name, Ino: e.Ino, Type: uint8(e.Type), Next: int64(e.Off), Entry: ve}) {
					stopped = true
				}
				cookie = int64(e.Off)
			}
			if stopped {
				return nil
			}
			continue
		}
		ents, err := fs.conn.Readdir(ctx, f.ino.nodeid, in, size)
		if err != nil {
			return err
		}
		if len(ents) == 0 {
			return nil
		}
		for _, e := range ents {
			if !emit(vfs.Dirent{Name: e.Name, Ino: e.Ino, Type: uint8(e.Type), Next: int64(e.Off)}) {
				return nil
			}
			cookie = int64(e.Off)
		}
	}
}
