//go:build linux && amd64

// Command guestinit is the uinit of govirtiofs guest images: u-root's init runs it once the root
// file system is up. It reads /etc/govirtiofs/init.json, loads the listed kernel modules, prints
// the start sentinel, runs the guest program with the configured arguments and environment, prints
// "GOVIRTIOFS-EXIT <code>" and powers the machine off, so that QEMU (-no-reboot) exits and the host
// learns the program's exit status from the console.
//
// The program writes straight to /dev/console (stdout and stderr), not to the pipe that u-root's
// init gives its uinit: init copies that pipe to the serial port itself, and whatever it had not
// copied when the machine powered off was lost, sentinel included. Before powering off the wrapper
// waits until the serial port has sent everything (tcdrain), so QEMU has the whole output.
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
	"strings"
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

// consolePath is the kernel's console (console=ttyS0): a tty whose output tcdrain can wait for.
const consolePath = "/dev/console"

// clocksourcePath names the kernel's current clocksource, reported after the exit sentinel.
const clocksourcePath = "/sys/devices/system/clocksource/clocksource0/current_clocksource"

func main() {
	con := openConsole()
	code := run(con)
	// The leading newline ends a last line that the program left open.
	fmt.Fprintf(con, "\nGOVIRTIOFS-EXIT %d\n", code)
	// After the sentinel the host no longer counts lines as the program's output.
	if cs, err := os.ReadFile(clocksourcePath); err == nil {
		fmt.Fprintf(con, "guestinit: clocksource %s\n", strings.TrimSpace(string(cs)))
	}
	if err := drain(con); err != nil {
		fmt.Fprintf(con, "guestinit: waiting for the console to drain: %v\n", err)
	}
	syscall.Sync()
	if err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Fprintf(con, "guestinit: power off: %v\n", err)
	}
	// Power-off does not return on success; never hand control back to init's shell.
	for {
		time.Sleep(time.Hour)
	}
}

// openConsole opens the console for writing, in blocking mode (programs that are not written in Go
// do not expect O_NONBLOCK on their stdout). Failing that it falls back to stdout, whose tail may be
// lost at power-off.
func openConsole() *os.File {
	fd, err := syscall.Open(consolePath, syscall.O_WRONLY|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "guestinit: opening %s: %v; output may be cut short at power-off\n", consolePath, err)
		return os.Stdout
	}
	return os.NewFile(uintptr(fd), consolePath)
}

// drain waits until the tty behind f has transmitted all its output: tcdrain(3), which is
// ioctl(TCSBRK) with a non-zero argument.
func drain(f *os.File) error {
	// The standard library's syscall package has no TCSBRK; the image is amd64 only.
	const tcsbrk = 0x5409
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, tcsbrk, 1)
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// run runs the program with its stdout and stderr on con and returns its exit status.
func run(con *os.File) int {
	data, err := os.ReadFile(configPath)
	if err != nil {
		fmt.Fprintf(con, "guestinit: %v\n", err)
		return 125
	}
	var cfg config
	if err := json.Unmarshal(data, &cfg); err != nil {
		fmt.Fprintf(con, "guestinit: %s: %v\n", configPath, err)
		return 125
	}
	for _, m := range cfg.Modules {
		if err := loadModule(m); err != nil {
			fmt.Fprintf(con, "guestinit: loading module %s: %v\n", m, err)
			return 125
		}
	}
	fmt.Fprintln(con, "GOVIRTIOFS-START")
	cmd := exec.Command(cfg.Path, cfg.Args...)
	cmd.Env = append(os.Environ(), cfg.Env...)
	cmd.Dir = cfg.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, con, con
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			fmt.Fprintf(con, "guestinit: %s: %v\n", cfg.Path, err)
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	default:
		fmt.Fprintf(con, "guestinit: %v\n", err)
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
