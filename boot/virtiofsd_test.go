package boot

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestVirtiofsdArgs(t *testing.T) {
	tests := []struct {
		name string
		cfg  VirtiofsdConfig
		want []string
	}{
		{"default", VirtiofsdConfig{Socket: "S", Dir: "D"}, []string{"--socket-path=S", "-o", "source=D", "-o", "cache=auto", "--thread-pool-size=0"}},
		{"none", VirtiofsdConfig{Socket: "S", Dir: "D", Cache: "none"}, []string{"--socket-path=S", "-o", "source=D", "-o", "cache=none", "--thread-pool-size=0"}},
		{"all", VirtiofsdConfig{Socket: "S", Dir: "D", Cache: "always", AnnounceSubmounts: true, Xattr: true, Args: []string{"--thread-pool-size=4"}},
			[]string{"--socket-path=S", "-o", "source=D", "-o", "cache=always", "--thread-pool-size=0", "-o", "announce_submounts", "-o", "xattr", "--thread-pool-size=4"}},
		{"comma and backslash escaped", VirtiofsdConfig{Socket: "S", Dir: `/t/a,b\c`}, []string{"--socket-path=S", "-o", `source=/t/a\,b\\c`, "-o", "cache=auto", "--thread-pool-size=0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VirtiofsdArgs(tt.cfg); !slices.Equal(got, tt.want) {
				t.Errorf("VirtiofsdArgs = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestStartVirtiofsd starts the real virtiofsd, connects to it, and checks Stop, Kill and the
// errors for a bad option and for missing fields.
func TestStartVirtiofsd(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "v.sock")
	d, err := StartVirtiofsd(context.Background(), VirtiofsdConfig{Socket: sock, Dir: dir, Args: []string{"--thread-pool-size=0"}})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := listening(sock); !ok || err != nil {
		t.Errorf("listening(%s) = %v, %v after StartVirtiofsd; want true", sock, ok, err)
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.Close() // virtiofsd exits once its front end goes
	d.Stop()
	select {
	case <-d.Done():
	default:
		t.Error("Done not closed after Stop")
	}
	if live := liveGroupMembers(d.PID()); len(live) > 0 {
		t.Errorf("process group %d still runs after Stop: %v", d.PID(), live)
	}
	d.Kill() // after Stop: no effect, no hang

	_, err = StartVirtiofsd(context.Background(), VirtiofsdConfig{Socket: filepath.Join(dir, "w.sock"), Dir: dir, Args: []string{"--no-such-flag"}})
	if err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("StartVirtiofsd with a bad flag: %v, want an error saying it exited", err)
	}
	if _, err := StartVirtiofsd(context.Background(), VirtiofsdConfig{Dir: dir}); err == nil {
		t.Error("StartVirtiofsd without Socket succeeded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := StartVirtiofsd(ctx, VirtiofsdConfig{Bin: filepath.Join(dir, "missing"), Socket: sock, Dir: dir}); err == nil {
		t.Errorf("StartVirtiofsd with a missing binary: %v, want an error", err)
	}
}
