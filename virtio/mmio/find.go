package mmio

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// Source says where Find learned about a device.
type Source string

// Discovery sources.
const (
	// SourceIomem: an entry in /proc/iomem. With ACPI the kernel names the
	// windows after the ACPI hardware ID "LNRO0005"; platform devices
	// created from the command line are named "virtio-mmio.N"; device-tree
	// nodes "ADDR.virtio_mmio".
	SourceIomem Source = "iomem"
	// SourceCmdline: a virtio_mmio.device= kernel argument (QEMU microvm
	// with acpi=off passes one per transport).
	SourceCmdline Source = "cmdline"
)

// Device is one virtio-mmio register window. Find reports windows, not
// devices: a window whose DeviceID register reads 0 has no device behind it
// (QEMU microvm creates many such slots).
type Device struct {
	Base   uint64 // guest-physical address of the register block
	Size   int    // length of the register block in bytes
	IRQ    int    // interrupt line, or -1 when unknown (iomem)
	Name   string // the iomem resource name or "virtio_mmio.device=..."
	Source Source
}

// maxWindow bounds a register window's size. The spec puts the registers in
// the first 0x100 bytes and device configuration space after them; no device
// needs more than a page or two, and a huge value is a parse error.
const maxWindow = 1 << 20

// Find lists the virtio-mmio register windows of this machine from
// /proc/iomem and the kernel command line, merged by base address and
// sorted by it (command-line entries win: they carry the IRQ).
//
// Errors: reading /proc/iomem or /proc/cmdline fails. Finding nothing is not
// an error: the result is empty. /proc/iomem shows zero addresses to
// non-root readers; those entries are dropped, so run as root.
func Find() ([]Device, error) {
	iomem, err := os.ReadFile("/proc/iomem")
	if err != nil {
		return nil, fmt.Errorf("mmio: %w", err)
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil, fmt.Errorf("mmio: %w", err)
	}
	fromCmdline, err := ParseCmdline(string(cmdline))
	if err != nil {
		return nil, fmt.Errorf("mmio: /proc/cmdline: %w", err)
	}
	return merge(fromCmdline, ParseIomem(iomem)), nil
}

// merge joins device lists, keeping the first entry seen for each base
// address, and sorts the result by address.
func merge(lists ...[]Device) []Device {
	seen := make(map[uint64]bool)
	var out []Device
	for _, l := range lists {
		for _, d := range l {
			if seen[d.Base] {
				continue
			}
			seen[d.Base] = true
			out = append(out, d)
		}
	}
	// Insertion sort: the lists are short (microvm has at most a few dozen
	// slots) and this keeps the order stable.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Base < out[j-1].Base; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// ParseIomem extracts virtio-mmio windows from the text of /proc/iomem
// (lines "START-END : NAME", hexadecimal, indented by nesting depth).
// Malformed lines, unrelated names and zeroed (unprivileged) addresses are
// skipped; the result keeps the order of the input.
func ParseIomem(text []byte) []Device {
	var out []Device
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		rng, name, ok := strings.Cut(strings.TrimSpace(sc.Text()), " : ")
		if !ok || !isVirtioMMIOName(name) {
			continue
		}
		lo, hi, ok := strings.Cut(rng, "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end < start || start == 0 {
			continue
		}
		size := end - start + 1 // cannot wrap: start > 0
		if size > maxWindow {
			continue
		}
		out = append(out, Device{Base: start, Size: int(size), IRQ: -1, Name: name, Source: SourceIomem})
	}
	return out
}

// isVirtioMMIOName reports whether an iomem resource name is a virtio-mmio
// window: the ACPI ID LNRO0005 (Linux drivers/virtio/virtio_mmio.c
// virtio_mmio_acpi_match), a command-line platform device, or a device-tree
// node.
func isVirtioMMIOName(name string) bool {
	switch {
	case strings.HasPrefix(name, "LNRO0005:"):
		return true
	case strings.HasPrefix(name, "virtio-mmio.") || name == "virtio-mmio":
		return true
	case strings.HasSuffix(name, ".virtio_mmio") || strings.HasPrefix(name, "virtio_mmio@"):
		return true
	}
	return false
}

// ParseCmdline extracts virtio-mmio windows from a kernel command line:
// arguments virtio_mmio.device=SIZE@BASE:IRQ[:ID] (Linux
// drivers/virtio/virtio_mmio.c vm_cmdline_set). SIZE takes the kernel's
// memparse form (decimal, 0x hex or 0 octal, with an optional K/M/G
// suffix); BASE and IRQ are integers in C notation. The kernel treats '-'
// and '_' in parameter names alike, and so does this. Arguments after "--"
// count too: QEMU microvm appends its virtio_mmio.device= arguments to the
// end of the command line, after any "--" the user gave, where the kernel
// no longer sees them but the window is still there.
//
// Errors: a virtio_mmio.device argument that does not parse, or whose window
// is empty, larger than 1 MiB or wraps around the address space.
func ParseCmdline(cmdline string) ([]Device, error) {
	var out []Device
	var errs []error
	for _, arg := range splitCmdline(cmdline) {
		key, val, ok := strings.Cut(arg, "=")
		if !ok || strings.ReplaceAll(key, "-", "_") != "virtio_mmio.device" {
			continue
		}
		d, err := parseDeviceArg(val)
		if err != nil {
			errs = append(errs, fmt.Errorf("virtio_mmio.device=%q: %w", val, err))
			continue
		}
		d.Name = arg
		out = append(out, d)
	}
	return out, errors.Join(errs...)
}

