package fuse_test

// Unit tests of the client filesystem against fusetest.Server: inode
// identity and nlookup accounting, the forget batcher, read-ahead and
// untrusted replies. The real-server tests are in
// fs_integration_test.go.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/fuse"
	"github.com/govirtiofs/govirtiofs/fuse/fusetest"
	"github.com/govirtiofs/govirtiofs/vfs"
)

// fakeNode is one node of fsFake: the generation and mode LOOKUP answers
// and the file's data.
type fakeNode struct {
	nodeid, gen uint64
	mode        uint32
	data        []byte
}

// fsFake scripts a server with a flat root directory. Handlers read the
// nodes map only; tests change it between requests.
type fsFake struct {
	srv   *fusetest.Server
	nodes map[string]*fakeNode
}

func fakeAttr(n *fakeNode) fuse.Attr {
	return fuse.Attr{Ino: n.nodeid + 100, Size: uint64(len(n.data)), Mode: n.mode, Nlink: 1, Mtime: time.Unix(1, 0)}
}

func newFSFake(t *testing.T, maxPages int) *fsFake {
	f := &fsFake{srv: fusetest.New(fusetest.Options{MaxPages: maxPages}), nodes: map[string]*fakeNode{}}
	byID := func(id uint64) *fakeNode {
		for _, n := range f.nodes {
			if n.nodeid == id {
				return n
			}
		}
		return nil
	}
	f.srv.Handle(fuse.OpLookup, func(r *fusetest.Request) fusetest.Reply {
		names := r.Strings(0)
		if len(names) != 1 {
			return fusetest.Err(syscall.EINVAL)
		}
		n := f.nodes[names[0]]
		if n == nil {
			return fusetest.Err(syscall.ENOENT)
		}
		return fusetest.OK(fusetest.EntryOut(fuse.Entry{NodeID: n.nodeid, Generation: n.gen,
			EntryValid: time.Hour, AttrValid: time.Hour, Attr: fakeAttr(n)}))
	})
	f.srv.Handle(fuse.OpGetattr, func(r *fusetest.Request) fusetest.Reply {
		if r.NodeID == fuse.RootID {
			return fusetest.OK(fusetest.AttrOut(fuse.AttrOut{Attr: fuse.Attr{Ino: 1, Mode: fuse.ModeDir | 0o755, Nlink: 2}}))
		}
		n := byID(r.NodeID)
		if n == nil {
			return fusetest.Err(syscall.ESTALE)
		}
		return fusetest.OK(fusetest.AttrOut(fuse.AttrOut{AttrValid: time.Hour, Attr: fakeAttr(n)}))
	})
	f.srv.Handle(fuse.OpOpen, func(r *fusetest.Request) fusetest.Reply {
		return fusetest.OK(fusetest.OpenOut(fuse.OpenOut{Fh: 7}))
	})
	f.srv.Handle(fuse.OpRelease, func(r *fusetest.Request) fusetest.Reply { return fusetest.OK(nil) })
	f.srv.Handle(fuse.OpFlush, func(r *fusetest.Request) fusetest.Reply { return fusetest.OK(nil) })
	f.srv.Handle(fuse.OpDestroy, func(r *fusetest.Request) fusetest.Reply { return fusetest.OK(nil) })
	f.srv.Handle(fuse.OpRead, func(r *fusetest.Request) fusetest.Reply {
		n := byID(r.NodeID)
		if n == nil {
			return fusetest.Err(syscall.ESTALE)
		}
		off, size := r.U64(8), uint64(r.U32(16))
		if off >= uint64(len(n.data)) {
			return fusetest.OK(nil)
		}
		return fusetest.OK(n.data[off:min(off+size, uint64(len(n.data)))])
	})
	return f
}

