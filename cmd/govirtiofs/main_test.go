package main

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/govirtiofs/govirtiofs/bench"
)

func TestDispatch(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"help", []string{"help"}, 0, "run ", ""},
		{"help run", []string{"help", "run"}, 0, "", "--share"},
		{"run -h", []string{"run", "-h"}, 0, "", "usage: govirtiofs run"},
		{"flags without command", []string{"-h"}, 0, "", "usage: govirtiofs run"},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"bad flag", []string{"run", "--no-such-flag"}, 2, "", "no-such-flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := dispatch(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("dispatch(%q) = %d, want %d; stderr:\n%s", tt.args, code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantStdout, stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantStderr, stderr.String())
			}
		})
	}
}

func TestProgressHandler(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(&progressHandler{w: &b, level: slog.LevelInfo, mu: new(sync.Mutex)})
	log.Debug("hidden")
	log.With("tag", "share").Info("booting", "machine", "q35")
	log.Warn("careful")
	want := "govirtiofs: booting tag=share machine=q35\ngovirtiofs: WARN: careful\n"
	if b.String() != want {
		t.Errorf("output = %q, want %q", b.String(), want)
	}
}

func TestParseBench(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantArgs []string
		wantErr  string
	}{
		{"defaults", nil, 0, nil, ""},
		{"virtiofsd args in order", []string{"--virtiofsd-arg", "--thread-pool-size=0", "-virtiofsd-arg=-o", "-virtiofsd-arg", "xattr"}, 0,
			[]string{"--thread-pool-size=0", "-o", "xattr"}, ""},
		{"missing value", []string{"--virtiofsd-arg"}, 2, nil, "flag needs an argument"},
		{"stray argument", []string{"extra"}, 2, nil, "unexpected arguments"},
		{"help", []string{"-h"}, 0, nil, "-virtiofsd-arg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			cfg, _, code := parseBench(tt.args, &stderr)
			if code != tt.wantCode {
				t.Errorf("code %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErr, stderr.String())
			}
			if tt.wantErr != "" || tt.wantCode != 0 {
				if cfg != nil {
					t.Errorf("config %+v, want nil", cfg)
				}
				return
			}
			if cfg == nil {
				t.Fatal("no config")
			}
			if !slices.Equal(cfg.VirtiofsdArgs, tt.wantArgs) {
				t.Errorf("VirtiofsdArgs = %q, want %q", cfg.VirtiofsdArgs, tt.wantArgs)
			}
			if cfg.MemoryMiB != bench.DefaultMemoryMiB || cfg.OutDir != "bench-results" {
				t.Errorf("MemoryMiB %d, OutDir %q; want the defaults", cfg.MemoryMiB, cfg.OutDir)
			}
		})
	}
}
