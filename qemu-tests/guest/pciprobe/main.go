// Command pciprobe is a guest program for the PCI transport test: it finds
// the virtio-fs PCI device, drives it from userspace with hugepage DMA
// memory, sends one hand-encoded FUSE_INIT on the first request queue and
// checks the reply. It prints what it sees (DMA pages, capabilities, BARs,
// features, tag, queue sizes, the init reply) and exits 0 only if the reply
// is sane, printing "PCIPROBE OK" last.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/govirtiofs/govirtiofs/virtio"
	"github.com/govirtiofs/govirtiofs/virtio/dmamem"
	"github.com/govirtiofs/govirtiofs/virtio/pci"
)

// FUSE wire constants (include/uapi/linux/fuse.h, 7.36).
const (
	fuseInit         = 26
	fuseInHeaderLen  = 40
	fuseInitInLen    = 64 // major, minor, max_readahead, flags, flags2, unused[11]
	fuseOutHeaderLen = 16
	fuseInitOutLen   = 64
	fuseKernelMajor  = 7
	fuseKernelMinor  = 36
	fuseInitExt      = 1 << 30 // FUSE_INIT_EXT: flags2 is valid
	fuseMaxPages     = 1 << 22
	fuseAsyncRead    = 1 << 0
	fuseBigWrites    = 1 << 5
	virtioFSTagLen   = 36
	queueHiprio      = 0
	queueRequest     = 1
	initUnique       = 0x1234
	wantMinorAtLeast = 31 // virtiofsd refuses older
	minSaneMaxWrite  = 4096
	replyTimeout     = 30 * time.Second
	defaultQueueSize = 128
	dmaPages         = 2
	logPrefix        = "pciprobe: "
)

func main() {
	tag := flag.String("tag", os.Getenv("GOVIRTIOFS_TAG"), "expected virtio-fs tag (empty: any; default $GOVIRTIOFS_TAG)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix(logPrefix)
	if err := run(*tag); err != nil {
		log.Printf("FAIL: %v", err)
		fmt.Println("PCIPROBE FAIL")
		os.Exit(1)
	}
	fmt.Println("PCIPROBE OK")
}

func run(wantTag string) error {
	mem, err := dmamem.New(dmaPages)
	if err != nil {
		return err
	}
	defer mem.Close()
	for i, p := range mem.Pages() {
		log.Printf("dma page %d: %d bytes, guest-physical %#x", i, len(p.Bytes), p.Addr)
	}

	addrs, err := pci.Find(pci.DeviceFS)
	if err != nil {
		return err
	}
	log.Printf("virtio-fs devices: %q", addrs)
	if len(addrs) == 0 {
		return errors.New("no virtio-fs PCI device")
	}
	t, err := pci.Open(addrs[0], mem)
	if err != nil {
		return err
	}
	defer t.Close()
	for i, b := range t.BARs() {
		if b.Size() != 0 {
			log.Printf("BAR%d: %#x-%#x (%#x bytes) flags %#x", i, b.Start, b.End, b.Size(), b.Flags)
		}
	}
	caps := t.Capabilities()
	for _, r := range caps.All {
		log.Printf("capability: %v", r)
	}
	log.Printf("notify_off_multiplier %d, shared memory regions %d", caps.NotifyOffMultiplier, len(caps.SharedMemory))
	if _, _, ok := t.SharedMemory(0); ok {
		log.Printf("DAX window present")
	} else {
		log.Printf("no DAX window (shmid 0)")
	}

	features, err := negotiate(t)
	if err != nil {
		return err
	}
	cfg := make([]byte, virtioFSTagLen+4)
	if err := t.ReadConfig(0, cfg); err != nil {
		return err
	}
	tag := strings.TrimRight(string(cfg[:virtioFSTagLen]), "\x00")
	log.Printf("tag %q, num_request_queues %d, num_queues %d", tag, binary.LittleEndian.Uint32(cfg[virtioFSTagLen:]), t.NumQueues())
	if wantTag != "" && tag != wantTag {
		return fmt.Errorf("tag %q, want %q", tag, wantTag)
	}

	var queues [2]*virtio.Queue
	for i := range queues {
		max, err := t.MaxQueueSize(i)
		if err != nil {
			return err
		}
		size := min(max, defaultQueueSize)
		q, err := virtio.NewQueue(mem, i, size, features)
		if err != nil {
			return err
		}
		defer q.Close()
		a := q.Addrs()
		log.Printf("queue %d: max size %d, size %d, desc %#x avail %#x used %#x", i, max, size, a.Desc.Addr, a.Avail.Addr, a.Used.Addr)
		if err := t.EnableQueue(i, a); err != nil {
			return err
		}
		queues[i] = q
	}
	s, err := t.Status()
	if err != nil {
		return err
	}
	if err := t.SetStatus(s | virtio.StatusDriverOK); err != nil {
		return err
	}
	if s, err := t.Status(); err != nil || s&virtio.StatusDriverOK == 0 {
		return fmt.Errorf("status %#x after DRIVER_OK: %v", s, err)
	}
	err = fuseInitRoundTrip(t, mem, queues[queueRequest])
	// Reset before the rings go back to the memory.
	if cerr := t.Close(); err == nil {
		err = cerr
	}
	return err
}

// negotiate runs the feature negotiation of virtio spec 1.2 section 3.1.1,
// accepting VERSION_1 only.
func negotiate(t *pci.Transport) (uint64, error) {
	if err := t.SetStatus(virtio.StatusAcknowledge); err != nil {
		return 0, err
	}
	if err := t.SetStatus(virtio.StatusAcknowledge | virtio.StatusDriver); err != nil {
		return 0, err
	}
	dev, err := t.DeviceFeatures()
	if err != nil {
		return 0, err
	}
	log.Printf("device features %#x", dev)
	if dev&virtio.FeatureVersion1 == 0 {
		return 0, fmt.Errorf("device features %#x lack VERSION_1", dev)
	}
	features := uint64(virtio.FeatureVersion1)
	if err := t.SetDriverFeatures(features); err != nil {
		return 0, err
	}
	if err := t.SetStatus(virtio.StatusAcknowledge | virtio.StatusDriver | virtio.StatusFeaturesOK); err != nil {
		return 0, err
	}
	s, err := t.Status()
	if err != nil {
		return 0, err
	}
	if s&virtio.StatusFeaturesOK == 0 {
		return 0, fmt.Errorf("device refused features %#x (status %#x)", features, s)
	}
	log.Printf("driver features %#x, status %#x", features, s)
	return features, nil
}

// encodeInit is FUSE_INIT as Linux fuse_send_init sends it: fuse_in_header
// then fuse_init_in.
func encodeInit(b []byte) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], fuseInHeaderLen+fuseInitInLen) // len
	le.PutUint32(b[4:], fuseInit)                      // opcode
	le.PutUint64(b[8:], initUnique)                    // unique
	le.PutUint64(b[16:], 0)                            // nodeid
	// uid, gid, pid, total_extlen and padding stay 0.
	in := b[fuseInHeaderLen:]
	le.PutUint32(in[0:], fuseKernelMajor)
	le.PutUint32(in[4:], fuseKernelMinor)
	le.PutUint32(in[8:], 128<<10) // max_readahead
	le.PutUint32(in[12:], fuseAsyncRead|fuseBigWrites|fuseMaxPages|fuseInitExt)
}

