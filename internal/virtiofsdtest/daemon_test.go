package virtiofsdtest

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

func TestArgs(t *testing.T) {
	tests := []struct {
		name string
		dir  string
		opts Options
		want []string
	}{
		{"default", "D", Options{}, []string{"--socket-path=S", "-o", "source=D", "-o", "cache=auto", "--thread-pool-size=0"}},
		{"none", "D", Options{Cache: "none"}, []string{"--socket-path=S", "-o", "source=D", "-o", "cache=none", "--thread-pool-size=0"}},
		{"all", "D", Options{Cache: "always", AnnounceSubmounts: true, Xattr: true, ExtraArgs: []string{"-o", "log_level=debug"}},
			[]string{"--socket-path=S", "-o", "source=D", "-o", "cache=always", "--thread-pool-size=0", "-o", "announce_submounts", "-o", "xattr", "-o", "log_level=debug"}},
		{"comma and backslash escaped", `/t/a,b\c`, Options{}, []string{"--socket-path=S", "-o", `source=/t/a\,b\\c`, "-o", "cache=auto", "--thread-pool-size=0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Args("S", tt.dir, tt.opts); !slices.Equal(got, tt.want) {
				t.Errorf("Args = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStartConnectKill(t *testing.T) {
	d := Start(t, t.TempDir(), Options{})
	if d.PID <= 0 {
		t.Fatalf("PID = %d", d.PID)
	}
	fi, err := os.Stat(d.Socket)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %s: %v, mode %v", d.Socket, err, fi.Mode())
	}
	n, err := d.FDCount()
	if err != nil || n < 3 {
		t.Fatalf("FDCount = %d, %v; want >= 3", n, err)
	}
	c, err := net.Dial("unix", d.Socket)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	d.Kill()
	select {
	case <-d.Done():
	default:
		t.Fatal("Done not closed after Kill")
	}
	// The connection sees the daemon (and its sandboxed child) go away.
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("read from killed virtiofsd's socket succeeded")
	}
	d.Kill() // idempotent
}

// TestStartOddDir shares directories whose names fuse_opt would split or
// unescape: the parts before the comma do not exist, so virtiofsd would
// exit at once ("failed to stat source") if it saw a cut-short path.
func TestStartOddDir(t *testing.T) {
	for _, name := range []string{"a,b", `c\d,e`, `f\`} {
		t.Run("", func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			d := Start(t, dir, Options{})
			c, err := net.Dial("unix", d.Socket)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			c.Close()
		})
	}
}

func TestSubmount(t *testing.T) {
	dir := t.TempDir()
	mnt := Submount(t, dir, "sub")
	if mnt != filepath.Join(dir, "sub") {
		t.Errorf("Submount = %q", mnt)
	}
	var a, b syscall.Stat_t
	if err := syscall.Stat(dir, &a); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(mnt, &b); err != nil {
		t.Fatal(err)
	}
	if a.Dev == b.Dev {
		t.Errorf("st_dev of %s and its submount both %d", dir, a.Dev)
	}
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}
