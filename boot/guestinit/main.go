//go:build linux && amd64

// Command guestinit is the uinit of govirtiofs guest images: u-root's init runs it once the root
// file system is up. It reads /etc/govirtiofs/init.json, loads the listed kernel modules, prints
// the start sentinel, runs the guest program with the configured arguments and environment, prints
// "GOVIRTIOFS-EXIT <code>" and powers the machine off, so that QEMU (-no-reboot) exits and the host
// learns the program's exit status from the console.
//
// It uses only the standard library: package boot embeds this file and builds it in a scratch
// module, so any module can build images.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
	"unsafe"
)

// config mirrors boot.guestConfig.
type config struct {
	Path    string   `json:"path"`
	Args    []string `json:"args"`
	Env     []string `json:"env"`
	Dir     string   `json:"dir"`
	Modules []string `json:"modules"`
}

const configPath = "/etc/govirtiofs/init.json"

func main() {
	code := run()
	// The leading newline ends a last line that the program left open.
	fmt.Printf("\nGOVIRTIOFS-EXIT %d\n", code)
	os.Stdout.Sync()
	syscall.Sync()
	if err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Fprintf(os.Stderr, "guestinit: power off: %v\n", err)
	}
	// Power-off does not return on success; never hand control back to init's shell.
	for {
		time.Sleep(time.Hour)
	}
}

func run() int {
	data, err := os.ReadFile(configPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "guestinit: %v\n", err)
		return 125
	}
	var cfg config
	if err := json.Unmarshal(data, &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "guestinit: %s: %v\n", configPath, err)
		return 125
	}
	for _, m := range cfg.Modules {
		if err := loadModule(m); err != nil {
			fmt.Fprintf(os.Stderr, "guestinit: loading module %s: %v\n", m, err)
			return 125
		}
	}
	fmt.Println("GOVIRTIOFS-START")
	cmd := exec.Command(cfg.Path, cfg.Args...)
	cmd.Env = append(os.Environ(), cfg.Env...)
	cmd.Dir = cfg.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			fmt.Fprintf(os.Stderr, "guestinit: %s: %v\n", cfg.Path, err)
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	default:
		fmt.Fprintf(os.Stderr, "guestinit: %v\n", err)
		return 127
	}
}

// loadModule loads an uncompressed .ko file with finit_module(2); an already loaded module is fine.
func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	// The standard library's syscall package has no SYS_FINIT_MODULE; the image is amd64 only.
	const sysFinitModule = 313
	params := []byte{0}
	_, _, errno := syscall.Syscall(sysFinitModule, f.Fd(), uintptr(unsafe.Pointer(&params[0])), 0)
	if errno != 0 && errno != syscall.EEXIST {
		return errno
	}
	return nil
}
