package boot

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseExitSentinel(t *testing.T) {
	tests := []struct {
		line string
		code int
		ok   bool
	}{
		{"GOVIRTIOFS-EXIT 0", 0, true},
		{"GOVIRTIOFS-EXIT 137", 137, true},
		{"[   12.3] noise GOVIRTIOFS-EXIT 3 trailing", 3, true},
		{"GOVIRTIOFS-EXIT", 0, false},
		{"GOVIRTIOFS-EXIT x", 0, false},
		{"GOVIRTIOFS-EXIT -1", 0, false},
		{"GOVIRTIOFS-EXIT 256", 0, false},
		{"hello", 0, false},
	}
	for _, tt := range tests {
		code, ok := parseExitSentinel(tt.line)
		if code != tt.code || ok != tt.ok {
			t.Errorf("parseExitSentinel(%q) = %d, %v; want %d, %v", tt.line, code, ok, tt.code, tt.ok)
		}
	}
}

func TestReadConsole(t *testing.T) {
	tests := []struct {
		name, console, wantOutput string
		wantCode                  int
		wantStart                 bool
	}{
		{
			name:       "normal",
			console:    "SeaBIOS\r\nWelcome to u-root!\r\nGOVIRTIOFS-START\r\nline 1\r\nline 2\r\n\r\nGOVIRTIOFS-EXIT 4\r\n[ 9.1] reboot: Power down\r\n",
			wantOutput: "line 1\nline 2\n",
			wantCode:   4,
			wantStart:  true,
		},
		{
			name:       "unterminated last line",
			console:    "GOVIRTIOFS-START\nno newline\nGOVIRTIOFS-EXIT 0\n",
			wantOutput: "no newline\n",
			wantCode:   0,
			wantStart:  true,
		},
		{
			name:       "empty lines kept",
			console:    "GOVIRTIOFS-START\na\n\nb\n\nGOVIRTIOFS-EXIT 0\n",
			wantOutput: "a\n\nb\n",
			wantCode:   0,
			wantStart:  true,
		},
		{
			name:     "wrapper failed before start",
			console:  "guestinit: bad config\nGOVIRTIOFS-EXIT 125\n",
			wantCode: 125,
		},
		{
			name:     "panic",
			console:  "GOVIRTIOFS-START\nKernel panic - not syncing\n",
			wantCode: -1, wantOutput: "Kernel panic - not syncing\n", wantStart: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var console, output bytes.Buffer
			vm := &VM{cfg: VMConfig{Console: &console, Output: &output}, exitCode: -1, started: time.Now()}
			vm.readConsole(strings.NewReader(tt.console))
			if console.String() != tt.console {
				t.Errorf("console = %q, want it verbatim %q", console.String(), tt.console)
			}
			if output.String() != tt.wantOutput {
				t.Errorf("output = %q, want %q", output.String(), tt.wantOutput)
			}
			if vm.exitCode != tt.wantCode {
				t.Errorf("exit code = %d, want %d", vm.exitCode, tt.wantCode)
			}
			if got := vm.timings.GuestStart > 0; got != tt.wantStart {
				t.Errorf("start sentinel seen = %v, want %v", got, tt.wantStart)
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	k := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(k, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  VMConfig
	}{
		{"no kernel", VMConfig{Initrd: k}},
		{"missing initrd", VMConfig{Kernel: k, Initrd: filepath.Join(dir, "nope")}},
		{"missing share", VMConfig{Kernel: k, Initrd: k, Shares: []Share{{Dir: filepath.Join(dir, "nope")}}}},
		{"share is a file", VMConfig{Kernel: k, Initrd: k, Shares: []Share{{Dir: k}}}},
		{"9p without tag", VMConfig{Kernel: k, Initrd: k, NineP: []NinePShare{{Dir: dir}}}},
		{"bad machine", VMConfig{Kernel: k, Initrd: k, Machine: "isapc"}},
		{"missing qemu", VMConfig{Kernel: k, Initrd: k, QEMU: filepath.Join(dir, "no-qemu")}},
		{"missing virtiofsd", VMConfig{Kernel: k, Initrd: k, Shares: []Share{{Dir: dir}}, Virtiofsd: filepath.Join(dir, "no-virtiofsd")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vm, err := Start(context.Background(), tt.cfg)
			if err == nil {
				vm.Kill()
				vm.Wait()
				t.Fatal("Start succeeded, want an error")
			}
		})
	}
}

// TestVirtiofsdLifecycle starts the real virtiofsd through Start with a QEMU stand-in that exits
// at once without a sentinel, and checks the error and that virtiofsd was stopped.
func TestVirtiofsdLifecycle(t *testing.T) {
	dir := t.TempDir()
	k := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(k, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	fakeQEMU := filepath.Join(dir, "qemu")
	if err := os.WriteFile(fakeQEMU, []byte("#!/bin/sh\necho booting\necho GOVIRTIOFS-START\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	vm, err := Start(context.Background(), VMConfig{
		Kernel: k, Initrd: k, QEMU: fakeQEMU, Output: &out,
		Shares: []Share{{Dir: dir, AnnounceSubmounts: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	code, err := vm.Wait()
	if !errors.Is(err, ErrNoExitStatus) || code != -1 {
		t.Errorf("Wait() = %d, %v; want -1, ErrNoExitStatus", code, err)
	}
	if out.String() != "hi\n" {
		t.Errorf("output = %q, want %q", out.String(), "hi\n")
	}
	checkDaemonsGone(t, vm)
	if _, err := os.Stat(vm.sockDir); !os.IsNotExist(err) {
		t.Errorf("socket directory %s not removed: %v", vm.sockDir, err)
	}
}

// TestKillAndCancel checks that Kill and context cancellation end a VM that would run forever.
func TestKillAndCancel(t *testing.T) {
	dir := t.TempDir()
	k := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(k, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	fakeQEMU := filepath.Join(dir, "qemu")
	if err := os.WriteFile(fakeQEMU, []byte("#!/bin/sh\necho up\nexec sleep 1000\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		timeout time.Duration
		stop    func(vm *VM, cancel context.CancelFunc)
		want    error
	}{
		{"kill", 0, func(vm *VM, _ context.CancelFunc) { vm.Kill() }, nil},
		{"cancel", 0, func(_ *VM, cancel context.CancelFunc) { cancel() }, context.Canceled},
		{"timeout", time.Millisecond, func(*VM, context.CancelFunc) {}, ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			vm, err := Start(ctx, VMConfig{Kernel: k, Initrd: k, QEMU: fakeQEMU, Timeout: tt.timeout, Shares: []Share{{Dir: dir}}})
			if err != nil {
				t.Fatal(err)
			}
			tt.stop(vm, cancel)
			code, err := vm.Wait()
			if err == nil || code != -1 {
				t.Fatalf("Wait() = %d, %v; want -1 and an error", code, err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Wait() error = %v, want %v", err, tt.want)
			}
			if vm.qemu.ProcessState == nil {
				t.Error("QEMU stand-in not reaped")
			}
			checkDaemonsGone(t, vm)
		})
	}
}

// checkDaemonsGone checks that every virtiofsd and all of its process group (the sandbox child it
// forks) have ended (zombies waiting for init are fine) once Wait has returned.
func checkDaemonsGone(t *testing.T, vm *VM) {
	t.Helper()
	if len(vm.daemons) == 0 {
		t.Fatal("no virtiofsd was started")
	}
	for _, d := range vm.daemons {
		select {
		case <-d.Done():
		default:
			t.Errorf("virtiofsd %v still running after Wait", d.Args())
		}
		if live := liveGroupMembers(d.PID()); len(live) > 0 {
			t.Errorf("virtiofsd's process group %d still runs after Wait: %v", d.PID(), live)
		}
	}
}

// TestKillConnectedVirtiofsd kills a VM whose virtiofsd has a connected front end: virtiofsd has
// then forked its sandboxed child, which serves the session. Wait must return only when that child
// is gone too. The test is the front end: one vhost-user GET_FEATURES round trip proves the child
// is serving.
func TestKillConnectedVirtiofsd(t *testing.T) {
	dir := t.TempDir()
	k := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(k, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	fakeQEMU := filepath.Join(dir, "qemu")
	if err := os.WriteFile(fakeQEMU, []byte("#!/bin/sh\nexec sleep 1000\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	vm, err := Start(context.Background(), VMConfig{Kernel: k, Initrd: k, QEMU: fakeQEMU, Shares: []Share{{Dir: dir}}})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Wait()
	defer vm.Kill()
	c, err := net.Dial("unix", filepath.Join(vm.sockDir, "vfs0.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// VHOST_USER_GET_FEATURES (1), flags version 1, no payload.
	if _, err := c.Write([]byte{1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, 12+8)
	if _, err := io.ReadFull(c, reply); err != nil {
		t.Fatalf("reading the GET_FEATURES reply: %v", err)
	}
	if got := binary.LittleEndian.Uint32(reply); got != 1 {
		t.Fatalf("reply to request %d, want 1", got)
	}
	vm.Kill()
	if _, err := vm.Wait(); err == nil {
		t.Error("Wait after Kill returned no error")
	}
	checkDaemonsGone(t, vm)
}

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		stat  string
		state string
		pgrp  int
		ok    bool
	}{
		{"4847 (virtiofsd) Z 1 4844 30021 0 -1", "Z", 4844, true},
		{"12 (a) b) (c) S 1 12 12 0", "S", 12, true},
		{"12 (x y) R 1", "", 0, false},
		{"12 (x) R 1 notanumber 3", "", 0, false},
		{"garbage", "", 0, false},
	}
	for _, tt := range tests {
		state, pgrp, ok := parseProcStat(tt.stat)
		if state != tt.state || pgrp != tt.pgrp || ok != tt.ok {
			t.Errorf("parseProcStat(%q) = %q, %d, %v; want %q, %d, %v", tt.stat, state, pgrp, ok, tt.state, tt.pgrp, tt.ok)
		}
	}
}
