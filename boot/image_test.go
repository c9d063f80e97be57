package boot

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/u-root/mkuimage/cpio"
)

func TestWriteOverlay(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "prog")
	if err := os.WriteFile(prog, []byte("\x7fELF program"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"/prog/hello": prog, "/modules/fuse.ko": prog}
	static := map[string][]byte{"/etc/govirtiofs/init.json": []byte(`{"path":"/prog/hello"}`)}
	a, err := writeOverlay(files, static)
	if err != nil {
		t.Fatal(err)
	}
	b, err := writeOverlay(files, static)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("writeOverlay is not deterministic")
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(a)))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range recs {
		var data []byte
		if r.ReaderAt != nil {
			data, _ = io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		}
		got[r.Name] = string(data)
	}
	want := map[string]string{
		"etc": "", "etc/govirtiofs": "", "etc/govirtiofs/init.json": `{"path":"/prog/hello"}`,
		"modules": "", "modules/fuse.ko": "\x7fELF program",
		"prog": "", "prog/hello": "\x7fELF program",
	}
	if !bytes.Contains(a, []byte(cpio.Trailer)) {
		t.Error("overlay has no trailer record")
	}
	for name, data := range want {
		if g, ok := got[name]; !ok || g != data {
			t.Errorf("record %q = %q (present %v), want %q", name, g, ok, data)
		}
	}
	if len(got) != len(want) {
		t.Errorf("records %v, want %d of them", got, len(want))
	}
	if _, err := writeOverlay(map[string]string{"/x": filepath.Join(dir, "missing")}, nil); err == nil {
		t.Error("writeOverlay accepted a missing file")
	}
}

func TestCheckStaticBinary(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "script")
	if err := os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path    string
		wantErr bool
	}{
		{text, true},
		{"/bin/sh", true}, // dynamically linked on Debian
	}
	for _, tt := range tests {
		if err := checkStaticBinary(tt.path); (err != nil) != tt.wantErr {
			t.Errorf("checkStaticBinary(%s) = %v, wantErr %v", tt.path, err, tt.wantErr)
		}
	}
}

// TestGuestProgram builds a main package of another module for the guest, then hands the result
// back as a prebuilt binary.
func TestGuestProgram(t *testing.T) {
	cache, src := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module example.com/tiny\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin, err := GuestProgram(context.Background(), cache, src, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(bin) != filepath.Base(src) {
		t.Errorf("GuestProgram named the binary %s, want the directory's name %s", bin, filepath.Base(src))
	}
	again, err := GuestProgram(context.Background(), cache, bin, false, nil)
	if err != nil || again != bin {
		t.Errorf("GuestProgram(prebuilt %s) = %q, %v; want it unchanged", bin, again, err)
	}
	if _, err := GuestProgram(context.Background(), cache, filepath.Join(src, "missing"), false, nil); err == nil {
		t.Error("GuestProgram accepted a missing path")
	}
}

func TestPruneImages(t *testing.T) {
	dir := t.TempDir()
	base := time.Now().Add(-time.Hour)
	for i := range 5 {
		p := filepath.Join(dir, fmt.Sprintf("%d.cpio", i))
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		mt := base.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "other"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pruneImages(dir, 2)
	var got []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		got = append(got, e.Name())
	}
	want := []string{"3.cpio", "4.cpio", "other"}
	if !slices.Equal(got, want) {
		t.Errorf("after pruneImages(2): %q, want %q", got, want)
	}
}

func TestModuleRootFrom(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := moduleRootFrom(sub); err != nil || got != dir {
		t.Errorf("moduleRootFrom(%s) = %q, %v; want %q", sub, got, err, dir)
	}
}
