package pci

import (
	"encoding/binary"
	"strings"
	"testing"
)

// capSpec is one capability for buildConfig: a virtio capability unless id
// is set.
type capSpec struct {
	at      int   // position in configuration space
	id      uint8 // 0: capIDVendor
	capLen  uint8 // 0: the natural length for the type
	cfgType uint8
	bar     uint8
	capID   uint8
	offset  uint64
	length  uint64
	mult    uint32
	next    int // -1: follow the order of the slice
}

// buildConfig lays out a 256-byte configuration space with the capabilities
// chained in slice order (unless a spec overrides next).
func buildConfig(first int, caps ...capSpec) []byte {
	// Fields of a capability near the end may spill past 256 bytes; the
	// spill is cut off.
	b := make([]byte, 512)
	binary.LittleEndian.PutUint16(b[0:], 0x1af4)
	binary.LittleEndian.PutUint16(b[2:], 0x105a)
	binary.LittleEndian.PutUint16(b[cfgStatus:], statusCapList)
	b[cfgCapPointer] = byte(first)
	for i, c := range caps {
		next := 0
		if i+1 < len(caps) {
			next = caps[i+1].at
		}
		if c.next >= 0 && c.next != 0 {
			next = c.next
		}
		id := c.id
		if id == 0 {
			id = capIDVendor
		}
		b[c.at] = id
		b[c.at+1] = byte(next)
		if id != capIDVendor {
			continue
		}
		n := c.capLen
		if n == 0 {
			n = capLen
			switch c.cfgType {
			case CapNotifyCfg:
				n = notifyCapLen
			case CapSharedMemoryCfg:
				n = cap64Len
			}
		}
		b[c.at+2] = n
		b[c.at+3] = c.cfgType
		b[c.at+4] = c.bar
		b[c.at+5] = c.capID
		binary.LittleEndian.PutUint32(b[c.at+8:], uint32(c.offset))
		binary.LittleEndian.PutUint32(b[c.at+12:], uint32(c.length))
		switch c.cfgType {
		case CapNotifyCfg:
			binary.LittleEndian.PutUint32(b[c.at+16:], c.mult)
		case CapSharedMemoryCfg:
			binary.LittleEndian.PutUint32(b[c.at+16:], uint32(c.offset>>32))
			binary.LittleEndian.PutUint32(b[c.at+20:], uint32(c.length>>32))
		}
	}
	return b[:256]
}

// qemuCaps is the layout QEMU 7.2 gives vhost-user-fs-pci, as a guest saw
// it: everything in BAR4, plus an MSI-X capability and a PCI cfg access
// capability.
func qemuCaps() []capSpec {
	return []capSpec{
		{at: 0x98, id: 0x11},
		{at: 0x84, cfgType: CapPCICfg, length: 4},
		{at: 0x70, cfgType: CapNotifyCfg, bar: 4, offset: 0x3000, length: 0x1000, mult: 4},
		{at: 0x60, cfgType: CapDeviceCfg, bar: 4, offset: 0x2000, length: 0x1000},
		{at: 0x50, cfgType: CapISRCfg, bar: 4, offset: 0x1000, length: 0x1000},
		{at: 0x40, cfgType: CapCommonCfg, bar: 4, offset: 0, length: 0x1000},
	}
}

var qemuBARs = [6]uint64{1: 0x1000, 4: 0x4000}

