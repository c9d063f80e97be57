// Command mmioprobe is the guest half of qemu-tests/mmio_test.go. Inside a
// QEMU microvm guest it finds the virtio-fs device behind virtio-mmio,
// drives it from userspace with hugepage DMA memory and sends a hand-encoded
// FUSE_INIT to the vhost-user back end (virtiofsd), then times a few
// GETATTR round trips on the root. It prints "MMIOPROBE: key=value" lines
// for the host test to check and ends with "MMIOPROBE PASS" or
// "MMIOPROBE FAIL: reason"; the exit status is 0 only on PASS.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govirtiofs/govirtiofs/virtio"
	"github.com/govirtiofs/govirtiofs/virtio/dmamem"
	"github.com/govirtiofs/govirtiofs/virtio/mmio"
)

var (
	wantTag  = flag.String("tag", os.Getenv("GOVIRTIOFS_TAG"), "the virtio-fs tag the device must report (empty: any); default $GOVIRTIOFS_TAG")
	poweroff = flag.Bool("poweroff", false, "power the machine off when done")
	rounds   = flag.Int("getattr", 200, "GETATTR round trips to time")
)

func main() {
	flag.Parse()
	err := run()
	if err != nil {
		fmt.Printf("MMIOPROBE FAIL: %v\n", err)
	} else {
		fmt.Println("MMIOPROBE PASS")
	}
	if *poweroff {
		unix.Sync()
		unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}
	if err != nil {
		os.Exit(1)
	}
}

func report(key string, format string, args ...any) {
	fmt.Printf("MMIOPROBE: %s=%s\n", key, fmt.Sprintf(format, args...))
}

// FUSE wire constants (include/uapi/linux/fuse.h, 7.36).
const (
	opGetattr       = 3
	opInit          = 26
	fuseInHeaderLen = 40
	fuseInitInLen   = 64 // major, minor, max_readahead, flags, flags2, unused[11]
	fuseOutHeader   = 16
	fuseInitOutLen  = 64
	fuseAttrOutLen  = 104
	flagMaxPages    = 1 << 22 // FUSE_MAX_PAGES
	queueSize       = 64
)

