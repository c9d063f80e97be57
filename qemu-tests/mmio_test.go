package qemutests

import (
	"regexp"
	"strings"
	"testing"
)

// TestMMIOProbe boots a microvm (no PCI; ACPI on, so the transport is known
// only from /proc/iomem as LNRO0005:NN) with one vhost-user-fs-device on a
// modern virtio-mmio transport, tag "share", served by virtiofsd on a temp
// dir. The guest, guest/mmioprobe, finds the window, checks magic, version
// and device ID, negotiates VERSION_1, reads the tag, enables the hiprio
// and request queues in hugepage DMA memory, sends FUSE_INIT and times
// GETATTR round trips on the root, all from userspace; it exits 0 only if
// the replies are sane.
func TestMMIOProbe(t *testing.T) {
	res := RunGuest(t, GuestSpec{Pkg: "./qemu-tests/guest/mmioprobe", Machine: "microvm"})
	for _, want := range []string{
		"MMIOPROBE: discovery=iomem",
		"MMIOPROBE: registers_at_open=magic=0x74726976 version=2 deviceid=26 ",
		"MMIOPROBE: tag=share",
		"MMIOPROBE: queue1_num_max=1024",
		"MMIOPROBE: init=major=7 minor=36 ",
		"MMIOPROBE PASS",
	} {
		if !strings.Contains(res.Output, want) {
			t.Errorf("guest output lacks %q", want)
		}
	}
	// QEMU implements the shared memory registers and has no region: all ones.
	if !regexp.MustCompile(`registers_at_end=.* status=0xf .*shm0len=0xffffffffffffffff`).MatchString(res.Output) {
		t.Errorf("guest output lacks the final registers (status DRIVER_OK|FEATURES_OK|DRIVER|ACK, no shared memory)")
	}
	if t.Failed() {
		KeepLog(t, res)
		t.Logf("output:\n%s", res.Output)
	}
}
