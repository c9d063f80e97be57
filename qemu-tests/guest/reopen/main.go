//go:build linux

// Command reopen is the guest half of TestReopen: it brings the same
// virtio-fs device up and down -n times in one VM (govirtiofs.Open with the
// tag from $GOVIRTIOFS_TAG, then Close, which drains the queues and resets
// the device), and between bring-ups stats, writes and reads a file, so
// that each Close has FORGETs and DESTROY in flight just before its reset.
// It prints "reopen: OK" and exits 0 only if every round worked.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/govirtiofs/govirtiofs"
)

func main() {
	n := flag.Int("n", 10, "bring-ups of the device")
	tag := flag.String("tag", os.Getenv("GOVIRTIOFS_TAG"), "virtio-fs tag")
	flag.Parse()
	if err := run(*tag, *n); err != nil {
		fmt.Fprintf(os.Stderr, "reopen: FAIL: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("reopen: OK")
}

func run(tag string, n int) error {
	for i := range n {
		start := time.Now()
		if err := round(tag, i); err != nil {
			return fmt.Errorf("round %d: %w", i, err)
		}
		fmt.Printf("reopen: round %d done in %v\n", i, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// round opens the share, checks the file the previous round wrote, writes
// this round's, stats it and closes the share.
func round(tag string, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fsys, err := govirtiofs.Open(ctx, tag, govirtiofs.Options{Cache: govirtiofs.CacheNone})
	if err != nil {
		return fmt.Errorf("Open: %w", err)
	}
	if i > 0 {
		want := fmt.Sprintf("round %d\n", i-1)
		got, err := fsys.ReadFile("reopen.txt")
		if err != nil {
			fsys.Close()
			return err
		}
		if string(got) != want {
			fsys.Close()
			return fmt.Errorf("reopen.txt holds %q, want %q", got, want)
		}
	}
	data := fmt.Sprintf("round %d\n", i)
	if err := fsys.WriteFile("reopen.txt", []byte(data), 0o644); err != nil {
		fsys.Close()
		return err
	}
	fi, err := fsys.Stat("reopen.txt")
	if err != nil {
		fsys.Close()
		return err
	}
	if fi.Size() != int64(len(data)) {
		fsys.Close()
		return fmt.Errorf("reopen.txt: size %d, want %d", fi.Size(), len(data))
	}
	if _, err := fsys.Stat("."); err != nil {
		fsys.Close()
		return err
	}
	if err := fsys.Close(); err != nil {
		return fmt.Errorf("Close: %w", err)
	}
	return nil
}
