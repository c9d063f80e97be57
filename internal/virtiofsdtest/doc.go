// Package virtiofsdtest starts the real virtiofsd (the C daemon shipped with
// QEMU, /usr/lib/qemu/virtiofsd) for integration tests, in the pattern of
// net/http/httptest: Start returns a running Daemon whose Socket a vhost-user
// front end (virtio/vhostuser) or a QEMU chardev can connect to, and the
// test's Cleanup stops it.
//
// virtiofsd serves exactly one front end and exits when it disconnects, so a
// test starts one Daemon per connection. It must run as root. If virtiofsd
// is missing or the test is not root, Start fails the test (never skips):
// ./test.sh installs what is missing.
//
// Process layout (virtiofsd 7.2 with the default sandbox=namespace): the
// started process waits for the vhost-user connection, then forks a child in
// new namespaces that serves the device while the parent waits for it. PID
// is the started process; FDCount looks at the serving child when it exists.
// The Daemon runs in its own process group so that Kill reaches both.
//
// The process itself is started and stopped by boot.StartVirtiofsd, the one
// virtiofsd launcher that the VM harness (package boot) and the benchmark
// (package bench) use too.
//
// Lock order: none; the Daemon has no locks of its own.
package virtiofsdtest
