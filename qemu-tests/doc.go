// Package qemutests boots guest Go programs in QEMU (TCG) and checks what they report.
//
// The VM that every test here gets, unless its [GuestSpec] says otherwise:
//
//   - machine q35 (or microvm with Machine: "microvm"), 1 vCPU, 512 MiB of shared memfd RAM,
//     64 hugepages of 2 MiB reserved on the kernel command line, no network, no disk;
//   - one vhost-user-fs device (PCI 1af4:105a on q35, virtio-mmio on microvm) with tag "share",
//     served by its own /usr/lib/qemu/virtiofsd on GuestSpec.Share (a fresh t.TempDir() if empty)
//     with -o cache=GuestSpec.Cache (default auto), plus -o announce_submounts and -o xattr if
//     asked, and GuestSpec.VirtiofsdArgs appended verbatim, e.g. []string{"-o", "flock"} or
//     []string{"-o", "posix_lock"} for lock tests (QEMU's C virtiofsd takes -o options);
//   - optionally a virtio-9p device with tag "p9" on GuestSpec.NineP;
//   - Debian's amd64 kernel with no module loaded (nothing claims the devices, the userspace
//     driver does), unless LoadModules: then the baseline modules are loaded in order;
//   - a u-root initramfs whose uinit wrapper runs the guest program as /prog/<name> with
//     GOVIRTIOFS_TAG set to the share's tag and stdout and stderr on the serial console, prints its
//     exit status, waits for the console to drain (no output is lost, however much there is; the
//     serial port carries about 200 kB/s under TCG) and powers off;
//   - on microvm, tsc_early_khz=<host TSC> and tsc=reliable on the kernel command line, so the
//     clocksource stays tsc (the wrapper prints it after the exit status, in Result.Console).
//
// Writing a guest suite: put the guest body in a package under qemu-tests/guest/ (a main package,
// or an ordinary package with tests built by "go test -c" via Test: true), and a host test in this
// package that calls [RunGuest]:
//
//	func TestVFS(t *testing.T) {
//		dir := t.TempDir() // fill it
//		res := qemutests.RunGuest(t, qemutests.GuestSpec{
//			Pkg:   "./qemu-tests/guest/vfs", // relative to the module root
//			Test:  true,                     // go test -c; -test.v is added
//			Args:  []string{"-test.run=TestWalk"},
//			Share: dir,
//			Cache: "auto",
//		})
//		// RunGuest has already failed t unless the guest exited 0.
//		if !strings.Contains(res.Output, "--- PASS: TestWalk") { t.Error(...) }
//	}
//
// The first run fetches the kernel (apt-get, seconds) and builds the u-root base (about a
// minute); both are cached under .cache/ at the module root ($GOVIRTIOFS_CACHE overrides), as are
// images. On failure the full console log is written to .cache/logs/ and logged with t.Log.
//
// These tests need qemu-system-x86_64 and /usr/lib/qemu/virtiofsd; without them they fail.
package qemutests
