package fuse

import (
	"math"
	"strings"
	"testing"
)

// replyDecoders are the decoders of host-supplied reply payloads, one per
// reply format, as the typed calls use them.
var replyDecoders = []struct {
	name   string
	decode func(p []byte) error
}{
	{"INIT", func(p []byte) error { _, err := decodeInitOut(p); return err }},
	{"LOOKUP", func(p []byte) error { _, err := decodeLookup(p); return err }},
	{"MKDIR", func(p []byte) error { _, err := decodeNewEntry(p, ModeDir); return err }},
	{"LINK", func(p []byte) error { _, err := decodeNewEntry(p, 0); return err }},
	{"CREATE", func(p []byte) error { _, _, err := decodeCreate(p); return err }},
	{"GETATTR", func(p []byte) error { _, err := decodeAttrOut(p); return err }},
	{"OPEN", func(p []byte) error { _, err := decodeOpenOut(p); return err }},
	{"WRITE", func(p []byte) error { _, err := decodeWriteOut(p, 4096); return err }},
	{"STATFS", func(p []byte) error { _, err := decodeStatfs(p); return err }},
	{"GETXATTR", func(p []byte) error { _, err := decodeGetxattrOut(p); return err }},
	{"LISTXATTR", validateXattrList},
	{"GETLK", func(p []byte) error { _, err := decodeLkOut(p); return err }},
	{"LSEEK", func(p []byte) error { _, err := decodeLseekOut(p); return err }},
	{"READDIR", func(p []byte) error { _, err := decodeDirents(p); return err }},
	{"READDIRPLUS", func(p []byte) error { _, err := decodeDirentsPlus(p); return err }},
	{"empty", decodeEmpty},
}

// FuzzDecodeReply runs each opcode's reply decoder on arbitrary bytes: no
// panic, and what is accepted satisfies the checks.
func FuzzDecodeReply(f *testing.F) {
	for i := range replyDecoders {
		f.Add(uint8(i), []byte{})
		f.Add(uint8(i), make([]byte, entryOutSize))
	}
	f.Add(uint8(1), h(f, goldenEntry))
	f.Add(uint8(13), h(f, goldenDirent))
	f.Add(uint8(14), h(f, goldenEntry+goldenDirent))
	f.Fuzz(func(t *testing.T, sel uint8, p []byte) {
		d := replyDecoders[int(sel)%len(replyDecoders)]
		err := d.decode(p)
		if err != nil && !strings.Contains(err.Error(), errBadReply.Error()) {
			t.Errorf("%s: error %v does not wrap errBadReply", d.name, err)
		}
		if d.name == "LOOKUP" && err == nil {
			e, _ := decodeLookup(p)
			if e.NodeID != 0 && (validateAttr(&e.Attr) != nil || e.Attr.Size > math.MaxInt64) {
				t.Errorf("LOOKUP accepted invalid attributes %+v", e.Attr)
			}
		}
	})
}

// FuzzReadDirPlus decodes arbitrary READDIRPLUS replies: no panic, and
// every accepted entry has a valid name and, if linked, valid attributes.
func FuzzReadDirPlus(f *testing.F) {
	f.Add(h(f, goldenEntry+goldenDirent))
	f.Add(h(f, goldenEntry+goldenDirent+goldenEntry+goldenDirent))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		ds, err := decodeDirentsPlus(p)
		if err != nil {
			return
		}
		for _, d := range ds {
			if d.Name == "" || len(d.Name) > NameMax || strings.ContainsAny(d.Name, "/\x00") {
				t.Errorf("accepted name %q", d.Name)
			}
			if d.Entry.NodeID != 0 {
				if d.Entry.NodeID == RootID || validateAttr(&d.Entry.Attr) != nil {
					t.Errorf("accepted entry %+v", d.Entry)
				}
			}
		}
		// READDIR over the same bytes must not panic either.
		decodeDirents(p)
	})
}
