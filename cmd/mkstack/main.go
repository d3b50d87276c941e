// Command mkstack runs and inspects the mkstack user-space TCP/IP stack.
//
// Usage:
//
//	mkstack demo   [flags]   the main job on the in-memory NIC, no set-up needed
//	mkstack serve  [flags]   the stack on an interface (afxdp, tap, afpacket, mem) with a built-in app
//	mkstack lab    up|down   namespaces and a veth or TAP to try serve against Linux
//	mkstack rings  [flags]   the core-to-core message rings alone
//	mkstack bench  [flags]   workloads by core count on mkstack, gVisor and the kernel (JSON, table, plots)
//	mkstack rss    [flags] SRC[:PORT] DST[:PORT]   which queue a packet hashes to
//
// Run "mkstack COMMAND -h" for a command's flags.
package main

import (
	"fmt"
	"io"
	"os"
)

// command is one subcommand. run gets the arguments after the command name
// and returns the process exit status: 0 ok, 1 failure, 2 bad usage.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
	// hidden commands are for mkstack's own use (a child process of
	// another command) and are left out of the usage.
	hidden bool
}

// commands is filled by the init functions of the files that implement them,
// so each subcommand lives in its own file.
var commands []command

func register(c command) { commands = append(commands, c) }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "mkstack: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: mkstack COMMAND [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands {
		if !c.hidden {
			fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
		}
	}
}
