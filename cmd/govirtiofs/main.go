// Command govirtiofs runs Go programs in a QEMU guest that reaches a host directory through the
// govirtiofs userspace virtio-fs driver.
//
// Usage:
//
//	govirtiofs [run] [flags] [-- program args]   boot a guest program on a shared directory
//	govirtiofs help [command]
//
// With no arguments it runs a demo program on a built-in example directory.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand. run parses args (without the command name) and returns the process
// exit status; it must clean up before returning, since main calls os.Exit.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands maps names to subcommands; "bench" is expected to join "run".
var commands = map[string]command{
	"run": {summary: "boot a guest program with a shared directory (the default)", run: runCmd},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	name := "run"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if name == "help" {
		if len(args) > 0 {
			if c, ok := commands[args[0]]; ok {
				return c.run(ctx, []string{"-h"}, stdout, stderr)
			}
		}
		usage(stdout)
		return 0
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "govirtiofs: unknown command %q\n", name)
		usage(stderr)
		return 2
	}
	return c.run(ctx, args, stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: govirtiofs [command] [flags] [-- program args]\n\ncommands:")
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun \"govirtiofs help <command>\" for a command's flags.")
}