// mount brings up Conn and Filesystem over the fake.
func (f *fsFake) mount(t *testing.T, opts fuse.FSOptions) *fuse.Filesystem {
	t.Helper()
	c, _ := newConn(t, f.srv, fuse.ConnOptions{})
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	fs, err := fuse.NewFilesystem(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// hiprioForgets decodes the FORGET and BATCH_FORGET requests sent so far
// into (nodeid, nlookup) pairs, and counts the messages.
func hiprioForgets(t *testing.T, srv *fusetest.Server) (map[uint64]uint64, int) {
	t.Helper()
	got := map[uint64]uint64{}
	msgs := 0
	for _, r := range srv.Hiprio() {
		switch r.Opcode {
		case fuse.OpForget:
			got[r.NodeID] += r.U64(0)
		case fuse.OpBatchForget:
			n := int(r.U32(0))
			if len(r.Args) != 8+16*n {
				t.Fatalf("BATCH_FORGET of %d entries has %d bytes", n, len(r.Args))
			}
			for i := range n {
				got[r.U64(8+16*i)] += r.U64(16 + 16*i)
			}
		default:
			t.Fatalf("unexpected hiprio opcode %v", r.Opcode)
		}
		msgs++
	}
	return got, msgs
}

func TestFSInodeIdentity(t *testing.T) {
	ctx := context.Background()
	f := newFSFake(t, 32)
	f.nodes["a"] = &fakeNode{nodeid: 5, gen: 1, mode: fuse.ModeReg | 0o644}
	fs := f.mount(t, fuse.FSOptions{ForgetDelay: time.Hour})
	rootIno := fs.Root()

	lookup := func() vfs.Inode {
		t.Helper()
		e, err := fs.Lookup(ctx, nil, rootIno, "a")
		if err != nil || e.Inode == nil {
			t.Fatalf("Lookup = %+v, %v", e, err)
		}
		return e.Inode
	}
	a1 := lookup()
	a2 := lookup()
	if a1 != a2 {
		t.Error("two lookups of the same nodeid and generation gave different inodes")
	}
	f.nodes["a"].gen = 2
	b := lookup()
	if b == a1 {
		t.Error("a new generation of nodeid 5 gave the old inode")
	}
	f.nodes["a"].mode = fuse.ModeDir | 0o755
	c := lookup()
	if c == b {
		t.Error("a new file type of nodeid 5 gave the old inode")
	}
	if st := fs.Stats(); st.Lookups != 4 || st.Inodes != 4 {
		t.Errorf("Stats = %+v, want 4 lookups and 4 inodes (root, a twice stale, c)", st)
	}
	for _, i := range []vfs.Inode{a1, a2, b, c} {
		fs.Release(i)
	}
	if err := fs.FlushForgets(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := hiprioForgets(t, f.srv)
	if got[5] != 4 || len(got) != 1 {
		t.Errorf("forgets = %v, want nodeid 5 forgotten 4 times", got)
	}
	if st := fs.Stats(); st.Forgotten != 4 || st.Inodes != 1 {
		t.Errorf("Stats = %+v, want 4 forgotten and the root left", st)
	}
	// A double release is logged and ignored, not counted twice.
	fs.Release(a1)
	fs.FlushForgets(ctx)
	if st := fs.Stats(); st.Forgotten != 4 {
		t.Errorf("Forgotten = %d after a double release", st.Forgotten)
	}

	// A missing name is ENOENT.
	if _, err := fs.Lookup(ctx, nil, rootIno, "missing"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("Lookup(missing) = %v", err)
	}
}

func TestFSForgetBatcher(t *testing.T) {
	tests := []struct {
		name       string
		batch      int
		inodes     int
		wantBefore int // messages before FlushForgets
		wantMsgs   int
	}{
		{"single goes as FORGET", 4, 1, 0, 1},
		{"threshold sends at once", 4, 8, 2, 2},
		{"rest on flush", 4, 10, 2, 3},
		{"default fits a page", 0, 600, 2, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFSFake(t, 1)
			for i := range tt.inodes {
				f.nodes[fsName(i)] = &fakeNode{nodeid: uint64(10 + i), mode: fuse.ModeReg | 0o644}
			}
			fs := f.mount(t, fuse.FSOptions{ForgetBatch: tt.batch, ForgetDelay: time.Hour})
			var inos []vfs.Inode
			for i := range tt.inodes {
				e, err := fs.Lookup(ctx, nil, fs.Root(), fsName(i))
				if err != nil {
					t.Fatal(err)
				}
				inos = append(inos, e.Inode)
			}
			for _, ino := range inos {
				fs.Release(ino)
			}
			// Full batches went from their own goroutines; Flush waits
			// for them and sends the rest.
			if err := fs.FlushForgets(ctx); err != nil {
				t.Fatal(err)
			}
			got, msgs := hiprioForgets(t, f.srv)
			if msgs != tt.wantMsgs {
				t.Errorf("%d hiprio messages, want %d", msgs, tt.wantMsgs)
			}
			if len(got) != tt.inodes {
				t.Errorf("%d nodeids forgotten, want %d", len(got), tt.inodes)
			}
			for id, n := range got {
				if n != 1 {
					t.Errorf("nodeid %d forgotten %d times", id, n)
				}
			}
			if tt.inodes == 1 && f.srv.Count(fuse.OpForget) != 1 {
				t.Errorf("a single forget was not sent as FORGET")
			}
			st := fs.Stats()
			if st.Forgotten != uint64(tt.inodes) || st.ForgetEntries != uint64(tt.inodes) || st.HiprioMessages != uint64(tt.wantMsgs) {
				t.Errorf("Stats = %+v", st)
			}
		})
	}
}

func TestFSForgetDelay(t *testing.T) {
	ctx := context.Background()
	f := newFSFake(t, 32)
	f.nodes["a"] = &fakeNode{nodeid: 5, mode: fuse.ModeReg | 0o644}
	fs := f.mount(t, fuse.FSOptions{ForgetDelay: time.Millisecond})
	e, err := fs.Lookup(ctx, nil, fs.Root(), "a")
	if err != nil {
		t.Fatal(err)
	}
	fs.Release(e.Inode)
	// The timer sends the partial batch with no Flush.
	deadline := time.Now().Add(10 * time.Second)
	for fs.Stats().HiprioMessages == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got, _ := hiprioForgets(t, f.srv); got[5] != 1 {
		t.Errorf("forgets after the delay = %v, want nodeid 5 once", got)
	}
}

func TestFSCloseForgetsEverything(t *testing.T) {
	ctx := context.Background()
	f := newFSFake(t, 32)
	f.nodes["a"] = &fakeNode{nodeid: 5, mode: fuse.ModeReg | 0o644, data: []byte("x")}
	fs := f.mount(t, fuse.FSOptions{ForgetDelay: time.Hour})
	v := vfs.New(fs, fs.Root(), vfs.Options{})
	fd, err := v.Open(ctx, root, "a", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The file stays open and vfs is not closed: Close cleans up anyway.
	_ = fd
	// DESTROY comes last: after the RELEASE and the forgets.
	var releasesAtDestroy, forgetsAtDestroy int
	f.srv.Handle(fuse.OpDestroy, func(r *fusetest.Request) fusetest.Reply {
		releasesAtDestroy = f.srv.Count(fuse.OpRelease)
		got, _ := hiprioForgets(t, f.srv)
		forgetsAtDestroy = int(got[5])
		return fusetest.OK(nil)
	})
	if err := fs.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if releasesAtDestroy != 1 || forgetsAtDestroy != 1 {
		t.Errorf("at DESTROY: %d RELEASEs and %d forgets of nodeid 5 sent, want 1 each before it", releasesAtDestroy, forgetsAtDestroy)
	}
	if f.srv.Count(fuse.OpRelease) != 1 || f.srv.Count(fuse.OpDestroy) != 1 {
		t.Errorf("RELEASE sent %d times, DESTROY %d; want 1 each", f.srv.Count(fuse.OpRelease), f.srv.Count(fuse.OpDestroy))
	}
	if got, _ := hiprioForgets(t, f.srv); got[5] != 1 {
		t.Errorf("forgets = %v, want nodeid 5 once", got)
	}
	// vfs letting go afterwards sends nothing more and does not panic.
	v.Close(ctx)
	if got, _ := hiprioForgets(t, f.srv); got[5] != 1 {
		t.Errorf("forgets after vfs.Close = %v", got)
	}
	if err := fs.Close(ctx); !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("second Close = %v, want ENOTCONN", err)
	}
}

// readToEOF reads fd chunk bytes at a time until a read returns 0 and checks
// that what came is want.
func readToEOF(t *testing.T, fd *vfs.FileDescription, chunk int, want []byte) {
	t.Helper()
	var got []byte
	buf := make([]byte, chunk)
	for {
		n, err := fd.Read(context.Background(), buf)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the file's %d", len(got), len(want))
	}
}

func TestFSReadahead(t *testing.T) {
	ctx := context.Background()
	f := newFSFake(t, 32)
	data := fsPattern(300_000, 11)
	f.nodes["a"] = &fakeNode{nodeid: 5, mode: fuse.ModeReg | 0o644, data: data}
	fs := f.mount(t, fuse.FSOptions{Cache: fuse.CacheAlways})
	v := vfs.New(fs, fs.Root(), vfs.Options{})
	defer v.Close(ctx)
	fd, err := v.Open(ctx, root, "a", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close(ctx)
	readToEOF(t, fd, 1000, data)
	// 300,000 bytes in 128 KiB read-ahead windows: 3 READs, and the end of
	// the file is known from the short one.
	if n := f.srv.Count(fuse.OpRead); n != 3 {
		t.Errorf("%d READs for 300 reads of 1000 bytes, want 3", n)
	}
	// Reading again comes from the cache.
	buf := make([]byte, 1000)
	if n, err := fd.PRead(ctx, buf, 299_500); err != nil || n != 500 || !bytes.Equal(buf[:n], data[299_500:]) {
		t.Errorf("cached pread at the end = %d, %v", n, err)
	}
	if n := f.srv.Count(fuse.OpRead); n != 3 {
		t.Errorf("%d READs after cached reads, want 3", n)
	}
}

func TestFSUntrustedReplies(t *testing.T) {
	ctx := context.Background()
	f := newFSFake(t, 32)
	f.nodes["a"] = &fakeNode{nodeid: 5, mode: fuse.ModeReg | 0o644}
	fs := f.mount(t, fuse.FSOptions{Cache: fuse.CacheNone})
	e, err := fs.Lookup(ctx, nil, fs.Root(), "a")
	if err != nil {
		t.Fatal(err)
	}
	// The server now claims nodeid 5 is a directory, a file type change
	// under the same generation.
	f.nodes["a"].mode = fuse.ModeDir | 0o755
	if _, err := fs.Getattr(ctx, nil, e.Inode); !errors.Is(err, syscall.EIO) {
		t.Errorf("Getattr after a type change = %v, want EIO", err)
	}
	// A READDIRPLUS entry with a bad file type is EIO from the Conn.
	f.srv.Handle(fuse.OpOpendir, func(r *fusetest.Request) fusetest.Reply {
		return fusetest.OK(fusetest.OpenOut(fuse.OpenOut{Fh: 1}))
	})
	f.srv.Handle(fuse.OpReleasedir, func(r *fusetest.Request) fusetest.Reply { return fusetest.OK(nil) })
	f.srv.Handle(fuse.OpReaddirplus, func(r *fusetest.Request) fusetest.Reply {
		p := fusetest.DirentsPlus(fuse.DirentPlus{Dirent: fuse.Dirent{Ino: 9, Off: 1, Type: 8, Name: "x"},
			Entry: fuse.Entry{NodeID: 9, Attr: fuse.Attr{Mode: 0o644}}})
		return fusetest.OK(p)
	})
	dir, err := fs.Open(ctx, nil, fs.Root(), unix.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.ReadDir(ctx, 0, func(vfs.Dirent) bool { return true }); !errors.Is(err, syscall.EIO) {
		t.Errorf("ReadDir of a bad entry = %v, want EIO", err)
	}
	dir.Release(ctx)
	// A READ reply larger than asked is EIO too (checked by the Conn).
	f.srv.Handle(fuse.OpRead, func(r *fusetest.Request) fusetest.Reply {
		b := make([]byte, 16+int(r.U32(16))+10)
		binary.LittleEndian.PutUint32(b, uint32(len(b)))
		binary.LittleEndian.PutUint64(b[8:], r.Unique)
		return fusetest.Reply{Raw: b}
	})
	f.nodes["a"].mode = fuse.ModeReg | 0o644
	fd, err := fs.Open(ctx, nil, e.Inode, unix.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fd.Read(ctx, make([]byte, 100), 0); !errors.Is(err, syscall.EIO) {
		t.Errorf("Read of an overlong reply = %v, want EIO", err)
	}
	fd.Release(ctx)
	fs.Release(e.Inode)
}

// TestFSOpenFlags checks the data cache against the OPEN reply's flags in
// each cache mode: FOPEN_KEEP_CACHE keeps cached data across an open in
// CacheAuto (which otherwise drops it: close-to-open), CacheAlways keeps it
// anyway, and FOPEN_DIRECT_IO (or CacheNone) bypasses the cache: every read
// goes to the server.
func TestFSOpenFlags(t *testing.T) {
	tests := []struct {
		mode      fuse.CacheMode
		openFlags uint32
		fresh     bool // the second open reads the server's new data
		direct    bool // every read is a READ
	}{
		{fuse.CacheAuto, 0, true, false},
		{fuse.CacheAuto, fuse.OpenKeepCache, false, false},
		{fuse.CacheAuto, fuse.OpenDirectIO, true, true},
		{fuse.CacheAlways, 0, false, false},
		{fuse.CacheAlways, fuse.OpenKeepCache, false, false},
		{fuse.CacheAlways, fuse.OpenDirectIO, true, true},
		{fuse.CacheNone, 0, true, true},
		{fuse.CacheNone, fuse.OpenKeepCache, true, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v flags %#x", tt.mode, tt.openFlags), func(t *testing.T) {
			ctx := context.Background()
			f := newFSFake(t, 32)
			node := &fakeNode{nodeid: 5, mode: fuse.ModeReg | 0o644, data: fsPattern(10_000, 1)}
			f.nodes["a"] = node
			f.srv.Handle(fuse.OpOpen, func(r *fusetest.Request) fusetest.Reply {
				return fusetest.OK(fusetest.OpenOut(fuse.OpenOut{Fh: 7, OpenFlags: tt.openFlags}))
			})
			fs := f.mount(t, fuse.FSOptions{Cache: tt.mode})
			v := vfs.New(fs, fs.Root(), vfs.Options{})
			defer v.Close(ctx)
			readAll := func(fd *vfs.FileDescription) []byte {
				buf := make([]byte, 20_000)
				n, err := fd.PRead(ctx, buf, 0)
				if err != nil {
					t.Fatal(err)
				}
				return buf[:n]
			}
			fd, err := v.Open(ctx, root, "a", unix.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(fd); !bytes.Equal(got, node.data) {
				t.Fatalf("first read: %d bytes, not the file's", len(got))
			}
			fd.Close(ctx)
			old := node.data
			node.data = fsPattern(10_000, 2) // same size: attributes unchanged
			fd, err = v.Open(ctx, root, "a", unix.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer fd.Close(ctx)
			reads := f.srv.Count(fuse.OpRead)
			got := readAll(fd)
			want := old
			if tt.fresh {
				want = node.data
			}
			if !bytes.Equal(got, want) {
				t.Errorf("read after reopening: new data %v, want new data %v", bytes.Equal(got, node.data), tt.fresh)
			}
			if sent := f.srv.Count(fuse.OpRead) - reads; (sent > 0) != tt.fresh {
				t.Errorf("read after reopening sent %d READs; want some: %v", sent, tt.fresh)
			}
			reads = f.srv.Count(fuse.OpRead)
			readAll(fd)
			if sent := f.srv.Count(fuse.OpRead) - reads; (sent > 0) != tt.direct {
				t.Errorf("a second read of the same range sent %d READs; want some: %v", sent, tt.direct)
			}
		})
	}
}

// TestFSReadDirPolicy lists a directory of 500 entries 37 at a time over a
// fake server that returns at most as many entries as the asked size
// holds: the start of the listing is READDIRPLUS (as Linux
// READDIRPLUS_AUTO), the rest plain READDIR in large requests whose
// unconsumed entries serve the following calls, and a LOOKUP in the
// directory makes the next request READDIRPLUS again.
func TestFSReadDirPolicy(t *testing.T) {
	ctx := context.Background()
	f := newFSFake(t, 256)
	const total = 500
	names := make([]string, total)
	for i := range names {
		names[i] = fmt.Sprintf("entry%04d", i)
	}
	f.srv.Handle(fuse.OpOpendir, func(r *fusetest.Request) fusetest.Reply {
		return fusetest.OK(fusetest.OpenOut(fuse.OpenOut{Fh: 1}))
	})
	f.srv.Handle(fuse.OpReleasedir, func(r *fusetest.Request) fusetest.Reply { return fusetest.OK(nil) })
	list := func(r *fusetest.Request, plus bool) fusetest.Reply {
		off, size := int(r.U64(8)), int(r.U32(16))
		var b []byte
		for i := off; i < total; i++ {
			d := fuse.Dirent{Ino: uint64(1000 + i), Off: uint64(i + 1), Type: 8, Name: names[i]}
			var e []byte
			if plus {
				e = fusetest.DirentsPlus(fuse.DirentPlus{Dirent: d, Entry: fuse.Entry{NodeID: uint64(1000 + i),
					EntryValid: time.Hour, AttrValid: time.Hour, Attr: fuse.Attr{Ino: uint64(1000 + i), Mode: fuse.ModeReg | 0o644, Nlink: 1}}})
			} else {
				e = fusetest.Dirents(d)
			}
			if len(b)+len(e) > size {
				break
			}
			b = append(b, e...)
		}
		return fusetest.OK(b)
	}
	f.srv.Handle(fuse.OpReaddir, func(r *fusetest.Request) fusetest.Reply { return list(r, false) })
	f.srv.Handle(fuse.OpReaddirplus, func(r *fusetest.Request) fusetest.Reply {
		if r.U64(8) != 0 {
			// As virtiofsd when the first entry was removed since it
			// was read: the client lists it with READDIR instead.
			return fusetest.Err(syscall.ENOENT)
		}
		return list(r, true)
	})
	fs := f.mount(t, fuse.FSOptions{Cache: fuse.CacheAuto})
	v := vfs.New(fs, fs.Root(), vfs.Options{})
	creds := &vfs.Credentials{}
	fd, err := v.Open(ctx, creds, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	readSome := func() int {
		n := 0
		if err := fd.ReadDir(ctx, func(de vfs.Dirent) bool {
			if n == 37 {
				return false
			}
			n++
			got = append(got, de.Name)
			return true
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	readSome()
	if plus, plain := f.srv.Count(fuse.OpReaddirplus), f.srv.Count(fuse.OpReaddir); plus != 1 || plain != 1 {
		t.Errorf("first 37 entries: %d READDIRPLUS and %d READDIR, want 1 and 1", plus, plain)
	}
	// A LOOKUP in the directory (a stat of a name not listed with
	// READDIRPLUS) advises READDIRPLUS for the next request.
	if _, err := v.Stat(ctx, creds, "missing"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("stat of a missing name = %v, want ENOENT", err)
	}
	for readSome() > 0 {
	}
	if len(got) != total {
		t.Fatalf("listed %d entries, want %d", len(got), total)
	}
	for i, n := range got {
		if n != names[i] {
			t.Fatalf("entry %d = %q, want %q", i, n, names[i])
		}
	}
	plus, plain := f.srv.Count(fuse.OpReaddirplus), f.srv.Count(fuse.OpReaddir)
	if plus != 2 {
		t.Errorf("%d READDIRPLUS, want 2 (the start and the one after the LOOKUP, failed)", plus)
	}
	// 500 entries of 40 bytes fit two large requests and the empty reply
	// that ends the listing: far fewer requests than ReadDir calls (14).
	if plain > 4 {
		t.Errorf("%d READDIR requests for %d entries read 37 at a time, want at most 4", plain, total)
	}
	fd.Close(ctx)
	v.Close(ctx)
	if err := fs.FlushForgets(ctx); err != nil {
		t.Fatal(err)
	}
	if st := fs.Stats(); st.Forgotten != st.Lookups {
		t.Errorf("forgotten %d, lookups %d: want equal", st.Forgotten, st.Lookups)
	}
}

// TestFSCloseRoundTrips checks what a close sends: no FLUSH for a handle
// through which nothing was written and no POSIX lock taken, a FLUSH
// otherwise; a RELEASE that Close does not wait for, which holds the
// inode so that its FORGET comes after the RELEASE, and which
// FlushForgets waits for.
func TestFSCloseRoundTrips(t *testing.T) {
	ctx := context.Background()
	f := newFSFake(t, 32)
	f.nodes["a"] = &fakeNode{nodeid: 5, mode: fuse.ModeReg | 0o644, data: []byte("hello")}
	f.srv.Handle(fuse.OpWrite, func(r *fusetest.Request) fusetest.Reply {
		return fusetest.OK(fusetest.WriteOut(r.U32(16)))
	})
	release := make(chan struct{})
	var forgetsAtRelease int
	f.srv.Handle(fuse.OpRelease, func(r *fusetest.Request) fusetest.Reply {
		<-release
		got, _ := hiprioForgets(t, f.srv)
		forgetsAtRelease += int(got[5])
		return fusetest.OK(nil)
	})
	fs := f.mount(t, fuse.FSOptions{Cache: fuse.CacheAuto, ForgetDelay: time.Millisecond})
	v := vfs.New(fs, fs.Root(), vfs.Options{MaxCachedDentries: -1})

	fd, err := v.Open(ctx, root, "a", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := fd.Read(ctx, buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	// Close returns while the RELEASE waits in the server.
	if err := fd.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.srv.Count(fuse.OpFlush); n != 0 {
		t.Errorf("close of a read-only handle sent %d FLUSH, want 0", n)
	}
	close(release)
	if err := fs.FlushForgets(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.srv.Count(fuse.OpRelease); n != 1 {
		t.Errorf("%d RELEASE after FlushForgets, want 1", n)
	}
	if forgetsAtRelease != 0 {
		t.Errorf("nodeid 5 was forgotten before its RELEASE was answered")
	}
	if got, _ := hiprioForgets(t, f.srv); got[5] != 1 {
		t.Errorf("forgets = %v, want nodeid 5 once (the dentry is not cached)", got)
	}

	// A handle that wrote sends FLUSH on close.
	fd, err = v.Open(ctx, root, "a", unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fd.Write(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := fd.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.srv.Count(fuse.OpFlush); n != 1 {
		t.Errorf("close of a handle that wrote sent %d FLUSH, want 1", n)
	}
	v.Close(ctx)
	if err := fs.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.srv.Count(fuse.OpRelease); n != 2 {
		t.Errorf("%d RELEASE after Close, want 2", n)
	}
}

// TestFSStatNoneOneRoundTrip checks that with CacheNone a stat is one
// LOOKUP, whose reply's attributes answer it, and no GETATTR; a stat of
// an open file still asks the server.
func TestFSStatNoneOneRoundTrip(t *testing.T) {
	ctx := context.Background()
	f := newFSFake(t, 32)
	f.nodes["a"] = &fakeNode{nodeid: 5, mode: fuse.ModeReg | 0o644, data: []byte("hello")}
	fs := f.mount(t, fuse.FSOptions{Cache: fuse.CacheNone})
	v := vfs.New(fs, fs.Root(), vfs.Options{})
	for i := range 2 {
		st, err := v.Stat(ctx, root, "a")
		if err != nil {
			t.Fatal(err)
		}
		if st.Size != 5 || st.Ino != 105 || st.Mode != fuse.ModeReg|0o644 {
			t.Errorf("stat = size %d ino %d mode %#o, want 5 105 0100644", st.Size, st.Ino, st.Mode)
		}
		if l, g := f.srv.Count(fuse.OpLookup), f.srv.Count(fuse.OpGetattr); l != i+1 || g != 0 {
			t.Errorf("after %d stats: %d LOOKUP and %d GETATTR, want %d and 0", i+1, l, g, i+1)
		}
	}
	f.nodes["a"].data = []byte("hello, world")
	if st, err := v.Stat(ctx, root, "a"); err != nil || st.Size != 12 {
		t.Errorf("stat after a change on the server = size %d, %v; want 12", st.Size, err)
	}
	fd, err := v.Open(ctx, root, "a", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fd.Stat(ctx); err != nil {
		t.Fatal(err)
	}
	if g := f.srv.Count(fuse.OpGetattr); g != 1 {
		t.Errorf("fstat sent %d GETATTR, want 1", g)
	}
	fd.Close(ctx)
	v.Close(ctx)
}

// TestFSReadStopsAtKnownSize checks that a cached read trusts the size of
// valid attributes, as Linux's filemap_read trusts i_size: a 4 KiB file
// read with a larger buffer takes one READ of one page, the read at its
// end none, and a file grown on the server reads as before until its
// attributes are fetched again (cache none asks the server every time).
func TestFSReadStopsAtKnownSize(t *testing.T) {
	for _, mode := range []fuse.CacheMode{fuse.CacheAuto, fuse.CacheAlways, fuse.CacheNone} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := context.Background()
			f := newFSFake(t, 32)
			data := bytes.Repeat([]byte("0123456789abcdef"), 256) // 4 KiB
			node := &fakeNode{nodeid: 5, mode: fuse.ModeReg | 0o644, data: data}
			f.nodes["a"] = node
			var sizes []uint32
			f.srv.Handle(fuse.OpRead, func(r *fusetest.Request) fusetest.Reply {
				off, size := r.U64(8), r.U32(16)
				sizes = append(sizes, size)
				if off >= uint64(len(node.data)) {
					return fusetest.OK(nil)
				}
				return fusetest.OK(node.data[off:min(off+uint64(size), uint64(len(node.data)))])
			})
			_, fd := openFake(t, f, mode)
			buf := make([]byte, len(data)+1)
			if n, err := fd.PRead(ctx, buf, 0); n != len(data) || err != nil || !bytes.Equal(buf[:n], data) {
				t.Fatalf("PRead = %d, %v; want the file's %d bytes", n, err, len(data))
			}
			node.data = append(node.data, "grown"...)
			n, err := fd.PRead(ctx, buf, int64(len(data)))
			if mode == fuse.CacheNone {
				if n != 5 || len(sizes) != 2 {
					t.Errorf("cache none: read at the old end = %d, %v after %d READs; want the 5 new bytes from a second READ", n, err, len(sizes))
				}
				return
			}
			if n != 0 || (err != nil && err != io.EOF) {
				t.Errorf("read at the known end = %d, %v; want end of file", n, err)
			}
			if len(sizes) != 1 || sizes[0] != 4096 {
				t.Errorf("READ sizes %v, want one of 4096 bytes", sizes)
			}
		})
	}
}

// TestFSStreamingReadAuto checks that in CacheAuto a large read goes
// straight to the caller in max_pages READs without filling the cache,
// while a small one is cached.
func TestFSStreamingReadAuto(t *testing.T) {
	ctx := context.Background()
	f := newFSFake(t, 32)
	data := make([]byte, 300<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	f.nodes["a"] = &fakeNode{nodeid: 5, mode: fuse.ModeReg | 0o644, data: data}
	fs := f.mount(t, fuse.FSOptions{Cache: fuse.CacheAuto})
	v := vfs.New(fs, fs.Root(), vfs.Options{})
	fd, err := v.Open(ctx, root, "a", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(data)+1)
	for pass := range 2 {
		before := f.srv.Count(fuse.OpRead)
		n, err := fd.PRead(ctx, buf, 0)
		if err != nil || n != len(data) || !bytes.Equal(buf[:n], data) {
			t.Fatalf("pass %d: PRead = %d, %v; want the %d bytes", pass, n, err, len(data))
		}
		// The 300 KiB in three READs of 25 pages (at most 32, of equal
		// sizes), each time; the byte past the end is past the size the
		// valid attributes give, so no READ asks for it.
		if got, want := f.srv.Count(fuse.OpRead)-before, 3; got != want {
			t.Errorf("pass %d: %d READs, want %d (nothing of the streamed part cached)", pass, got, want)
		}
	}
	before := f.srv.Count(fuse.OpRead)
	small := make([]byte, 100)
	for range 2 {
		if n, err := fd.PRead(ctx, small, 1000); err != nil || !bytes.Equal(small[:n], data[1000:1100]) {
			t.Fatalf("small PRead = %d, %v", n, err)
		}
	}
	if got := f.srv.Count(fuse.OpRead) - before; got != 1 {
		t.Errorf("two small reads sent %d READs, want 1 (then cached)", got)
	}
	fd.Close(ctx)
	v.Close(ctx)
}

// TestFSReleaseDropsPages: once vfs lets go of an inode, its cached pages
// go back to the pool at once.
func TestFSReleaseDropsPages(t *testing.T) {
	ctx := context.Background()
	f := newFSFake(t, 32)
	data := fsPattern(3*4096, 5)
	f.nodes["a"] = &fakeNode{nodeid: 5, mode: fuse.ModeReg | 0o644, data: data}
	fs := f.mount(t, fuse.FSOptions{Cache: fuse.CacheAlways, ForgetDelay: time.Hour})
	e, err := fs.Lookup(ctx, nil, fs.Root(), "a")
	if err != nil {
		t.Fatal(err)
	}
	fd, err := fs.Open(ctx, nil, e.Inode, unix.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(data))
	if n, err := fd.Read(ctx, buf, 0); n != len(data) || err != nil || !bytes.Equal(buf, data) {
		t.Fatalf("Read = %d, %v", n, err)
	}
	fd.Release(ctx)
	if err := fs.FlushForgets(ctx); err != nil { // waits for the RELEASE, which holds the inode
		t.Fatal(err)
	}
	if c := fs.Stats().CachedBytes; c < int64(len(data)) {
		t.Fatalf("after a read of %d bytes the cache holds %d", len(data), c)
	}
	fs.Release(e.Inode)
	if c := fs.Stats().CachedBytes; c != 0 {
		t.Errorf("after the inode's last reference went the cache holds %d bytes", c)
	}
}
