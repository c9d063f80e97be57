package suite

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs"
)

// setupTree makes the tree every comparison case starts from:
//
//	f        "hello"
//	d/       d/g "x"
//	e/       (empty)
//	l   -> f
//	dl  -> d
//	bad -> nothere
func setupTree(s Sys) error {
	for _, err := range []error{
		s.WriteFile("f", []byte("hello"), 0o644),
		s.Mkdir("d", 0o755),
		s.WriteFile("d/g", []byte("x"), 0o644),
		s.Mkdir("e", 0o755),
		s.Symlink("f", "l"),
		s.Symlink("d", "dl"),
		s.Symlink("nothere", "bad"),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// compareCase is one test body, run on an FS and through package os on a
// reference directory; what it records must be the same.
type compareCase struct {
	name string
	run  func(s Sys, r *recorder)
}

// stat records Stat or Lstat of name.
func stat(s Sys, r *recorder, name string, follow bool) {
	var fi fs.FileInfo
	var err error
	op := "Stat"
	if follow {
		fi, err = s.Stat(name)
	} else {
		op = "Lstat"
		fi, err = s.Lstat(name)
	}
	if err != nil {
		r.err(op+" "+name, err)
		return
	}
	r.add("%s %s: %s", op, name, DescribeInfo(fi))
}

// readFile records the contents of name.
func readFile(s Sys, r *recorder, name string) {
	b, err := s.ReadFile(name)
	r.add("ReadFile %s: %q %s", name, b, DescribeErr(err, r.strip))
}

// openFile records OpenFile and returns the file (nil on error).
func openFile(s Sys, r *recorder, name string, flag int, perm fs.FileMode) File {
	f, err := s.OpenFile(name, flag, perm)
	r.err(fmt.Sprintf("OpenFile %s %#o", name, flag), err)
	return f
}

var compareCases = []compareCase{
	{"Stat", func(s Sys, r *recorder) {
		for _, n := range []string{"f", "d", "d/", "d/g", "l", "dl", "dl/g", "bad", "missing", "f/x", "f/", "d/../f", "l/", "."} {
			stat(s, r, n, true)
			stat(s, r, n, false)
		}
	}},
	{"Mkdir", func(s Sys, r *recorder) {
		for _, n := range []string{"new", "f", "d", "l", "bad", "missing/x", "f/x", "d/new/", "."} {
			r.err("Mkdir "+n, s.Mkdir(n, 0o750))
		}
		stat(s, r, "new", false)
		stat(s, r, "d/new", false)
		r.err("Mkdir mode", s.Mkdir("m", 0o777|fs.ModeSticky))
		stat(s, r, "m", false)
	}},
	{"MkdirAll", func(s Sys, r *recorder) {
		for _, n := range []string{"a/b/c", "a/b/c", "a//x/", "f/x", "f", "d", "dl", "l", "d/g/h"} {
			r.err("MkdirAll "+n, s.MkdirAll(n, 0o700))
		}
		stat(s, r, "a/b", false)
		stat(s, r, "a/b/c", false)
		stat(s, r, "a/x", false)
	}},
	{"Remove", func(s Sys, r *recorder) {
		for _, n := range []string{"missing", "d", "f/", "l", "dl", "bad", "e", "f", "f", "d/g", "d", "."} {
			r.err("Remove "+n, s.Remove(n))
		}
		stat(s, r, "f", false)
		stat(s, r, "d", false)
	}},
	{"RemoveAll", func(s Sys, r *recorder) {
		r.err("MkdirAll", s.MkdirAll("d/x/y/z", 0o755))
		r.err("WriteFile", s.WriteFile("d/x/y/z/w", []byte("w"), 0o600))
		for _, n := range []string{"missing", "missing/x", ".", "d/.", "dl", "d", "d", "f", "e"} {
			r.err("RemoveAll "+n, s.RemoveAll(n))
		}
		stat(s, r, "d", false)
		stat(s, r, "f", false)
	}},
	{"Rename", func(s Sys, r *recorder) {
		for _, p := range [][2]string{
			{"missing", "x"}, {"f", "d"}, {"d", "e"}, {"e", "f"}, {"d", "d/sub"},
			{"f", "f"}, {"f", "missing/x"}, {"f", "d/g/x"}, {"f/", "x"},
			{"f", "n"}, {"n", "l"}, {"d", "m"}, {"bad", "b2"}, {"e", "m/e"},
			{"m/g", "m/e/"}, {"dl", "m/e"},
		} {
			r.err("Rename "+p[0]+" "+p[1], s.Rename(p[0], p[1]))
		}
		for _, n := range []string{"f", "n", "l", "d", "m", "m/g", "m/e", "b2", "dl"} {
			stat(s, r, n, false)
		}
		readFile(s, r, "l")
	}},
	{"ReadDir", func(s Sys, r *recorder) {
		for _, n := range []string{"d", ".", "e", "dl", "f", "l", "missing", "bad"} {
			ents, err := s.ReadDir(n)
			r.add("ReadDir %s: %s %s", n, DescribeEntries(ents), DescribeErr(err, r.strip))
		}
		ents, _ := s.ReadDir(".")
		for _, e := range ents {
			fi, err := e.Info()
			if err != nil {
				r.err("Info "+e.Name(), err)
				continue
			}
			r.add("Info %s: %s", e.Name(), DescribeInfo(fi))
		}
	}},
	{"ReadWriteFile", func(s Sys, r *recorder) {
		for _, n := range []string{"f", "l", "d", "missing", "bad", "f/"} {
			readFile(s, r, n)
		}
		for _, n := range []string{"new", "f", "l", "d", "missing/x", "bad", "d/"} {
			r.err("WriteFile "+n, s.WriteFile(n, []byte("data "+n), 0o640))
		}
		for _, n := range []string{"new", "f", "nothere"} {
			readFile(s, r, n)
			stat(s, r, n, false)
		}
		big := strings.Repeat("0123456789abcdef", 300<<10/16)
		r.err("WriteFile big", s.WriteFile("big", []byte(big), 0o600))
		b, err := s.ReadFile("big")
		r.add("ReadFile big: %v %s", string(b) == big, DescribeErr(err, r.strip))
	}},
	{"Symlink", func(s Sys, r *recorder) {
		for _, p := range [][2]string{
			{"f", "s1"}, {"d/g", "s2"}, {"x", "f"}, {"x", "d"}, {"x", "missing/s"}, {"x", "f/s"},
			{"../f", "d/up"}, {"", "empty"},
		} {
			r.err("Symlink "+p[0]+" "+p[1], s.Symlink(p[0], p[1]))
		}
		for _, n := range []string{"s1", "s2", "l", "bad", "f", "d", "missing", "d/up", "l/"} {
			t, err := s.Readlink(n)
			r.add("Readlink %s: %q %s", n, t, DescribeErr(err, r.strip))
		}
		readFile(s, r, "d/up")
		stat(s, r, "s1", false)
	}},
	{"Link", func(s Sys, r *recorder) {
		for _, p := range [][2]string{
			{"f", "h"}, {"d", "h2"}, {"missing", "h3"}, {"f", "d"}, {"f", "l"}, {"l", "hl"}, {"bad", "hb"}, {"f", "missing/h"},
		} {
			r.err("Link "+p[0]+" "+p[1], s.Link(p[0], p[1]))
		}
		stat(s, r, "f", false)
		stat(s, r, "h", false)
		stat(s, r, "hl", false)
		stat(s, r, "hb", false)
	}},
	{"ChmodChown", func(s Sys, r *recorder) {
		r.err("Chmod f", s.Chmod("f", 0o600))
		r.err("Chmod l", s.Chmod("l", 0o640))
		r.err("Chmod d", s.Chmod("d", 0o700|fs.ModeSetgid))
		r.err("Chmod missing", s.Chmod("missing", 0o600))
		r.err("Chmod bad", s.Chmod("bad", 0o600))
		r.err("Chown f", s.Chown("f", 1000, 1001))
		r.err("Chown d -1", s.Chown("d", -1, 1002))
		r.err("Chown missing", s.Chown("missing", 1, 1))
		r.err("Lchown l", s.Lchown("l", 1003, 1004))
		r.err("Lchown bad", s.Lchown("bad", 1005, -1))
		r.err("Chown bad", s.Chown("bad", 1005, -1))
		for _, n := range []string{"f", "l", "d", "bad"} {
			stat(s, r, n, false)
		}
	}},
	{"Chtimes", func(s Sys, r *recorder) {
		at := time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC)
		mt := time.Date(2011, 12, 13, 14, 15, 16, 17000, time.UTC)
		r.err("Chtimes f", s.Chtimes("f", at, mt))
		r.err("Chtimes l", s.Chtimes("l", time.Time{}, mt.Add(time.Hour)))
		r.err("Chtimes missing", s.Chtimes("missing", at, mt))
		fi, err := s.Stat("f")
		if err == nil {
			r.add("mtime %v", fi.ModTime().UTC())
		}
	}},
	{"Truncate", func(s Sys, r *recorder) {
		for _, c := range []struct {
			n    string
			size int64
		}{{"f", 2}, {"l", 3}, {"d", 0}, {"f", -1}, {"missing", 0}, {"f", 10}, {"dl", 1}} {
			r.err(fmt.Sprintf("Truncate %s %d", c.n, c.size), s.Truncate(c.n, c.size))
		}
		readFile(s, r, "f")
	}},
	{"OpenFile", func(s Sys, r *recorder) {
		for _, c := range []struct {
			n    string
			flag int
		}{
			{"f", os.O_RDONLY}, {"f", os.O_CREATE | os.O_EXCL | os.O_WRONLY}, {"d", os.O_WRONLY},
			{"d", os.O_RDWR}, {"d", os.O_RDONLY | os.O_TRUNC}, {"f", os.O_RDONLY | unix.O_DIRECTORY},
			{"l", os.O_RDONLY | unix.O_NOFOLLOW}, {"newdir/", os.O_CREATE | os.O_WRONLY},
			{"missing", os.O_RDONLY}, {"bad", os.O_RDONLY}, {"bad", os.O_CREATE | os.O_WRONLY},
			{"l", os.O_CREATE | os.O_EXCL | os.O_WRONLY}, {"d", os.O_CREATE | os.O_RDONLY},
			{"f/", os.O_RDONLY}, {"d/", os.O_RDONLY}, {"dl/", os.O_RDONLY | unix.O_NOFOLLOW},
			{"n", os.O_CREATE | os.O_RDWR}, {"f", os.O_RDWR | os.O_TRUNC},
			{"f", os.O_CREATE | unix.O_DIRECTORY},
		} {
			if f := openFile(s, r, c.n, c.flag, 0o604); f != nil {
				r.err("Close", f.Close())
			}
		}
		stat(s, r, "nothere", false)
		stat(s, r, "n", false)
		stat(s, r, "f", false)
	}},
	{"FileRead", func(s Sys, r *recorder) {
		f := openFile(s, r, "f", os.O_RDONLY, 0)
		if f == nil {
			return
		}
		r.add("Name %s", strings.TrimPrefix(f.Name(), r.strip))
		buf := make([]byte, 3)
		for range 4 {
			n, err := f.Read(buf)
			r.add("Read: %q %s", buf[:n], DescribeErr(err, r.strip))
		}
		n, err := f.Read(nil)
		r.add("Read empty: %d %s", n, DescribeErr(err, r.strip))
		for _, off := range []int64{0, 3, 5, 9, -1} {
			b := make([]byte, 4)
			n, err := f.ReadAt(b, off)
			r.add("ReadAt %d: %q %s", off, b[:n], DescribeErr(err, r.strip))
		}
		for _, sk := range [][2]int64{{1, io.SeekStart}, {2, io.SeekCurrent}, {-1, io.SeekEnd}, {-10, io.SeekCurrent}, {0, 7}} {
			off, err := f.Seek(sk[0], int(sk[1]))
			r.add("Seek %v: %d %s", sk, off, DescribeErr(err, r.strip))
		}
		n, err = f.Read(buf)
		r.add("Read: %q %s", buf[:n], DescribeErr(err, r.strip))
		n, err = f.Write([]byte("no"))
		r.add("Write read-only: %d %s", n, DescribeErr(err, r.strip))
		r.err("Truncate read-only", f.Truncate(1))
		fi, err := f.Stat()
		if err == nil {
			r.add("Stat: %s", DescribeInfo(fi))
		}
		_, err = f.ReadDir(-1)
		r.err("ReadDir file", err)
		_, err = f.Readdirnames(1)
		r.err("Readdirnames file", err)
		r.err("Close", f.Close())
		n, err = f.Read(buf)
		r.add("Read closed: %d %s", n, DescribeErr(err, r.strip))
		_, err = f.Write(buf)
		r.err("Write closed", err)
		_, err = f.Seek(0, io.SeekStart)
		r.err("Seek closed", err)
		_, err = f.Stat()
		r.err("Stat closed", err)
		r.err("Close closed", f.Close())
	}},
	{"FileWrite", func(s Sys, r *recorder) {
		f := openFile(s, r, "w", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
		if f == nil {
			return
		}
		n, err := f.Write([]byte("hello, world"))
		r.add("Write: %d %s", n, DescribeErr(err, r.strip))
		n, err = f.WriteAt([]byte("HE"), 0)
		r.add("WriteAt: %d %s", n, DescribeErr(err, r.strip))
		n, err = f.WriteAt([]byte("!"), 20)
		r.add("WriteAt hole: %d %s", n, DescribeErr(err, r.strip))
		n, err = f.WriteAt([]byte("!"), -1)
		r.add("WriteAt negative: %d %s", n, DescribeErr(err, r.strip))
		off, err := f.Seek(0, io.SeekCurrent)
		r.add("Seek cur: %d %s", off, DescribeErr(err, r.strip))
		n, err = f.WriteString(" and more")
		r.add("WriteString: %d %s", n, DescribeErr(err, r.strip))
		fi, err := f.Stat()
		if err == nil {
			r.add("Stat: %s", DescribeInfo(fi))
		}
		r.err("Truncate", f.Truncate(4))
		r.err("Truncate negative", f.Truncate(-1))
		r.err("Sync", f.Sync())
		r.err("Chmod", f.Chmod(0o612))
		r.err("Chown", f.Chown(-1, 7))
		off, err = f.Seek(0, io.SeekStart)
		r.add("Seek: %d %s", off, DescribeErr(err, r.strip))
		b, err := io.ReadAll(f)
		r.add("ReadAll: %q %s", b, DescribeErr(err, r.strip))
		r.err("Close", f.Close())
		stat(s, r, "w", false)

		f = openFile(s, r, "w", os.O_WRONLY|os.O_APPEND, 0)
		if f == nil {
			return
		}
		n, err = f.Write([]byte("++"))
		r.add("Write append: %d %s", n, DescribeErr(err, r.strip))
		n, err = f.WriteAt([]byte("x"), 0)
		r.add("WriteAt append: %d %s", n, DescribeErr(err, r.strip))
		n, err = f.Read(make([]byte, 2))
		r.add("Read write-only: %d %s", n, DescribeErr(err, r.strip))
		r.err("Close", f.Close())
		readFile(s, r, "w")
	}},
	{"FileReadDir", func(s Sys, r *recorder) {
		for i := range 7 {
			r.err("WriteFile", s.WriteFile(fmt.Sprintf("e/%d", i), nil, 0o600))
		}
		r.err("Mkdir", s.Mkdir("e/sub", 0o700))
		r.err("Symlink", s.Symlink("0", "e/link"))
		d := openFile(s, r, "e", os.O_RDONLY, 0)
		if d == nil {
			return
		}
		// Before the listing: package os refuses Read with EINVAL on a
		// directory it has listed, where read(2) says EISDIR.
		_, err := d.Read(make([]byte, 8))
		r.err("Read dir", err)
		var all, ents []fs.DirEntry
		for {
			ents, err = d.ReadDir(3)
			r.add("ReadDir(3): %d %s", len(ents), DescribeErr(err, r.strip))
			all = append(all, ents...)
			if err != nil {
				break
			}
		}
		r.add("entries: %s", DescribeEntries(all))
		ents, err = d.ReadDir(-1)
		r.add("ReadDir(-1) at end: %d %s", len(ents), DescribeErr(err, r.strip))
		names, err := d.Readdirnames(0)
		r.add("Readdirnames(0) at end: %d %s", len(names), DescribeErr(err, r.strip))
		off, err := d.Seek(0, io.SeekStart)
		r.add("Seek: %d %s", off, DescribeErr(err, r.strip))
		names, err = d.Readdirnames(-1)
		r.add("Readdirnames(-1): %d %s", len(names), DescribeErr(err, r.strip))
		_, err = d.Write([]byte("x"))
		r.err("Write dir", err)
		r.err("Truncate dir", d.Truncate(0))
		r.err("Sync dir", d.Sync())
		r.err("Close", d.Close())
		_, err = d.ReadDir(1)
		r.err("ReadDir closed", err)
	}},
	{"Xattr", func(s Sys, r *recorder) {
		r.err("Setxattr f", s.Setxattr("f", "user.a", []byte("1"), 0))
		r.err("Setxattr create existing", s.Setxattr("f", "user.a", []byte("2"), unix.XATTR_CREATE))
		r.err("Setxattr replace missing", s.Setxattr("f", "user.b", []byte("2"), unix.XATTR_REPLACE))
		r.err("Setxattr l", s.Setxattr("l", "user.c", []byte("via link"), 0))
		r.err("Setxattr missing", s.Setxattr("missing", "user.a", nil, 0))
		for _, c := range [][2]string{{"f", "user.a"}, {"f", "user.c"}, {"f", "user.none"}, {"missing", "user.a"}} {
			v, err := s.Getxattr(c[0], c[1])
			r.add("Getxattr %s %s: %q %s", c[0], c[1], v, DescribeErr(err, r.strip))
		}
		names, err := s.Listxattr("f")
		var user []string
		for _, n := range names {
			if strings.HasPrefix(n, "user.") {
				user = append(user, n)
			}
		}
		r.add("Listxattr: %q %s", user, DescribeErr(err, r.strip))
		r.err("Removexattr", s.Removexattr("f", "user.a"))
		r.err("Removexattr again", s.Removexattr("f", "user.a"))
		_, err = s.Getxattr("f", "user.a")
		r.err("Getxattr removed", err)
	}},
}

// CaseNames returns the names of the comparison cases, in the order they run.
func CaseNames() []string {
	names := make([]string, len(compareCases))
	for i, c := range compareCases {
		names[i] = c.name
	}
	return names
}

// Reference is what the comparison cases record through package os: the expectations for
// [Compare]. It is JSON, to be recorded on the host and read in a guest.
type Reference struct {
	// Umask is the umask the reference was recorded with; the FS under test must create files
	// with the same one (govirtiofs.Options.Umask).
	Umask uint32 `json:"umask"`
	// Cases maps a case name to the lines it recorded.
	Cases map[string][]string `json:"cases"`
}

// RecordReference runs every comparison case through package os, each in a fresh directory
// dir/cN set up like the FS's, and returns what they recorded. The caller must be root (the
// cases chown) and dir should be on the filesystem that backs the share under test.
//
// Errors: setting up a case's directory or tree failed; reading the process umask failed.
func RecordReference(dir string) (*Reference, error) {
	umask, err := ProcessUmask()
	if err != nil {
		return nil, err
	}
	ref := &Reference{Umask: umask, Cases: make(map[string][]string)}
	for i, c := range compareCases {
		cdir := fmt.Sprintf("%s/c%d", dir, i)
		if err := os.Mkdir(cdir, 0o755); err != nil {
			return nil, err
		}
		s := OS(cdir)
		if err := setupTree(s); err != nil {
			return nil, fmt.Errorf("case %s: setting up the reference: %w", c.name, err)
		}
		r := &recorder{strip: dir + "/"}
		c.run(s, r)
		ref.Cases[c.name] = r.lines
	}
	return ref, nil
}

// Compare runs every comparison case on f, each in a fresh directory base/cN made through f
// with the tree setupTree makes, as a subtest named after the case, and checks that it records
// what ref holds for the case. The cases named in skip are skipped.
func Compare(t *testing.T, f *govirtiofs.FS, base string, ref *Reference, skip ...string) {
	t.Helper()
	for i, c := range compareCases {
		t.Run(c.name, func(t *testing.T) {
			for _, s := range skip {
				if s == c.name {
					t.Skipf("not supported by this backend")
				}
			}
			want := ref.Cases[c.name]
			if len(want) == 0 {
				t.Fatal("the reference recorded nothing for this case")
			}
			dir := join(base, fmt.Sprintf("c%d", i))
			if err := f.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			s := Ours(f, dir)
			if err := setupTree(s); err != nil {
				t.Fatalf("setting up the FS: %v", err)
			}
			got := &recorder{}
			if base != "" {
				got.strip = base + "/"
			}
			c.run(s, got)
			for i := range max(len(got.lines), len(want)) {
				g, w := "(nothing)", "(nothing)"
				if i < len(got.lines) {
					g = got.lines[i]
				}
				if i < len(want) {
					w = want[i]
				}
				if g != w {
					t.Errorf("got  %s\nwant %s", g, w)
				}
			}
		})
	}
}

// ProcessUmask reads this process's umask from /proc/self/status (Linux 4.7+), without
// changing it as umask(2) would under the other goroutines' feet.
//
// Errors: /proc/self/status is unreadable or has no Umask line.
func ProcessUmask() (uint32, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			u, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				return 0, fmt.Errorf("umask %q: %w", v, err)
			}
			return uint32(u), nil
		}
	}
	return 0, errors.New("no Umask line in /proc/self/status")
}