// initReply is the part of fuse_init_out the probe checks.
type initReply struct {
	len       uint32
	errno     int32
	unique    uint64
	major     uint32
	minor     uint32
	flags     uint32
	maxWrite  uint32
	maxPages  uint16
	mapAlign  uint16
	timeGran  uint32
	readahead uint32
}

func decodeInit(b []byte) (initReply, error) {
	if len(b) < fuseOutHeaderLen {
		return initReply{}, fmt.Errorf("reply of %d bytes is shorter than fuse_out_header", len(b))
	}
	le := binary.LittleEndian
	r := initReply{len: le.Uint32(b[0:]), errno: int32(le.Uint32(b[4:])), unique: le.Uint64(b[8:])}
	if r.errno != 0 {
		return r, nil
	}
	if len(b) < fuseOutHeaderLen+24 {
		return r, fmt.Errorf("init reply of %d bytes is too short", len(b))
	}
	out := b[fuseOutHeaderLen:]
	r.major, r.minor, r.readahead, r.flags = le.Uint32(out[0:]), le.Uint32(out[4:]), le.Uint32(out[8:]), le.Uint32(out[12:])
	r.maxWrite, r.timeGran = le.Uint32(out[20:]), le.Uint32(out[24:])
	if len(out) >= 30 {
		r.maxPages, r.mapAlign = le.Uint16(out[28:]), le.Uint16(out[30:])
	}
	return r, nil
}

