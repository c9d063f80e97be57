package virtiotest

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/govirtiofs/govirtiofs/virtio"
)

// Handler serves one descriptor chain: it reads the request from the
// device-readable buffers, writes the reply into the device-writable ones,
// and returns how many bytes it wrote, which becomes the used entry's len.
// The value is passed through unchecked, so a Handler can also play a
// device that lies about it.
type Handler func(readable, writable [][]byte) (written int)

// deviceQueue is the device side of one split virtqueue.
type deviceQueue struct {
	index    int            // immutable
	size     int            // immutable
	mem      *Memory        // immutable
	eventIdx bool           // immutable
	indirect bool           // immutable
	handler  Handler        // immutable
	async    bool           // immutable
	fail     func(error)    // immutable: reports a device error
	desc     []byte         // immutable: the descriptor table
	avail    []byte         // immutable: the driver area
	used     []byte         // immutable: the device area
	kick     chan struct{}  // immutable: Notify's doorbell, buffered 1
	stop     chan struct{}  // immutable: closed to stop the queue
	wg       sync.WaitGroup // the run goroutine and async handlers

	lastAvail uint16 // owned by the run goroutine

	// mu guards the fields below: used ring publication, which async
	// handlers and InjectUsed do concurrently.
	mu         sync.Mutex
	usedIdx    uint16
	interrupts int // used entries after which the driver asked to be interrupted
}

