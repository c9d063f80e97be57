// Package boot builds and boots the guest VM that govirtiofs runs in: a Debian kernel, a u-root
// initramfs carrying one guest Go program, and QEMU (TCG) with one virtiofsd per shared directory.
//
// It has three parts, each usable alone:
//
//   - [Kernel] fetches Debian's amd64 kernel package with apt-get, unpacks it, and keeps vmlinuz
//     plus the modules the kernel baselines need ([BaselineModules]), cached by package version.
//   - [BuildImage] builds an initramfs: a cached u-root base (core commands, gosh, u-root init)
//     concatenated with a small overlay that holds the guest program, a wrapper run as uinit
//     (package guestinit), its configuration, extra commands and files, and the kernel modules under
//     /modules (not /lib/modules, which u-root's init would load). The wrapper prints
//     [StartSentinel], runs the program with GOVIRTIOFS_TAG in its environment and its stdout and
//     stderr on /dev/console, prints "GOVIRTIOFS-EXIT <code>" ([ExitSentinel]) and the kernel's
//     clocksource ("guestinit: clocksource tsc"), waits until the serial port has sent everything
//     (tcdrain) and powers the VM off.
//   - [Start] runs virtiofsd per share and QEMU, streams the console, parses the exit sentinel and
//     tears everything down on every exit path ([VM.Wait], context cancellation, timeout).
//
// Caching: everything lives below [CacheDir] (.cache/ at the module root, or $GOVIRTIOFS_CACHE).
// The kernel is keyed by Debian package version, the u-root base by a hash of its pinned module
// files and command list, guest programs by the Go build cache (go build is rerun, cheaply), and
// the final image by a hash of all its parts.
//
// Lock order: VM.mu is a leaf (it guards the results the console reader fills in).
package boot
