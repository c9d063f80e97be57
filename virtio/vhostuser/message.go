package vhostuser

import (
	"encoding/binary"
	"fmt"
	"syscall"
)

// Front-end message types (vhost-user.rst, "Front-end message types").
const (
	reqGetFeatures         = 1
	reqSetFeatures         = 2
	reqSetOwner            = 3
	reqSetMemTable         = 5
	reqSetVringNum         = 8
	reqSetVringAddr        = 9
	reqSetVringBase        = 10
	reqGetVringBase        = 11
	reqSetVringKick        = 12
	reqSetVringCall        = 13
	reqGetProtocolFeatures = 15
	reqSetProtocolFeatures = 16
	reqGetQueueNum         = 17
	reqSetVringEnable      = 18
	reqGetConfig           = 24
)

// Header flags: bits 0-1 the version (1), bit 2 a reply, bit 3 "reply
// requested" (REPLY_ACK).
const (
	flagVersion   = 0x1
	flagReply     = 0x4
	flagNeedReply = 0x8
)

// featureProtocolFeatures is VHOST_USER_F_PROTOCOL_FEATURES, a vhost-user
// bit in the virtio feature word; the virtio driver never sees it.
const featureProtocolFeatures = 1 << 30

// Protocol feature bits (vhost-user.rst, "Protocol features").
const (
	protocolMQ       = 1 << 0
	protocolReplyAck = 1 << 3
	protocolConfig   = 1 << 9
)

// wantedProtocol is what this front end acks when offered: no back-end
// request channel, no in-band notifications, no memory slots.
const wantedProtocol = protocolMQ | protocolReplyAck | protocolConfig

// vringNoFD is VHOST_USER_VRING_NOFD_MASK, bit 8 of a kick/call payload.
const vringNoFD = 1 << 8

const (
	headerSize  = 12
	maxPayload  = 4096 // larger than any reply this front end asks for
	fsConfigLen = 40   // virtio-fs config: tag[36], le32 num_request_queues
)

// header is a message header: request, flags, size of the payload.
type header struct {
	Request uint32
	Flags   uint32
	Size    uint32
}

func (h header) encode(b []byte) {
	binary.LittleEndian.PutUint32(b[0:], h.Request)
	binary.LittleEndian.PutUint32(b[4:], h.Flags)
	binary.LittleEndian.PutUint32(b[8:], h.Size)
}

func decodeHeader(b []byte) header {
	return header{
		Request: binary.LittleEndian.Uint32(b[0:]),
		Flags:   binary.LittleEndian.Uint32(b[4:]),
		Size:    binary.LittleEndian.Uint32(b[8:]),
	}
}

// message encodes a front-end message: header then payload.
func message(req, flags uint32, payload []byte) []byte {
	b := make([]byte, headerSize+len(payload))
	header{Request: req, Flags: flagVersion | flags, Size: uint32(len(payload))}.encode(b)
	copy(b[headerSize:], payload)
	return b
}

// checkReply validates a reply header read from the back end against the
// request it answers.
//
// Errors: EPROTO for the wrong request, a missing reply flag, a wrong
// version, or a payload larger than maxPayload.
func checkReply(h header, req uint32) error {
	if h.Request != req || h.Flags&flagReply == 0 || h.Flags&0x3 != flagVersion || h.Size > maxPayload {
		return fmt.Errorf("vhostuser: bad reply header %+v to request %d: %w", h, req, syscall.EPROTO)
	}
	return nil
}

func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// vringState is struct vhost_vring_state: index, num.
func vringState(index, num uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, index)
	return binary.LittleEndian.AppendUint32(b, num)
}

// vringAddr is struct vhost_vring_addr: index, flags, then the
// descriptor, used, available and log addresses, in that order.
func vringAddr(index uint32, desc, used, avail uint64) []byte {
	b := binary.LittleEndian.AppendUint32(nil, index)
	b = binary.LittleEndian.AppendUint32(b, 0) // flags: no logging
	b = binary.LittleEndian.AppendUint64(b, desc)
	b = binary.LittleEndian.AppendUint64(b, used)
	b = binary.LittleEndian.AppendUint64(b, avail)
	return binary.LittleEndian.AppendUint64(b, 0) // log
}

// memRegion is one VhostUserMemoryRegion.
type memRegion struct {
	GuestAddr, Size, UserAddr, MmapOffset uint64
}

// memTable is VhostUserMemory: nregions, padding, regions.
func memTable(regions []memRegion) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(regions)))
	b = binary.LittleEndian.AppendUint32(b, 0)
	for _, r := range regions {
		b = binary.LittleEndian.AppendUint64(b, r.GuestAddr)
		b = binary.LittleEndian.AppendUint64(b, r.Size)
		b = binary.LittleEndian.AppendUint64(b, r.UserAddr)
		b = binary.LittleEndian.AppendUint64(b, r.MmapOffset)
	}
	return b
}

// vringFD is the u64 payload of SET_VRING_KICK/CALL: the index in bits
// 0-7, bit 8 set when no fd travels with the message.
func vringFD(index uint32, hasFD bool) []byte {
	v := uint64(index & 0xff)
	if !hasFD {
		v |= vringNoFD
	}
	return u64(v)
}

// configSpace is VhostUserConfig: offset, size, flags, then size bytes.
func configSpace(offset, size uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, offset)
	b = binary.LittleEndian.AppendUint32(b, size)
	b = binary.LittleEndian.AppendUint32(b, 0)
	return append(b, make([]byte, size)...)
}

// parseConfigReply returns the config bytes of a GET_CONFIG reply.
//
// Errors: EPROTO if the reply is short or its size disagrees.
func parseConfigReply(p []byte, size uint32) ([]byte, error) {
	if len(p) < 12 || binary.LittleEndian.Uint32(p[4:]) != size || uint32(len(p)-12) < size {
		return nil, fmt.Errorf("vhostuser: GET_CONFIG reply of %d bytes for %d config bytes: %w", len(p), size, syscall.EPROTO)
	}
	return p[12 : 12+size], nil
}

// fsConfig synthesizes a virtio-fs config space (virtio spec 1.2 section
// 5.11.4) for back ends without VHOST_USER_PROTOCOL_F_CONFIG, as QEMU's
// vhost-user-fs device does from its tag and num-request-queues.
func fsConfig(tag string, numRequestQueues int) []byte {
	b := make([]byte, fsConfigLen)
	copy(b[:36], tag)
	binary.LittleEndian.PutUint32(b[36:], uint32(numRequestQueues))
	return b
}
