package suite

import (
	"encoding/json"
	"os"
	"slices"
	"syscall"
	"testing"
)

// TestRecordReference checks what a guest relies on: every case records something, two
// recordings in different directories are identical (nothing depends on the directory, the time
// or the order of a listing), and the reference survives its JSON trip.
func TestRecordReference(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("recording the reference needs root (the cases chown)")
	}
	a, err := RecordReference(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := RecordReference(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range CaseNames() {
		if len(a.Cases[name]) == 0 {
			t.Errorf("case %s recorded nothing", name)
		}
		if !slices.Equal(a.Cases[name], b.Cases[name]) {
			t.Errorf("case %s recorded differently in two directories:\n%q\n%q", name, a.Cases[name], b.Cases[name])
		}
	}
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var c Reference
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	if c.Umask != a.Umask || len(c.Cases) != len(a.Cases) {
		t.Fatalf("after JSON: umask %#o, %d cases; want %#o, %d", c.Umask, len(c.Cases), a.Umask, len(a.Cases))
	}
	for name, lines := range a.Cases {
		if !slices.Equal(c.Cases[name], lines) {
			t.Errorf("case %s changed in JSON", name)
		}
	}
}

// TestProcessUmask sets the umask and reads it back. No test here runs in parallel, so the
// moment with another umask harms nothing.
func TestProcessUmask(t *testing.T) {
	old := syscall.Umask(0o027)
	defer syscall.Umask(old)
	got, err := ProcessUmask()
	if err != nil {
		t.Fatal(err)
	}
	if got != 0o027 {
		t.Errorf("ProcessUmask() = %#o, want 0o027", got)
	}
}