func TestParseCapabilities(t *testing.T) {
	const gib = 1 << 30
	withCaps := func(extra ...capSpec) []byte {
		return buildConfig(0x98, append(qemuCaps(), extra...)...)
	}
	tests := []struct {
		name       string
		config     []byte
		bars       [6]uint64
		wantCommon Region
		wantNotify Region
		wantDevice Region
		wantMult   uint32
		wantShm    []Region
		wantAll    int
	}{
		{
			name:       "qemu layout",
			config:     buildConfig(0x98, qemuCaps()...),
			bars:       qemuBARs,
			wantCommon: Region{Type: CapCommonCfg, BAR: 4, Length: 0x1000, Cap: 0x40},
			wantNotify: Region{Type: CapNotifyCfg, BAR: 4, Offset: 0x3000, Length: 0x1000, Cap: 0x70},
			wantDevice: Region{Type: CapDeviceCfg, BAR: 4, Offset: 0x2000, Length: 0x1000, Cap: 0x60},
			wantMult:   4,
			wantAll:    5,
		},
		{
			name: "shared memory with 64-bit offset and length",
			config: buildConfig(0x98, append(qemuCaps()[:5],
				capSpec{at: 0x40, cfgType: CapCommonCfg, bar: 4, length: 0x1000},
				capSpec{at: 0xa8, cfgType: CapSharedMemoryCfg, bar: 2, capID: 0, offset: 4 * gib, length: 4 * gib},
				capSpec{at: 0xc0, cfgType: CapSharedMemoryCfg, bar: 2, capID: 0, offset: 0, length: gib},
			)...),
			bars:       [6]uint64{2: 8 * gib, 4: 0x4000},
			wantCommon: Region{Type: CapCommonCfg, BAR: 4, Length: 0x1000, Cap: 0x40},
			wantNotify: Region{Type: CapNotifyCfg, BAR: 4, Offset: 0x3000, Length: 0x1000, Cap: 0x70},
			wantDevice: Region{Type: CapDeviceCfg, BAR: 4, Offset: 0x2000, Length: 0x1000, Cap: 0x60},
			wantMult:   4,
			wantShm:    []Region{{Type: CapSharedMemoryCfg, BAR: 2, Offset: 4 * gib, Length: 4 * gib, Cap: 0xa8}},
			wantAll:    7,
		},
		{
			name: "first of each type wins, reserved BAR ignored",
			config: buildConfig(0xa0,
				capSpec{at: 0xa0, cfgType: CapCommonCfg, bar: 7, length: 0x40},
				capSpec{at: 0xb0, cfgType: CapCommonCfg, bar: 0, offset: 0x100, length: 0x40},
				capSpec{at: 0xc0, cfgType: CapCommonCfg, bar: 0, offset: 0x200, length: 0x40},
				capSpec{at: 0xd0, cfgType: CapNotifyCfg, bar: 0, offset: 0x300, length: 2},
				capSpec{at: 0xe4, cfgType: CapVendorCfg, bar: 9, length: 0xffffffff},
			),
			bars:       [6]uint64{0: 0x400},
			wantCommon: Region{Type: CapCommonCfg, BAR: 0, Offset: 0x100, Length: 0x40, Cap: 0xb0},
			wantNotify: Region{Type: CapNotifyCfg, BAR: 0, Offset: 0x300, Length: 2, Cap: 0xd0},
			wantAll:    5,
		},
		{
			name: "low pointer bits are masked",
			config: func() []byte {
				b := buildConfig(0x98, qemuCaps()...)
				b[cfgCapPointer] |= 3
				b[0x98+1] |= 3
				return b
			}(),
			bars:       qemuBARs,
			wantCommon: Region{Type: CapCommonCfg, BAR: 4, Length: 0x1000, Cap: 0x40},
			wantNotify: Region{Type: CapNotifyCfg, BAR: 4, Offset: 0x3000, Length: 0x1000, Cap: 0x70},
			wantDevice: Region{Type: CapDeviceCfg, BAR: 4, Offset: 0x2000, Length: 0x1000, Cap: 0x60},
			wantMult:   4,
			wantAll:    5,
		},
		{
			name:       "extended configuration space is cut to 256 bytes",
			config:     append(withCaps(), make([]byte, 4096-256)...),
			bars:       qemuBARs,
			wantCommon: Region{Type: CapCommonCfg, BAR: 4, Length: 0x1000, Cap: 0x40},
			wantNotify: Region{Type: CapNotifyCfg, BAR: 4, Offset: 0x3000, Length: 0x1000, Cap: 0x70},
			wantDevice: Region{Type: CapDeviceCfg, BAR: 4, Offset: 0x2000, Length: 0x1000, Cap: 0x60},
			wantMult:   4,
			wantAll:    5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCapabilities(tt.config, tt.bars)
			if err != nil {
				t.Fatalf("ParseCapabilities: %v", err)
			}
			if c.Common != tt.wantCommon {
				t.Errorf("Common = %v, want %v", c.Common, tt.wantCommon)
			}
			if c.Notify != tt.wantNotify {
				t.Errorf("Notify = %v, want %v", c.Notify, tt.wantNotify)
			}
			if c.Device != tt.wantDevice {
				t.Errorf("Device = %v, want %v", c.Device, tt.wantDevice)
			}
			if c.NotifyOffMultiplier != tt.wantMult {
				t.Errorf("NotifyOffMultiplier = %d, want %d", c.NotifyOffMultiplier, tt.wantMult)
			}
			if len(c.SharedMemory) != len(tt.wantShm) {
				t.Fatalf("SharedMemory = %v, want %v", c.SharedMemory, tt.wantShm)
			}
			for i := range tt.wantShm {
				if c.SharedMemory[i] != tt.wantShm[i] {
					t.Errorf("SharedMemory[%d] = %v, want %v", i, c.SharedMemory[i], tt.wantShm[i])
				}
			}
			if len(c.All) != tt.wantAll {
				t.Errorf("len(All) = %d, want %d: %v", len(c.All), tt.wantAll, c.All)
			}
		})
	}
}

