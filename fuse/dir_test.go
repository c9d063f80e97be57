package fuse_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/fuse"
	"github.com/govirtiofs/govirtiofs/internal/virtiofsdtest"
	"github.com/govirtiofs/govirtiofs/vfs"
)

// TestReadDirPlusChoice checks when a listing asks for READDIRPLUS
// (virtiofsd with -o readdirplus, which answers with READDIRPLUS_AUTO): at
// the start of a small directory's listing, whose entries then stat with
// no LOOKUP; not for a large directory (its size attribute is more than a
// page), unless names in it were looked up since its last listing.
func TestReadDirPlusChoice(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []struct {
		name string
		n    int
	}{{"small", 5}, {"large", 500}} {
		if err := os.Mkdir(filepath.Join(dir, d.name), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range d.n {
			fsHostWrite(t, filepath.Join(dir, d.name, fmt.Sprintf("entry%04d", i)), "x")
		}
	}
	s := startFS(t, dir, fsConfig{
		daemon: virtiofsdtest.Options{Cache: "auto", ExtraArgs: []string{"-o", "readdirplus"}},
		fs:     fuse.FSOptions{Cache: fuse.CacheAuto},
	})
	if p := s.fs.Params(); !p.Has(fuse.InitDoReaddirplus) || !p.Has(fuse.InitReaddirplusAuto) {
		t.Fatalf("virtiofsd did not negotiate READDIRPLUS with READDIRPLUS_AUTO: flags %#x", p.Flags)
	}
	ctx := context.Background()
	// list lists name whole and returns the LOOKUPs the listing counted
	// (READDIRPLUS entries count as lookups) and the names it saw.
	list := func(name string) (uint64, int) {
		t.Helper()
		before := s.fs.Stats().Lookups
		fd, err := s.v.Open(ctx, root, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer fd.Close(ctx)
		seen := 0
		if err := fd.ReadDir(ctx, func(de vfs.Dirent) bool { seen++; return true }); err != nil {
			t.Fatal(err)
		}
		return s.fs.Stats().Lookups - before, seen
	}
	// stat stats name and returns the LOOKUPs it sent.
	stat := func(name string) uint64 {
		t.Helper()
		before := s.fs.Stats().Lookups
		if _, err := s.v.Stat(ctx, root, name); err != nil {
			t.Fatal(err)
		}
		return s.fs.Stats().Lookups - before
	}

	stat("small") // looked up now, so that list counts the listing's lookups only
	stat("large")
	if got, seen := list("small"); got != 5 || seen != 7 {
		t.Errorf("listing small: %d lookups, %d names; want 5 (READDIRPLUS) and 7", got, seen)
	}
	if got := stat("small/entry0003"); got != 0 {
		t.Errorf("stat after READDIRPLUS sent %d LOOKUPs, want 0", got)
	}
	if got, seen := list("large"); got != 0 || seen != 502 {
		t.Errorf("listing large: %d lookups, %d names; want 0 (plain READDIR) and 502", got, seen)
	}
	if got := stat("large/entry0100"); got != 1 {
		t.Errorf("stat of a name listed plainly sent %d LOOKUPs, want 1", got)
	}
	// That LOOKUP advises READDIRPLUS for the next listing's first request.
	if got, seen := list("large"); got == 0 || seen != 502 {
		t.Errorf("listing large after a lookup in it: %d lookups, %d names; want READDIRPLUS and 502", got, seen)
	}
}

// readdirLog is a Sender over the device that records every plain READDIR
// (its offset, its size and the d_off of the last entry of its reply) and
// can damage one reply: the READDIR numbered failAt (from 1) gets an EIO
// reply, or with corrupt its first record's namelen becomes 0.
type readdirLog struct {
	fuse.Sender

	mu      sync.Mutex // guards the fields below
	reqs    []readdirReq
	failAt  int
	corrupt bool
	// issued gets a value as each READDIR is sent, if there is room.
	issued chan struct{}
}

// readdirReq is one READDIR as readdirLog saw it.
type readdirReq struct {
	off, size, lastOff uint64
	entries            int
}

func (l *readdirLog) RoundTrip(ctx context.Context, in, out [][]byte) (int, error) {
	if opcodeOf(in) != fuse.OpReaddir {
		return l.Sender.RoundTrip(ctx, in, out)
	}
	args := in[0][40:]
	req := readdirReq{off: binary.LittleEndian.Uint64(args[8:]), size: uint64(binary.LittleEndian.Uint32(args[16:]))}
	l.mu.Lock()
	l.reqs = append(l.reqs, req)
	k := len(l.reqs)
	select {
	case l.issued <- struct{}{}:
	default:
	}
	fail, corrupt := k == l.failAt && !l.corrupt, k == l.failAt && l.corrupt
	l.mu.Unlock()
	n, err := l.Sender.RoundTrip(ctx, in, out)
	if err != nil || n < 16 || len(out) < 2 {
		return n, err
	}
	data := out[1][:n-len(out[0])]
	if fail {
		// An error reply: fuse_out_header alone, error -EIO.
		binary.LittleEndian.PutUint32(out[0][0:], 16)
		eio := -int32(syscall.EIO)
		binary.LittleEndian.PutUint32(out[0][4:], uint32(eio))
		return 16, nil
	}
	for p := data; len(p) >= 24; {
		req.lastOff = binary.LittleEndian.Uint64(p[8:])
		req.entries++
		p = p[min(len(p), (24+int(binary.LittleEndian.Uint32(p[16:]))+7)&^7):]
	}
	if corrupt && len(data) >= 24 {
		binary.LittleEndian.PutUint32(data[16:], 0)
	}
	l.mu.Lock()
	l.reqs[k-1] = req
	l.mu.Unlock()
	return n, nil
}

// sent returns the READDIRs sent so far.
// damage forgets the requests logged so far and damages the reply to the
// READDIR numbered failAt from now (an EIO, or a malformed reply if
// corrupt), until t ends.
func (l *readdirLog) damage(t *testing.T, failAt int, corrupt bool) {
	l.mu.Lock()
	l.reqs, l.failAt, l.corrupt = nil, failAt, corrupt
	l.mu.Unlock()
	t.Cleanup(func() {
		l.mu.Lock()
		l.failAt = 0
		l.mu.Unlock()
	})
}

func (l *readdirLog) sent() []readdirReq {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reqs)
}

// TestReadDirLookahead lists a directory of 3000 names through virtiofsd
// in READDIRs of 8 KiB, then 64 KiB, each sent before the reply before it
// is read: every name comes once, each READDIR continues at the d_off of
// the last entry before it, and while a reply's entries are handed out
// the READDIR after it is already sent. Listing in pieces, an error or a
// malformed reply in a READDIR sent ahead, and names that come and go
// between READDIRs are checked too.
func TestReadDirLookahead(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const total = 3000
	want := make([]string, 0, total+2)
	for i := range total {
		name := fmt.Sprintf("entry-%05d", i)
		fsHostWrite(t, filepath.Join(dir, name), "")
		want = append(want, name)
	}
	want = append(want, ".", "..")
	slices.Sort(want)
	log := &readdirLog{issued: make(chan struct{}, 1)}
	// The directory's size attribute (more than a page) makes every
	// listing plain READDIRs, also with READDIRPLUS negotiated.
	s := startFS(t, filepath.Dir(dir), fsConfig{
		daemon: virtiofsdtest.Options{Cache: "auto"},
		fs:     fuse.FSOptions{Cache: fuse.CacheAuto},
		sender: func(d fuse.Sender) fuse.Sender { log.Sender = d; return log },
	})
	ctx := context.Background()
	open := func(t *testing.T) *vfs.FileDescription {
		t.Helper()
		fd, err := s.v.Open(ctx, root, "d", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fd.Close(ctx) })
		return fd
	}
	// listAll lists fd to the end in calls of at most per entries (all
	// if 0) and returns the names and the last error.
	listAll := func(fd *vfs.FileDescription, per int, each func(name string)) ([]string, error) {
		var got []string
		for {
			n := 0
			err := fd.ReadDir(ctx, func(de vfs.Dirent) bool {
				if per > 0 && n == per {
					return false
				}
				n++
				got = append(got, de.Name)
				if each != nil {
					each(de.Name)
				}
				return true
			})
			if err != nil || n == 0 || per == 0 {
				return got, err
			}
		}
	}
	// sameNames checks that a listing (got, ended by err) gave want, each
	// name once; how says how it was listed.
	sameNames := func(t *testing.T, got []string, err error, how string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		got = slices.Sorted(slices.Values(got))
		if !slices.Equal(got, want) {
			t.Fatalf("listed %d names%s, want %d, each once", len(got), how, len(want))
		}
	}
	// listRest lists fd on from where it stopped and checks that got and
	// the rest together are want, each name once.
	listRest := func(t *testing.T, fd *vfs.FileDescription, got []string) {
		t.Helper()
		rest, err := listAll(fd, 0, nil)
		sameNames(t, append(got, rest...), err, " in two listings")
	}
	checkOffsets := func(t *testing.T, reqs []readdirReq) {
		t.Helper()
		for i := 1; i < len(reqs); i++ {
			want := reqs[i-1].lastOff
			if reqs[i-1].entries == 0 {
				want = reqs[i-1].off // the end, asked again
			}
			if reqs[i].off != want {
				t.Errorf("READDIR %d at offset %d, want %d (the last entry of the one before)", i+1, reqs[i].off, want)
			}
		}
	}

	t.Run("whole", func(t *testing.T) {
		fd := open(t)
		log.mu.Lock()
		log.reqs = nil
		log.mu.Unlock()
		// At the last entry of each reply, the READDIR after it must
		// be out already: the consumer waits for it there (a listing
		// that read a reply before asking for the next would never
		// send it).
		entries, reply, end := 0, 0, 0
		got, err := listAll(fd, 0, func(string) {
			entries++
			for entries > end {
				reply++
				end += log.sent()[reply-1].entries
			}
			if entries < end {
				return
			}
			deadline := time.Now().Add(10 * time.Second)
			for len(log.sent()) <= reply {
				select {
				case <-log.issued:
				case <-time.After(time.Until(deadline)):
					t.Fatalf("READDIR %d not sent while reply %d was read", reply+1, reply)
				}
			}
		})
		sameNames(t, got, err, "")
		reqs := log.sent()
		checkOffsets(t, reqs)
		var sizes []uint64
		for _, r := range reqs {
			sizes = append(sizes, r.size)
		}
		if len(sizes) < 4 || !slices.Equal(sizes[:3], []uint64{8 << 10, 64 << 10, 64 << 10}) || sizes[len(sizes)-1] != 4<<10 || reqs[len(reqs)-1].entries != 0 {
			t.Errorf("READDIR sizes %v, the last with %d entries: want 8, 64, 64 KiB..., then an empty 4 KiB one", sizes, reqs[len(reqs)-1].entries)
		}
	})

	t.Run("pieces", func(t *testing.T) {
		fd := open(t)
		log.mu.Lock()
		log.reqs = nil
		log.mu.Unlock()
		got, err := listAll(fd, 37, nil)
		sameNames(t, got, err, " 37 at a time")
		reqs := log.sent()
		checkOffsets(t, reqs)
		if whole := 5; len(reqs) > whole {
			t.Errorf("%d READDIRs for a listing 37 at a time, want at most %d: the entries of a READDIR sent ahead are kept", len(reqs), whole)
		}
	})

	for _, corrupt := range []bool{false, true} {
		t.Run(fmt.Sprintf("bad-reply-corrupt=%v", corrupt), func(t *testing.T) {
			fd := open(t)
			log.damage(t, 3, corrupt)
			got, err := listAll(fd, 0, nil)
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("listing with READDIR 3 damaged: %v, want EIO", err)
			}
			reqs := log.sent()
			if n := reqs[0].entries + reqs[1].entries; len(got) != n {
				t.Errorf("listed %d names before the error, want the %d of the first two READDIRs (%+v)", len(got), n, reqs)
			}
			// The listing goes on from the last entry handed out.
			listRest(t, fd, got)
		})
	}

	t.Run("stop-before-error", func(t *testing.T) {
		// A READDIR sent ahead fails, but the caller stops before its
		// entries: no error, and the next call asks again.
		fd := open(t)
		log.damage(t, 3, false)
		var got []string
		stopAt := -1
		err := fd.ReadDir(ctx, func(de vfs.Dirent) bool {
			if stopAt < 0 {
				// Within the second reply, whose READDIR after it
				// is out.
				stopAt = log.sent()[0].entries + 5
			}
			if len(got) == stopAt {
				return false
			}
			got = append(got, de.Name)
			return true
		})
		if err != nil {
			t.Fatalf("ReadDir that stopped before the failed READDIR's entries: %v", err)
		}
		if n := len(log.sent()); n != 3 {
			t.Errorf("%d READDIRs sent, want 3: the one that failed was sent ahead", n)
		}
		listRest(t, fd, got)
	})

	t.Run("changing", func(t *testing.T) {
		// Names created and removed on the host while the listing is
		// under way: every name that stays is listed once, and a name
		// never comes twice.
		fd := open(t)
		changed := false
		got, err := listAll(fd, 0, func(string) {
			if changed || len(log.sent()) < 3 {
				return
			}
			changed = true
			for i := range 200 {
				fsHostWrite(t, filepath.Join(dir, fmt.Sprintf("new-%03d", i)), "")
				if err := os.Remove(filepath.Join(dir, fmt.Sprintf("entry-%05d", 2*i))); err != nil {
					t.Fatal(err)
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, n := range got {
			if seen[n] {
				t.Fatalf("%q listed twice", n)
			}
			seen[n] = true
		}
		for i := range total {
			if name := fmt.Sprintf("entry-%05d", i); (i%2 == 1 || i >= 400) && !seen[name] {
				t.Errorf("%q, never removed, not listed", name)
			}
		}
	})
}