func run() error {
	// Discovery: say which source found the windows.
	iomem, err := os.ReadFile("/proc/iomem")
	if err != nil {
		return err
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	fromIomem := mmio.ParseIomem(iomem)
	fromCmdline, err := mmio.ParseCmdline(string(cmdline))
	if err != nil {
		return fmt.Errorf("cmdline: %w", err)
	}
	report("cmdline", "%s", bytes.TrimSpace(cmdline))
	report("iomem_windows", "%d", len(fromIomem))
	report("cmdline_windows", "%d", len(fromCmdline))
	devs, err := mmio.Find()
	if err != nil {
		return err
	}
	if len(devs) == 0 {
		return errors.New("no virtio-mmio windows in /proc/iomem or /proc/cmdline")
	}

	mem, err := dmamem.New(2)
	if err != nil {
		return err
	}
	defer mem.Close()

	var tr *mmio.Transport
	for _, d := range devs {
		t, err := mmio.Open(d.Base, d.Size, mem)
		if errors.Is(err, mmio.ErrNoDevice) {
			continue
		}
		if err != nil {
			return fmt.Errorf("window %#x: %w", d.Base, err)
		}
		report("device", "id=%d base=%#x size=%d irq=%d name=%s source=%s", t.DeviceID(), d.Base, d.Size, d.IRQ, d.Name, d.Source)
		if t.DeviceID() == mmio.DeviceIDFS && tr == nil {
			tr = t
			report("discovery", "%s", d.Source)
		}
		// Other devices are left as they are (not Closed: that resets).
	}
	if tr == nil {
		return fmt.Errorf("no virtio-fs device among %d windows", len(devs))
	}
	defer tr.Close()

	before, err := tr.Snapshot()
	if err != nil {
		return err
	}
	report("registers_at_open", "%v", before)

	// Initialisation, virtio spec 1.2 section 3.1.1.
	status := uint8(0)
	step := func(bit uint8) error {
		status |= bit
		return tr.SetStatus(status)
	}
	if err := tr.SetStatus(0); err != nil {
		return err
	}
	if err := step(virtio.StatusAcknowledge); err != nil {
		return err
	}
	if err := step(virtio.StatusDriver); err != nil {
		return err
	}
	offered, err := tr.DeviceFeatures()
	if err != nil {
		return err
	}
	report("device_features", "%#x", offered)
	if offered&virtio.FeatureVersion1 == 0 {
		return fmt.Errorf("device does not offer VERSION_1 (features %#x)", offered)
	}
	features := uint64(virtio.FeatureVersion1)
	if err := tr.SetDriverFeatures(features); err != nil {
		return err
	}
	if err := step(virtio.StatusFeaturesOK); err != nil {
		return err
	}
	if s, err := tr.Status(); err != nil || s&virtio.StatusFeaturesOK == 0 {
		return fmt.Errorf("device refused the features: status %#x, %v", s, err)
	}

	// Configuration: tag[36], num_request_queues le32 (section 5.11.4).
	tagBytes := make([]byte, 36)
	if err := tr.ReadConfig(0, tagBytes); err != nil {
		return err
	}
	tag, _, _ := bytes.Cut(tagBytes, []byte{0})
	nreq := make([]byte, 4)
	if err := tr.ReadConfig(36, nreq); err != nil {
		return err
	}
	report("tag", "%s", tag)
	report("num_request_queues", "%d", binary.LittleEndian.Uint32(nreq))
	if *wantTag != "" && string(tag) != *wantTag {
		return fmt.Errorf("tag %q, want %q", tag, *wantTag)
	}
	report("num_queues", "%d", tr.NumQueues())
	if tr.NumQueues() < 2 {
		return fmt.Errorf("device has %d queues, want hiprio and one request queue", tr.NumQueues())
	}

	var queues [2]*virtio.Queue
	for i := range queues {
		max, err := tr.MaxQueueSize(i)
		if err != nil {
			return err
		}
		report(fmt.Sprintf("queue%d_num_max", i), "%d", max)
		q, err := virtio.NewQueue(mem, i, min(queueSize, max), features)
		if err != nil {
			return err
		}
		defer q.Close()
		if err := tr.EnableQueue(i, q.Addrs()); err != nil {
			return err
		}
		queues[i] = q
	}
	if err := step(virtio.StatusDriverOK); err != nil {
		return err
	}
	if s, err := tr.Status(); err != nil || s&virtio.StatusNeedsReset != 0 || s&virtio.StatusDriverOK == 0 {
		return fmt.Errorf("status %#x after DRIVER_OK, %v", s, err)
	}
	region, addr, ok := tr.SharedMemory(0)
	report("shm0", "ok=%v len=%d addr=%#x", ok, len(region), addr)

	req := queues[1]
	in, err := mem.Alloc(4096, 8)
	if err != nil {
		return err
	}
	out, err := mem.Alloc(4096, 8)
	if err != nil {
		return err
	}

	// FUSE_INIT (unique 1).
	n := putHeader(in.Bytes, fuseInHeaderLen+fuseInitInLen, opInit, 1, 0)
	init := in.Bytes[n : n+fuseInitInLen]
	clear(init)
	binary.LittleEndian.PutUint32(init[0:], 7)       // major
	binary.LittleEndian.PutUint32(init[4:], 36)      // minor
	binary.LittleEndian.PutUint32(init[8:], 128<<10) // max_readahead
	binary.LittleEndian.PutUint32(init[12:], flagMaxPages)
	start := time.Now()
	got, err := roundTrip(tr, req, prefix(in, fuseInHeaderLen+fuseInitInLen), prefix(out, fuseOutHeader+fuseInitOutLen))
	if err != nil {
		return fmt.Errorf("FUSE_INIT: %w", err)
	}
	report("init_round_trip", "%v", time.Since(start))
	reply := out.Bytes[:got]
	if err := checkOut(reply, 1, fuseOutHeader+24); err != nil {
		return fmt.Errorf("FUSE_INIT: %w", err)
	}
	body := reply[fuseOutHeader:]
	major := binary.LittleEndian.Uint32(body[0:])
	minor := binary.LittleEndian.Uint32(body[4:])
	maxWrite := binary.LittleEndian.Uint32(body[20:]) // after max_background, congestion_threshold
	var maxPages uint16
	if len(body) >= 30 {
		maxPages = binary.LittleEndian.Uint16(body[28:])
	}
	report("init", "major=%d minor=%d max_write=%d max_pages=%d flags=%#x reply_len=%d", major, minor, maxWrite, maxPages, binary.LittleEndian.Uint32(body[12:]), got)
	if major != 7 || minor < 31 || maxWrite < 4096 || maxWrite > 16<<20 {
		return fmt.Errorf("FUSE_INIT reply not sane: %d.%d max_write %d", major, minor, maxWrite)
	}

	// GETATTR of the root (nodeid 1), timed.
	if cs, err := os.ReadFile("/sys/devices/system/clocksource/clocksource0/current_clocksource"); err == nil {
		report("clocksource", "%s", bytes.TrimSpace(cs))
	}
	var times []time.Duration
	loop := time.Now()
	for i := range *rounds {
		unique := uint64(2 + i)
		n := putHeader(in.Bytes, fuseInHeaderLen+16, opGetattr, unique, 1)
		clear(in.Bytes[n : n+16])
		start := time.Now()
		got, err := roundTrip(tr, req, prefix(in, fuseInHeaderLen+16), prefix(out, fuseOutHeader+fuseAttrOutLen))
		if err != nil {
			return fmt.Errorf("GETATTR %d: %w", i, err)
		}
		times = append(times, time.Since(start))
		if err := checkOut(out.Bytes[:got], unique, fuseOutHeader+fuseAttrOutLen); err != nil {
			return fmt.Errorf("GETATTR %d: %w", i, err)
		}
		if mode := binary.LittleEndian.Uint32(out.Bytes[fuseOutHeader+16+60:]); mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("GETATTR of the root: mode %#o is not a directory", mode)
		}
	}
	if len(times) > 0 {
		slices.Sort(times)
		report("getattr", "rounds=%d mean=%v p50=%v p90=%v max=%v", len(times), time.Since(loop)/time.Duration(len(times)), times[len(times)/2], times[len(times)*9/10], times[len(times)-1])
	}

	after, err := tr.Snapshot()
	if err != nil {
		return err
	}
	report("registers_at_end", "%v", after)
	return nil
}

