package govirtiofs

import (
	"errors"
	"flag"
	"io"
	"io/fs"
	"syscall"
	"testing"
)

func TestParseCacheMode(t *testing.T) {
	for _, c := range []struct {
		in   string
		want CacheMode
		err  bool
	}{
		{"auto", CacheAuto, false},
		{"none", CacheNone, false},
		{"always", CacheAlways, false},
		{"", 0, true},
		{"Auto", 0, true},
		{"never", 0, true},
	} {
		got, err := ParseCacheMode(c.in)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("ParseCacheMode(%q) = %v, %v; want %v, error %v", c.in, got, err, c.want, c.err)
		}
		if err == nil && got.String() != c.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), c.in)
		}
	}
	if s := CacheMode(7).String(); s != "CacheMode(7)" {
		t.Errorf("CacheMode(7).String() = %q", s)
	}
	// As a flag.
	var m CacheMode
	fl := flag.NewFlagSet("x", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	fl.Var(&m, "cache", "")
	if err := fl.Parse([]string{"-cache=always"}); err != nil || m != CacheAlways {
		t.Errorf("flag -cache=always: %v, %v", m, err)
	}
	if err := fl.Parse([]string{"-cache=sometimes"}); err == nil {
		t.Errorf("flag -cache=sometimes: no error")
	}
}

func TestParseDAXMode(t *testing.T) {
	for _, c := range []struct {
		in   string
		want DAXMode
		err  bool
	}{
		{"never", DAXNever, false},
		{"always", DAXAlways, false},
		{"inode", DAXInode, false},
		{"auto", 0, true},
	} {
		got, err := ParseDAXMode(c.in)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("ParseDAXMode(%q) = %v, %v; want %v, error %v", c.in, got, err, c.want, c.err)
		}
		if err == nil && got.String() != c.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), c.in)
		}
	}
}

func TestOptionsCheck(t *testing.T) {
	for _, c := range []struct {
		name string
		opts Options
		ok   bool
	}{
		{"zero", Options{}, true},
		{"bad cache", Options{Cache: 9}, false},
		{"bad dax", Options{DAX: -1}, false},
		{"negative queues", Options{RequestQueues: -1}, false},
		{"negative memory", Options{MemorySize: -1}, false},
		{"negative page cache", Options{PageCacheSize: -1}, false},
		{"page cache", Options{PageCacheSize: 1 << 20}, true},
	} {
		if err := c.opts.check(); (err == nil) != c.ok {
			t.Errorf("%s: check() = %v, want ok %v", c.name, err, c.ok)
		}
	}
	for _, c := range []struct{ in, want int }{{0, DefaultDentryCacheSize}, {-5, -1}, {7, 7}} {
		o := Options{DentryCacheSize: c.in}
		if got := o.dentryCacheSize(); got != c.want {
			t.Errorf("dentryCacheSize(%d) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestBasename(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"a/b", "b"}, {"a/b/", "b"}, {"/", "/"}, {"b", "b"}, {"/a", "a"}, {".", "."}, {"a//", "a"},
	} {
		if got := basename(c.in); got != c.want {
			t.Errorf("basename(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestFileMode(t *testing.T) {
	for _, c := range []struct {
		mode uint32
		want fs.FileMode
	}{
		{0o100644, 0o644},
		{0o040755, fs.ModeDir | 0o755},
		{0o120777, fs.ModeSymlink | 0o777},
		{0o010600, fs.ModeNamedPipe | 0o600},
		{0o140700, fs.ModeSocket | 0o700},
		{0o020600, fs.ModeDevice | fs.ModeCharDevice | 0o600},
		{0o060600, fs.ModeDevice | 0o600},
		{0o104755, fs.ModeSetuid | 0o755},
		{0o042755, fs.ModeDir | fs.ModeSetgid | 0o755},
		{0o041777, fs.ModeDir | fs.ModeSticky | 0o777},
	} {
		if got := fileMode(c.mode); got != c.want {
			t.Errorf("fileMode(%#o) = %v, want %v", c.mode, got, c.want)
		}
		if got := syscallMode(c.want); got != c.mode&0o7777 {
			t.Errorf("syscallMode(%v) = %#o, want %#o", c.want, got, c.mode&0o7777)
		}
	}
}

// TestCloseMem checks Close: open files are closed with it, later use is
// ENOTCONN or fs.ErrClosed.
func TestCloseMem(t *testing.T) {
	f := newMemFS(t)
	file, err := f.Create("open-at-close")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := file.WriteString("data"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := file.Write([]byte("x")); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Write after FS.Close = %v, want fs.ErrClosed", err)
	}
	if _, err := f.Stat("open-at-close"); !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("Stat after Close = %v, want ENOTCONN", err)
	}
	if _, err := f.Open("open-at-close"); !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("Open after Close = %v, want ENOTCONN", err)
	}
	if err := f.Close(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("second Close = %v, want fs.ErrClosed", err)
	}
}
