package govirtiofs

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"slices"
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

// TestSortedOrder checks the radix sort of listed names against
// slices.Sort, for name sets whose first eight bytes differ, tie, are
// prefixes of one another or hold bytes above 0x7f.
func TestSortedOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n, maxLen int, alphabet string) []string {
		out := make([]string, n)
		for i := range out {
			b := make([]byte, 1+rng.IntN(maxLen))
			for j := range b {
				b[j] = alphabet[rng.IntN(len(alphabet))]
			}
			out[i] = string(b)
		}
		return out
	}
	seq := func(format string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf(format, (i*7919)%n)
		}
		return out
	}
	tests := []struct {
		name  string
		names []string
	}{
		{"empty", nil},
		{"one", []string{"x"}},
		{"prefixes", []string{"abcdefghij", "abcdefgh", "abcdefghi", "a", "ab", "abcdefg", "b", "abcdefgha"}},
		{"bench", seq("e%06d", 5000)},
		{"long shared prefix", seq("file_name_%05d", 3000)},
		{"high bytes", []string{"\xff", "\x80a", "z", "\x7f", "é", "e", "\x01", "\xff\xff\xff\xff\xff\xff\xff\xff\x01", "\xff\xff\xff\xff\xff\xff\xff\xff"}},
		{"random short", random(2000, 4, "ab.\xfe")},
		{"random long", random(2000, 20, "abc")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := make([]dirent, len(tt.names))
			for i, n := range tt.names {
				ds[i] = dirent{name: n}
			}
			order := sortedOrder(ds)
			want := slices.Clone(tt.names)
			slices.Sort(want)
			if len(order) != len(want) {
				t.Fatalf("%d indexes, want %d", len(order), len(want))
			}
			seen := make([]bool, len(ds))
			for i, j := range order {
				if seen[j] {
					t.Fatalf("index %d twice", j)
				}
				seen[j] = true
				if ds[j].name != want[i] {
					t.Fatalf("position %d: %q, want %q", i, ds[j].name, want[i])
				}
			}
		})
	}
}

// BenchmarkSortedOrder sorts the names of the bench's readdir directory
// (e000000 to e004999, in a scrambled order as a server returns them).
func BenchmarkSortedOrder(b *testing.B) {
	const n = 5000
	ds := make([]dirent, n)
	for i := range ds {
		ds[i] = dirent{name: fmt.Sprintf("e%06d", (i*7919)%n)}
	}
	b.ReportAllocs()
	for b.Loop() {
		sortedOrder(ds)
	}
}