func newDeviceQueue(mem *Memory, index int, q virtio.QueueAddrs, features uint64) (*deviceQueue, error) {
	dq := &deviceQueue{
		index:    index,
		size:     q.Size,
		mem:      mem,
		eventIdx: features&virtio.FeatureEventIdx != 0,
		indirect: features&virtio.FeatureIndirectDesc != 0,
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	if q.Size < 2 || q.Size > 32768 || q.Size&(q.Size-1) != 0 {
		return nil, fmt.Errorf("virtiotest: queue %d: bad size %d", index, q.Size)
	}
	var err error
	if dq.desc, err = mem.Slice(q.Desc.Addr, virtio.DescTableBytes(q.Size)); err != nil {
		return nil, fmt.Errorf("virtiotest: queue %d descriptor table: %w", index, err)
	}
	if dq.avail, err = mem.Slice(q.Avail.Addr, virtio.AvailRingBytes(q.Size)); err != nil {
		return nil, fmt.Errorf("virtiotest: queue %d driver area: %w", index, err)
	}
	if dq.used, err = mem.Slice(q.Used.Addr, virtio.UsedRingBytes(q.Size)); err != nil {
		return nil, fmt.Errorf("virtiotest: queue %d device area: %w", index, err)
	}
	if q.Avail.Addr%4 != 0 || q.Used.Addr%4 != 0 || q.Desc.Addr%16 != 0 {
		return nil, fmt.Errorf("virtiotest: queue %d: misaligned rings", index)
	}
	return dq, nil
}

func (dq *deviceQueue) start() {
	dq.wg.Add(1)
	go dq.run()
}

// run serves the queue until stop: it drains the available ring on every
// kick, and with EVENT_IDX asks for the next kick by writing avail_event and
// re-checking avail idx (section 2.7.10), so that no kick is lost.
func (dq *deviceQueue) run() {
	defer dq.wg.Done()
	availEv := virtio.Word(dq.used, virtio.AvailEventOffset(dq.size))
	for {
		select {
		case <-dq.kick:
		case <-dq.stop:
			return
		}
		for {
			if !dq.drain() {
				return
			}
			if !dq.eventIdx {
				break
			}
			availEv.Store(uint32(dq.lastAvail))
			if dq.availIdx() == dq.lastAvail {
				break
			}
		}
	}
}

func (dq *deviceQueue) availIdx() uint16 {
	return uint16(virtio.Word(dq.avail, 0).Load() >> 16)
}

// drain serves every available chain; false means the queue failed.
func (dq *deviceQueue) drain() bool {
	for idx := dq.availIdx(); dq.lastAvail != idx; idx = dq.availIdx() {
		for dq.lastAvail != idx {
			slot := int(dq.lastAvail) & (dq.size - 1)
			head := binary.LittleEndian.Uint16(dq.avail[4+2*slot:])
			dq.lastAvail++
			r, w, err := dq.walk(head)
			if err != nil {
				dq.fail(fmt.Errorf("virtiotest: queue %d, chain at descriptor %d: %w", dq.index, head, err))
				return false
			}
			if dq.async {
				dq.wg.Add(1)
				go func() {
					defer dq.wg.Done()
					dq.publish(uint32(head), uint32(dq.handler(r, w)))
				}()
			} else {
				dq.publish(uint32(head), uint32(dq.handler(r, w)))
			}
		}
	}
	return true
}

// walk follows the chain at head (section 2.7.5), through an indirect
// table if there is one (section 2.7.5.3), and returns its buffers.
func (dq *deviceQueue) walk(head uint16) (readable, writable [][]byte, err error) {
	if int(head) >= dq.size {
		return nil, nil, fmt.Errorf("head %d out of range", head)
	}
	table, n := dq.desc, dq.size
	d := virtio.GetDesc(dq.desc[int(head)*virtio.DescSize:])
	if d.Flags&virtio.DescFlagIndirect != 0 {
		if !dq.indirect {
			return nil, nil, fmt.Errorf("indirect descriptor without VIRTIO_F_INDIRECT_DESC")
		}
		if d.Flags&virtio.DescFlagNext != 0 {
			return nil, nil, fmt.Errorf("indirect descriptor with NEXT")
		}
		if d.Len == 0 || d.Len%virtio.DescSize != 0 {
			return nil, nil, fmt.Errorf("indirect table of %d bytes", d.Len)
		}
		if table, err = dq.mem.Slice(d.Addr, int(d.Len)); err != nil {
			return nil, nil, err
		}
		n = int(d.Len) / virtio.DescSize
		d = virtio.GetDesc(table)
	}
	for count := 1; ; count++ {
		if count > n {
			return nil, nil, fmt.Errorf("chain longer than %d descriptors (a loop?)", n)
		}
		if d.Flags&virtio.DescFlagIndirect != 0 {
			return nil, nil, fmt.Errorf("nested or chained indirect descriptor")
		}
		b, err := dq.mem.Slice(d.Addr, int(d.Len))
		if err != nil {
			return nil, nil, err
		}
		if d.Flags&virtio.DescFlagWrite != 0 {
			writable = append(writable, b)
		} else if len(writable) > 0 {
			return nil, nil, fmt.Errorf("device-readable descriptor after a device-writable one")
		} else {
			readable = append(readable, b)
		}
		if d.Flags&virtio.DescFlagNext == 0 {
			return readable, writable, nil
		}
		if int(d.Next) >= n {
			return nil, nil, fmt.Errorf("next %d out of range", d.Next)
		}
		d = virtio.GetDesc(table[int(d.Next)*virtio.DescSize:])
	}
}

// publish adds a used entry (section 2.7.8): the entry, then (release) the
// new idx. It counts the interrupt the driver would get.
func (dq *deviceQueue) publish(id, length uint32) {
	dq.mu.Lock()
	defer dq.mu.Unlock()
	slot := int(dq.usedIdx) & (dq.size - 1)
	e := dq.used[4+virtio.UsedElemSize*slot:]
	binary.LittleEndian.PutUint32(e[0:], id)
	binary.LittleEndian.PutUint32(e[4:], length)
	old := dq.usedIdx
	dq.usedIdx++
	virtio.Word(dq.used, 0).Store(uint32(dq.usedIdx) << 16) // flags 0: kicks welcome
	if dq.eventIdx {
		ev := uint16(virtio.Word(dq.avail, virtio.UsedEventOffset(dq.size)).Load())
		if virtio.NeedEvent(ev, dq.usedIdx, old) {
			dq.interrupts++
		}
	} else if virtio.Word(dq.avail, 0).Load()&virtio.AvailFlagNoInterrupt == 0 {
		dq.interrupts++
	}
}