// splitCmdline splits a kernel command line into arguments the way the
// kernel's next_arg does: on whitespace, except inside double quotes. The
// name ends at the first '='; like next_arg it drops only an argument's
// opening quote, a value's opening quote and the argument's closing quote,
// and keeps any other quote where it is (so a quote inside a name makes a
// name no parameter has).
func splitCmdline(s string) []string {
	var args []string
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for i := 0; i < len(s); {
		if isSpace(s[i]) {
			i++
			continue
		}
		quoted := s[i] == '"'
		if quoted {
			i++
		}
		start, equals, inQuote := i, -1, quoted
		for ; i < len(s) && (inQuote || !isSpace(s[i])); i++ {
			if equals < 0 && s[i] == '=' {
				equals = i
			}
			if s[i] == '"' {
				inQuote = !inQuote
			}
		}
		arg := s[start:i]
		closing := len(arg) > 0 && arg[len(arg)-1] == '"'
		if equals < 0 {
			if quoted && closing {
				arg = arg[:len(arg)-1]
			}
			args = append(args, arg)
			continue
		}
		name, val := arg[:equals-start], arg[equals-start+1:]
		if strings.HasPrefix(val, `"`) {
			val = val[1:]
			if closing && len(val) > 0 {
				val = val[:len(val)-1]
				closing = false
			}
		}
		if quoted && closing && len(val) > 0 {
			val = val[:len(val)-1]
		}
		args = append(args, name+"="+val)
	}
	return args
}

// parseDeviceArg parses SIZE@BASE:IRQ[:ID].
func parseDeviceArg(v string) (Device, error) {
	sizeStr, rest, ok := strings.Cut(v, "@")
	if !ok {
		return Device{}, errors.New("missing '@'")
	}
	size, err := parseMemSize(sizeStr)
	if err != nil {
		return Device{}, fmt.Errorf("size: %w", err)
	}
	parts := strings.Split(rest, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return Device{}, errors.New("want SIZE@BASE:IRQ[:ID]")
	}
	base, err := parseCUint(parts[0])
	if err != nil {
		return Device{}, fmt.Errorf("base: %w", err)
	}
	irq, err := parseCUint(parts[1])
	if err != nil || irq > math.MaxInt32 {
		return Device{}, fmt.Errorf("irq %q: not an interrupt number", parts[1])
	}
	if len(parts) == 3 {
		if _, err := strconv.ParseInt(parts[2], 10, 32); err != nil {
			return Device{}, fmt.Errorf("id %q: not a decimal number", parts[2])
		}
	}
	switch {
	case size == 0:
		return Device{}, errors.New("size is zero")
	case size > maxWindow:
		return Device{}, fmt.Errorf("size %d larger than %d", size, maxWindow)
	case base == 0:
		return Device{}, errors.New("base is zero")
	case base > math.MaxUint64-size+1:
		return Device{}, errors.New("window wraps around the address space")
	}
	return Device{Base: base, Size: int(size), IRQ: int(irq), Source: SourceCmdline}, nil
}

// parseCUint parses an unsigned integer in C notation (strtoull base 0):
// "0x" hexadecimal, a leading "0" octal, otherwise decimal.
func parseCUint(s string) (uint64, error) {
	if s == "" {
		return 0, errors.New("empty number")
	}
	base := 10
	digits := s
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		base, digits = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, digits = 8, s[1:]
	}
	// ParseUint accepts underscores only with base 0 and signs never, so
	// explicit bases keep the C syntax strict.
	n, err := strconv.ParseUint(digits, base, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return n, nil
}

// parseMemSize parses a size as the kernel's memparse does: a C-notation
// number with an optional K, M, G, T, P or E suffix (either case).
func parseMemSize(s string) (uint64, error) {
	shift := 0
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		case 't', 'T':
			shift = 40
		case 'p', 'P':
			shift = 50
		case 'e', 'E':
			// 'e'/'E' is also a hex digit: only a suffix after a decimal
			// or octal number, as in memparse (which stops strtoull at it).
			if !strings.HasPrefix(s, "0x") && !strings.HasPrefix(s, "0X") {
				shift = 60
			}
		}
		if shift > 0 {
			s = s[:n-1]
		}
	}
	v, err := parseCUint(s)
	if err != nil {
		return 0, err
	}
	if shift > 0 && v > math.MaxUint64>>shift {
		return 0, fmt.Errorf("%q overflows", s)
	}
	return v << shift, nil
}
