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
//     host clients, then boots one VM for all rounds, with a vhost-user-fs-pci device per
//     govirtiofs cache mode ([GovirtiofsTags]), one for priming ([PrimeTag], [RunConfig].Prime),
//     one for the kernel's virtiofs ([KernelVirtiofsTag]) and a virtio-9p-pci device, all on that directory, every virtiofsd
//     with the same options ([HarnessConfig].VirtiofsdArgs). It collects the guest program's
//     records (qemu-tests/guest/bench) from the console, and writes results.md, results.json and
//     results.svg ([WriteReport]). The guest keeps the govirtiofs devices away from virtio_pci
//     (driver_override) and opens each FS once for the whole run ([GovirtiofsShared]).
//
// Figures are medians over rounds. MB is 10^6 bytes.
//
// Lock order: none; the runner is sequential except inside the mixed workload, whose goroutines
// share nothing but an atomic counter.
package bench