func fuseInitRoundTrip(t *pci.Transport, mem virtio.Memory, q *virtio.Queue) error {
	req, err := mem.Alloc(fuseInHeaderLen+fuseInitInLen, 8)
	if err != nil {
		return err
	}
	defer mem.Free(req)
	resp, err := mem.Alloc(fuseOutHeaderLen+fuseInitOutLen, 8)
	if err != nil {
		return err
	}
	defer mem.Free(resp)
	encodeInit(req.Bytes)
	log.Printf("FUSE_INIT request (%d bytes at %#x): % x", len(req.Bytes), req.Addr, req.Bytes)

	start := time.Now()
	notify, err := q.Add(context.Background(), []virtio.Buffer{req}, []virtio.Buffer{resp}, "init")
	if err != nil {
		return err
	}
	if notify {
		if err := t.Notify(queueRequest); err != nil {
			return err
		}
	}
	timeout := make(chan struct{})
	timer := time.AfterFunc(replyTimeout, func() { close(timeout) })
	defer timer.Stop()
	stop := make(chan struct{})
	go func() {
		select {
		case <-timeout:
		case <-t.Done():
		}
		close(stop)
	}()
	if !virtio.Poll(stop, nil, q.HasUsed) {
		s, serr := t.Status()
		return fmt.Errorf("no FUSE_INIT reply after %v (status %#x, %v)", time.Since(start), s, serr)
	}
	rtt := time.Since(start)
	u, ok, err := q.Pop()
	if err != nil || !ok {
		return fmt.Errorf("used ring: ok=%v: %v", ok, err)
	}
	if u.Cookie != "init" {
		return fmt.Errorf("used entry cookie %v, want init", u.Cookie)
	}
	log.Printf("FUSE_INIT reply after %v: %d bytes used: % x", rtt, u.Len, resp.Bytes[:u.Len])
	r, err := decodeInit(resp.Bytes[:u.Len])
	if err != nil {
		return err
	}
	log.Printf("FUSE_INIT reply: len %d error %d unique %#x major %d minor %d max_readahead %d flags %#x max_write %d time_gran %d max_pages %d map_alignment %d",
		r.len, r.errno, r.unique, r.major, r.minor, r.readahead, r.flags, r.maxWrite, r.timeGran, r.maxPages, r.mapAlign)
	switch {
	case r.errno != 0:
		return fmt.Errorf("FUSE_INIT failed: errno %d", -r.errno)
	case r.unique != initUnique:
		return fmt.Errorf("reply unique %#x, want %#x", r.unique, initUnique)
	case int(r.len) != u.Len:
		return fmt.Errorf("reply header len %d, used len %d", r.len, u.Len)
	case r.major != fuseKernelMajor || r.minor < wantMinorAtLeast:
		return fmt.Errorf("protocol %d.%d, want 7.%d+", r.major, r.minor, wantMinorAtLeast)
	case r.maxWrite < minSaneMaxWrite:
		return fmt.Errorf("max_write %d < %d", r.maxWrite, minSaneMaxWrite)
	}
	fmt.Printf("FUSE_INIT OK: major %d minor %d max_write %d\n", r.major, r.minor, r.maxWrite)
	return getattrLatency(t, mem, q)
}

// getattrLatency times polled FUSE_GETATTR round trips on the root nodeid,
// the smallest request that reaches the host file system.
func getattrLatency(t *pci.Transport, mem virtio.Memory, q *virtio.Queue) error {
	const (
		fuseGetattr    = 3
		getattrInLen   = 16  // getattr_flags, dummy, fh
		attrOutLen     = 104 // attr_valid, attr_valid_nsec, dummy, fuse_attr
		rootNodeID     = 1
		rounds         = 200
		sIFMT, sIFDIR  = 0o170000, 0o040000
		attrModeOffset = fuseOutHeaderLen + 16 + 8*6 + 4*3 // fuse_attr.mode after ino, size, blocks, [amc]time, [amc]timensec
	)
	req, err := mem.Alloc(fuseInHeaderLen+getattrInLen, 8)
	if err != nil {
		return err
	}
	defer mem.Free(req)
	resp, err := mem.Alloc(fuseOutHeaderLen+attrOutLen, 8)
	if err != nil {
		return err
	}
	defer mem.Free(resp)
	le := binary.LittleEndian
	lat := make([]time.Duration, 0, rounds)
	for i := range rounds {
		clear(req.Bytes)
		le.PutUint32(req.Bytes[0:], fuseInHeaderLen+getattrInLen)
		le.PutUint32(req.Bytes[4:], fuseGetattr)
		le.PutUint64(req.Bytes[8:], uint64(initUnique+1+i))
		le.PutUint64(req.Bytes[16:], rootNodeID)
		start := time.Now()
		notify, err := q.Add(context.Background(), []virtio.Buffer{req}, []virtio.Buffer{resp}, i)
		if err != nil {
			return err
		}
		if notify {
			if err := t.Notify(queueRequest); err != nil {
				return err
			}
		}
		if !virtio.Poll(t.Done(), nil, q.HasUsed) {
			return errors.New("device gone during GETATTR")
		}
		lat = append(lat, time.Since(start))
		u, ok, err := q.Pop()
		if err != nil || !ok || u.Cookie != i {
			return fmt.Errorf("GETATTR %d: used %+v ok=%v: %v", i, u, ok, err)
		}
		if u.Len != fuseOutHeaderLen+attrOutLen || int32(le.Uint32(resp.Bytes[4:])) != 0 || le.Uint64(resp.Bytes[8:]) != uint64(initUnique+1+i) {
			return fmt.Errorf("GETATTR %d: reply % x", i, resp.Bytes[:u.Len])
		}
		if mode := le.Uint32(resp.Bytes[attrModeOffset:]); mode&sIFMT != sIFDIR {
			return fmt.Errorf("GETATTR of the root: mode %#o is not a directory", mode)
		}
	}
	slices.Sort(lat)
	fmt.Printf("GETATTR OK: %d polled round trips, p50 %v p90 %v p99 %v max %v\n", rounds,
		lat[rounds/2], lat[rounds*9/10], lat[rounds*99/100], lat[rounds-1])
	return nil
}
