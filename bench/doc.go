// Package bench measures govirtiofs against the kernel's own clients of the same host directory:
// the guest kernel's virtiofs and virtio-9p (cache=none, loose, mmap), and on the host the same
// stack over vhost-user and package os.
//
// It has three parts:
//
//   - Workloads ([Workloads]) written once against the small [FS] interface, which package os
//     ([OS]) and *govirtiofs.FS ([Govirtiofs]) both satisfy through adapters. [Prepare] lays out
//     the files they use in a host directory; [Sizes] scales them ([DefaultSizes], [QuickSizes]).
//   - A runner ([Run]) that runs every workload against every [Client] in rotation and emits one
//     [Record] per measurement. Each round of each workload reads a file set of its own
//     ([SetDir]), so that every cold measurement meets files its client has never seen; what
//     else cold means differs per client and is said at each constructor.
//   - The host harness ([Harness]) behind "govirtiofs bench": it prepares the directory, runs the
//     host clients, then per round boots one VM per client group ([VMPhases]), each with both a
//     vhost-user-fs-pci and a virtio-9p-pci device on that directory, collects the guest
//     program's records (qemu-tests/guest/bench) from the console, and writes results.md,
//     results.json and results.svg ([WriteReport]). One VM per group, rather than one for all,
//     because the userspace driver and virtio_pci cannot share a device and virtiofsd does not
//     survive repeated resets of one device ([GovirtiofsSession]).
//
// Figures are medians over rounds. MB is 10^6 bytes.
//
// Lock order: none; the runner is sequential except inside the mixed workload, whose goroutines
// share nothing but an atomic counter.
package bench
