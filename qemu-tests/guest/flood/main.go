// Command flood writes a burst of output and exits with a chosen status, at once: the case in
// which the end of a guest's output, and the exit sentinel after it, used to be lost at power-off.
// With arguments N and CODE it writes lines "flood NNNNNNN" padded to 100 bytes, numbered from 0 to
// N-1, in one write(2) to stdout, then "flood: last line" to stderr, and exits with CODE.
// qemutests.TestLargeOutput boots it.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// lineLen is the length of every numbered line, newline included.
const lineLen = 100

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: flood LINES CODE")
		os.Exit(2)
	}
	n, err1 := strconv.Atoi(os.Args[1])
	code, err2 := strconv.Atoi(os.Args[2])
	if err1 != nil || err2 != nil || n < 0 || code < 0 || code > 255 {
		fmt.Fprintln(os.Stderr, "flood: bad arguments", os.Args[1:])
		os.Exit(2)
	}
	buf := make([]byte, 0, n*lineLen)
	pad := strings.Repeat("x", lineLen)
	for i := range n {
		line := fmt.Sprintf("flood %07d ", i)
		buf = append(buf, line...)
		buf = append(buf, pad[:lineLen-1-len(line)]...)
		buf = append(buf, '\n')
	}
	if _, err := os.Stdout.Write(buf); err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, "flood: last line")
	os.Exit(code)
}
