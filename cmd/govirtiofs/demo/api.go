package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"syscall"
	"time"

	"github.com/govirtiofs/govirtiofs"
)

func demo(tag string) int {
	fmt.Printf("govirtiofs demo: share tag %q\n", tag)
	listDevices()
	ctx := context.Background()
	start := time.Now()
	fsys, err := govirtiofs.Open(ctx, tag, govirtiofs.Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: open %q: %v\n", tag, err)
		return 1
	}
	defer fsys.Close()
	fmt.Printf("opened share %q in %v\n", tag, time.Since(start).Round(time.Microsecond))

	fmt.Println("tree:")
	if err := tree(fsys, "/", "  "); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}

	data, err := fsys.ReadFile("hello.txt")
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	fmt.Printf("hello.txt says: %s", data)

	msg := fmt.Sprintf("written by the guest at %s\n", time.Now().UTC().Format(time.RFC3339))
	if err := fsys.WriteFile(WrittenFile, []byte(msg), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	back, err := fsys.ReadFile(WrittenFile)
	if err != nil || string(back) != msg {
		fmt.Fprintf(os.Stderr, "demo: reading back %s: %q, %v\n", WrittenFile, back, err)
		return 1
	}
	fmt.Printf("wrote and read back %s (%d bytes)\n", WrittenFile, len(back))

	var devs []uint64
	for _, p := range []string{"/", "mnt"} {
		fi, err := fsys.Stat(p)
		if err != nil {
			if p == "mnt" { // a share of the user's without the example's submount
				break
			}
			fmt.Fprintln(os.Stderr, "demo:", err)
			return 1
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			fmt.Printf("st_dev of %-4s = %#x (ino %d)\n", p, st.Dev, st.Ino)
			devs = append(devs, st.Dev)
		}
	}
	if len(devs) == 2 && devs[0] != devs[1] {
		fmt.Println("mnt is a submount: its st_dev differs from the root's")
	}
	if err := fsys.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "demo: close:", err)
		return 1
	}
	return 0
}

// tree prints dir's entries recursively.
func tree(fsys *govirtiofs.FS, dir, indent string) error {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		info := ""
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			info = fmt.Sprintf(" (%d bytes)", fi.Size())
		} else if e.Type()&fs.ModeSymlink != 0 {
			if target, err := fsys.Readlink(path.Join(dir, e.Name())); err == nil {
				info = " -> " + target
			}
		}
		suffix := ""
		if e.IsDir() {
			suffix = "/"
		}
		fmt.Printf("%s%s%s%s\n", indent, e.Name(), suffix, info)
		if e.IsDir() {
			if err := tree(fsys, path.Join(dir, e.Name()), indent+"  "); err != nil {
				return err
			}
		}
	}
	return nil
}
