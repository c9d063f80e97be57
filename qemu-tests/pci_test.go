package qemutests

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The PCI tests boot the default VM: q35, 1 vCPU, 512 MiB of shared memfd RAM, one
// vhost-user-fs-pci device (1af4:105a, tag "share") served by virtiofsd on a temp directory, no
// kernel virtio module loaded. guest/pciprobe drives the device from userspace through
// virtio/pci with virtio/dmamem hugepage memory: it negotiates VERSION_1, sets up the hiprio
// queue and the first request queue, sends a hand-encoded FUSE_INIT, then times GETATTR round
// trips on the root.

// initReply matches pciprobe's summary of the FUSE_INIT reply.
var initReply = regexp.MustCompile(`FUSE_INIT OK: major (\d+) minor (\d+) max_write (\d+)`)

// checkProbe checks pciprobe's report.
func checkProbe(t *testing.T, res Result) {
	t.Helper()
	for _, want := range []string{
		`pciprobe: virtio-fs devices: ["0000:`,
		"type 1 bar 4", // common configuration
		"type 2 bar 4", // notify
		"type 4 bar 4", // device configuration
		`tag "share"`,
		"GETATTR OK:",
		"PCIPROBE OK",
	} {
		if !strings.Contains(res.Output, want) {
			t.Errorf("guest output lacks %q", want)
		}
	}
	m := initReply.FindStringSubmatch(res.Output)
	if m == nil {
		t.Fatalf("no FUSE_INIT summary in the guest output:\n%s", res.Output)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	maxWrite, _ := strconv.Atoi(m[3])
	if major != 7 || minor < 31 {
		t.Errorf("FUSE_INIT reply protocol %d.%d, want 7.31 or later", major, minor)
	}
	if maxWrite < 4096 {
		t.Errorf("FUSE_INIT reply max_write %d, want at least 4096", maxWrite)
	}
}

// TestPCIProbe runs pciprobe with hugepages reserved on the kernel command line.
func TestPCIProbe(t *testing.T) {
	res := RunGuest(t, GuestSpec{Pkg: "./qemu-tests/guest/pciprobe"})
	checkProbe(t, res)
}

// TestPCIProbeReservesHugepages boots without hugepages= so that virtio/dmamem has to grow the
// pool itself through sysfs.
func TestPCIProbeReservesHugepages(t *testing.T) {
	res := RunGuest(t, GuestSpec{Pkg: "./qemu-tests/guest/pciprobe", Hugepages: -1})
	checkProbe(t, res)
	if !strings.Contains(res.Output, "dma page 1: 2097152 bytes") {
		t.Errorf("guest output lacks the second DMA page")
	}
}