func TestParseCapabilitiesErrors(t *testing.T) {
	good := func() []byte { return buildConfig(0x98, qemuCaps()...) }
	tests := []struct {
		name   string
		config []byte
		bars   [6]uint64
		want   string
	}{
		{"short config", good()[:0x3f], qemuBARs, "at least 64"},
		{"no capability list", func() []byte { b := good(); b[cfgStatus] = 0; return b }(), qemuBARs, "no capability list"},
		{"empty list", buildConfig(0), qemuBARs, "no virtio common"},
		{"self loop", buildConfig(0x40, capSpec{at: 0x40, id: 0x05, next: 0x40}), qemuBARs, "loops"},
		{"two-cap loop", buildConfig(0x40,
			capSpec{at: 0x40, cfgType: CapCommonCfg, bar: 4, length: 0x100},
			capSpec{at: 0x50, id: 0x11, next: 0x40}), qemuBARs, "loops"},
		{"pointer into header", buildConfig(0x20), qemuBARs, "into the configuration header"},
		{"pointer past config", good()[:0x80], qemuBARs, "past configuration space"},
		{"virtio cap at end of config", buildConfig(0xfc, capSpec{at: 0xfc, capLen: 16}), qemuBARs, "runs past configuration space"},
		{"cap_len too small", buildConfig(0x40, capSpec{at: 0x40, capLen: 8, cfgType: CapCommonCfg}), qemuBARs, "cap_len 8"},
		{"cap_len past config", buildConfig(0xe0, capSpec{at: 0xe0, capLen: 0x40, cfgType: CapCommonCfg}), qemuBARs, "runs past configuration space"},
		{"short notify cap", buildConfig(0x40, capSpec{at: 0x40, capLen: 16, cfgType: CapNotifyCfg}), qemuBARs, "notify capability"},
		{"short shm cap", buildConfig(0x40, capSpec{at: 0x40, capLen: 20, cfgType: CapSharedMemoryCfg}), qemuBARs, "shared memory capability"},
		{"common past BAR end", buildConfig(0x40, capSpec{at: 0x40, cfgType: CapCommonCfg, bar: 4, offset: 0x3f00, length: 0x200}), qemuBARs, "past the end of BAR 4"},
		{"offset past BAR end", buildConfig(0x40, capSpec{at: 0x40, cfgType: CapDeviceCfg, bar: 4, offset: 0x5000, length: 1}), qemuBARs, "past the end of BAR 4"},
		{"64-bit overflow", buildConfig(0x40, capSpec{at: 0x40, cfgType: CapSharedMemoryCfg, bar: 4, offset: 0xffffffffffffff00, length: 0x200}), [6]uint64{4: ^uint64(0)}, "past the end of BAR 4"},
		{"absent BAR", buildConfig(0x40, capSpec{at: 0x40, cfgType: CapCommonCfg, bar: 3, length: 0x100}), qemuBARs, "BAR 3 is absent"},
		{"no notify", buildConfig(0x40, capSpec{at: 0x40, cfgType: CapCommonCfg, bar: 4, length: 0x100}), qemuBARs, "no virtio notify"},
		{"short common", buildConfig(0x40,
			capSpec{at: 0x40, cfgType: CapCommonCfg, bar: 4, length: 0x20},
			capSpec{at: 0x50, cfgType: CapNotifyCfg, bar: 4, offset: 0x3000, length: 0x100}), qemuBARs, "common configuration is 32 bytes"},
		{"short notify region", buildConfig(0x40,
			capSpec{at: 0x40, cfgType: CapCommonCfg, bar: 4, length: 0x100},
			capSpec{at: 0x50, cfgType: CapNotifyCfg, bar: 4, offset: 0x3000, length: 1}), qemuBARs, "notify region is 1 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCapabilities(tt.config, tt.bars)
			if err == nil {
				t.Fatalf("ParseCapabilities = %+v, want error containing %q", c, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseCapabilities error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func FuzzParseCapabilities(f *testing.F) {
	f.Add(buildConfig(0x98, qemuCaps()...), uint64(0x4000))
	f.Add(buildConfig(0x40,
		capSpec{at: 0x40, cfgType: CapCommonCfg, bar: 4, length: 0x100},
		capSpec{at: 0x50, cfgType: CapNotifyCfg, bar: 4, offset: 0x3000, length: 0x100},
		capSpec{at: 0x64, cfgType: CapSharedMemoryCfg, bar: 2, offset: 1 << 33, length: 1 << 32},
	), uint64(1<<34))
	f.Add(buildConfig(0x40, capSpec{at: 0x40, id: 0x05, next: 0x40}), uint64(0))
	f.Fuzz(func(t *testing.T, config []byte, barSize uint64) {
		bars := [6]uint64{barSize, 0, barSize, 0, barSize, 0x1000}
		c, err := ParseCapabilities(config, bars)
		if err != nil {
			return
		}
		for _, r := range append([]Region{c.Common, c.Notify, c.ISR, c.Device}, c.SharedMemory...) {
			if !r.Present() {
				continue
			}
			if r.BAR > 5 || r.Offset+r.Length < r.Offset || r.Offset+r.Length > bars[r.BAR] {
				t.Fatalf("accepted %v outside BAR of %#x bytes", r, bars[r.BAR%6])
			}
		}
		if c.Common.Length < commonCfgMinLen || c.Notify.Length < 2 {
			t.Fatalf("accepted short common %v or notify %v", c.Common, c.Notify)
		}
	})
}
