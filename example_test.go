package govirtiofs_test

import (
	"context"
	"fmt"
	"io/fs"
	"log"
	"time"

	"github.com/govirtiofs/govirtiofs"
)

// Example connects to a virtiofsd on the host, started as
//
//	/usr/lib/qemu/virtiofsd --socket-path=/tmp/vfsd.sock -o source=/srv/share
//
// and uses the share as package os would. In a guest, govirtiofs.Open(ctx,
// "myfs", opts) finds the device by its tag instead.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fsys, err := govirtiofs.Dial(ctx, "/tmp/vfsd.sock", govirtiofs.Options{Cache: govirtiofs.CacheAuto})
	if err != nil {
		log.Fatal(err)
	}
	defer fsys.Close()

	if err := fsys.MkdirAll("notes/2024", 0o755); err != nil {
		log.Fatal(err)
	}
	if err := fsys.WriteFile("notes/2024/hello.txt", []byte("hello, virtio-fs\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	data, err := fsys.ReadFile("notes/2024/hello.txt")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", data)

	// The io/fs view works with fs.WalkDir, fs.Glob, template.ParseFS...
	fs.WalkDir(fsys.IOFS(), "notes", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fmt.Println(path, d.IsDir())
		return nil
	})
}
