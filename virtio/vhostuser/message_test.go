package vhostuser

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
)

// TestMessageGolden checks the wire bytes of each message this front end
// sends against vhost-user.rst's layouts, written out by hand.
func TestMessageGolden(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"GET_FEATURES", message(reqGetFeatures, 0, nil), []byte{
			1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}},
		{"SET_FEATURES with REPLY_ACK", message(reqSetFeatures, flagNeedReply, u64(0x1_7000_0000)), []byte{
			2, 0, 0, 0, 9, 0, 0, 0, 8, 0, 0, 0,
			0, 0, 0, 0x70, 1, 0, 0, 0}},
		{"vring state", vringState(1, 128), []byte{1, 0, 0, 0, 128, 0, 0, 0}},
		{"vring addr", vringAddr(1, 0x1122, 0x3344, 0x5566), []byte{
			1, 0, 0, 0, 0, 0, 0, 0,
			0x22, 0x11, 0, 0, 0, 0, 0, 0, // descriptor
			0x44, 0x33, 0, 0, 0, 0, 0, 0, // used
			0x66, 0x55, 0, 0, 0, 0, 0, 0, // available
			0, 0, 0, 0, 0, 0, 0, 0}}, // log
		{"memory table", memTable([]memRegion{{GuestAddr: 1 << 32, Size: 0x10000, UserAddr: 0x7f00_0000_0000, MmapOffset: 0}}), []byte{
			1, 0, 0, 0, 0, 0, 0, 0,
			0, 0, 0, 0, 1, 0, 0, 0,
			0, 0, 1, 0, 0, 0, 0, 0,
			0, 0, 0, 0, 0, 0x7f, 0, 0,
			0, 0, 0, 0, 0, 0, 0, 0}},
		{"kick with fd", vringFD(1, true), []byte{1, 0, 0, 0, 0, 0, 0, 0}},
		{"kick without fd", vringFD(1, false), []byte{1, 1, 0, 0, 0, 0, 0, 0}},
		{"config", configSpace(0, 4), []byte{0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"fs config", fsConfig("myfs", 1), append(append([]byte("myfs"), make([]byte, 32)...), 1, 0, 0, 0)},
	}
	for _, tt := range tests {
		if !bytes.Equal(tt.got, tt.want) {
			t.Errorf("%s:\n got %x\nwant %x", tt.name, tt.got, tt.want)
		}
	}
}

func TestCheckReply(t *testing.T) {
	tests := []struct {
		name string
		h    header
		ok   bool
	}{
		{"good", header{Request: reqGetFeatures, Flags: flagVersion | flagReply, Size: 8}, true},
		{"other request", header{Request: reqSetOwner, Flags: flagVersion | flagReply, Size: 8}, false},
		{"no reply flag", header{Request: reqGetFeatures, Flags: flagVersion, Size: 8}, false},
		{"bad version", header{Request: reqGetFeatures, Flags: 2 | flagReply, Size: 8}, false},
		{"huge", header{Request: reqGetFeatures, Flags: flagVersion | flagReply, Size: 1 << 30}, false},
	}
	for _, tt := range tests {
		err := checkReply(tt.h, reqGetFeatures)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, syscall.EPROTO)) {
			t.Errorf("%s: checkReply = %v, want ok=%v or EPROTO", tt.name, err, tt.ok)
		}
	}
}

// FuzzReply feeds arbitrary back-end bytes to the reply decoders.
func FuzzReply(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 5, 0, 0, 0, 8, 0, 0, 0}, []byte{0, 0, 0, 0, 40, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, hdr, cfg []byte) {
		if len(hdr) >= headerSize {
			h := decodeHeader(hdr)
			if err := checkReply(h, reqGetFeatures); err == nil && h.Size > maxPayload {
				t.Fatalf("accepted a %d-byte payload", h.Size)
			}
		}
		if c, err := parseConfigReply(cfg, fsConfigLen); err == nil && len(c) != fsConfigLen {
			t.Fatalf("config of %d bytes", len(c))
		}
		parseU64(cfg)
	})
}