// putHeader writes a fuse_in_header (len, opcode, unique, nodeid, uid, gid,
// pid, padding) and returns its length.
func putHeader(b []byte, length, opcode uint32, unique, nodeid uint64) int {
	clear(b[:fuseInHeaderLen])
	binary.LittleEndian.PutUint32(b[0:], length)
	binary.LittleEndian.PutUint32(b[4:], opcode)
	binary.LittleEndian.PutUint64(b[8:], unique)
	binary.LittleEndian.PutUint64(b[16:], nodeid)
	return fuseInHeaderLen
}

// checkOut checks a reply's fuse_out_header (len, error, unique).
func checkOut(b []byte, unique uint64, minLen int) error {
	if len(b) < fuseOutHeader {
		return fmt.Errorf("reply of %d bytes is shorter than fuse_out_header", len(b))
	}
	length := binary.LittleEndian.Uint32(b[0:])
	errno := int32(binary.LittleEndian.Uint32(b[4:]))
	u := binary.LittleEndian.Uint64(b[8:])
	switch {
	case errno != 0:
		return fmt.Errorf("server error %d (%v)", errno, unix.Errno(-errno))
	case u != unique:
		return fmt.Errorf("reply unique %d, want %d", u, unique)
	case int(length) != len(b) || len(b) < minLen:
		return fmt.Errorf("reply len field %d, used length %d, want at least %d", length, len(b), minLen)
	}
	return nil
}

// roundTrip puts one request on q, notifies and polls the used ring.
func roundTrip(tr *mmio.Transport, q *virtio.Queue, in, out virtio.Buffer) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	notify, err := q.Add(ctx, []virtio.Buffer{in}, []virtio.Buffer{out}, "req")
	if err != nil {
		return 0, err
	}
	if notify {
		if err := tr.Notify(q.Index()); err != nil {
			return 0, err
		}
	}
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { close(done) })
	defer stop()
	go func() {
		select {
		case <-tr.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	if !virtio.Poll(done, nil, q.HasUsed) {
		return 0, fmt.Errorf("no reply within 30s (or device gone): %w", ctx.Err())
	}
	u, ok, err := q.Pop()
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, errors.New("used ring had no entry")
	}
	return u.Len, nil
}

// prefix is the first n bytes of a DMA buffer, at the same device address.
func prefix(b virtio.Buffer, n int) virtio.Buffer {
	return virtio.Buffer{Bytes: b.Bytes[:n], Addr: b.Addr}
}
