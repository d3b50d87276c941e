package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"strings"

	"github.com/mkstack/mkstack/rss"
)

func init() {
	register(command{name: "rss", summary: "print the RSS hash and receive queue of a packet from SRC to DST", run: runRSS})
}

const rssUsage = `usage: mkstack rss [--key default|symmetric|HEX] [--proto tcp|udp|ip] [--queues N] [--reta-size M] SRC_IP[:PORT] DST_IP[:PORT]

Prints hash=0xHHHHHHHH queue=N for a packet arriving with that source and
destination, as a NIC with that key and an equally filled indirection table
steers it: queue = reta[hash % M], entry i of the table being queue i % N.
IPv6 addresses with a port take brackets: [2001:db8::1]:80.

flags:
  --key KEY      Toeplitz key: default (the Microsoft specification's), symmetric
                 (0x6d5a repeated), or 40 or 52 hex bytes as ethtool -x prints
                 them (6d:5a:56:...) or comma-separated (default "default")
  --proto P      tcp or udp hash addresses and ports; ip hashes addresses only
                 (default "tcp")
  --queues N     receive queues (default: one per CPU, at most M)
  --reta-size M  indirection table entries, 64 to 512 (default 128)
`

func runRSS(args []string, stdout, stderr io.Writer) int {
	line, err := rssLine(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, rssUsage)
		return 0
	case err != nil:
		// Every error is in what was asked: a one-line message, status 2.
		// The library's "rss: " prefix would repeat the command's.
		fmt.Fprintf(stderr, "mkstack rss: %s\n", strings.ReplaceAll(err.Error(), "rss: ", ""))
		return 2
	}
	fmt.Fprintln(stdout, line)
	return 0
}

// rssLine parses the command line and returns the line to print.
func rssLine(args []string) (string, error) {
	fs := flag.NewFlagSet("rss", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line by runRSS
	keyFlag := fs.String("key", "default", "")
	protoFlag := fs.String("proto", "tcp", "")
	queues := fs.Int("queues", 0, "")
	retaSize := fs.Int("reta-size", rss.DefaultRETASize, "")

	// Flags may come before, between or after the two addresses.
	var addrs []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return "", err
			}
			return "", fmt.Errorf("%v (mkstack rss -h for usage)", err)
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		addrs, rest = append(addrs, rest[0]), rest[1:]
	}
	if len(addrs) != 2 {
		return "", fmt.Errorf("want SRC_IP[:PORT] DST_IP[:PORT], got %d arguments (mkstack rss -h for usage)", len(addrs))
	}

	key, err := rss.ParseKey(*keyFlag)
	if err != nil {
		return "", fmt.Errorf("--key: %w", err)
	}
	if *queues == 0 {
		*queues = min(runtime.NumCPU(), *retaSize)
	}
	cfg, err := rss.NewConfig(rss.Options{Key: key, Queues: *queues, RETASize: *retaSize})
	if err != nil {
		return "", err
	}

	var eps [2]netip.AddrPort
	var hasPort [2]bool
	for i, s := range addrs {
		if eps[i], hasPort[i], err = rss.ParseEndpoint(s); err != nil {
			return "", err
		}
	}
	src, dst := eps[0], eps[1]
	if src.Addr().Is4() != dst.Addr().Is4() {
		return "", fmt.Errorf("%s and %s: source and destination must both be IPv4 or both IPv6", addrs[0], addrs[1])
	}

	var hash uint32
	switch *protoFlag {
	case "tcp", "udp":
		proto := rss.ProtoTCP
		if *protoFlag == "udp" {
			proto = rss.ProtoUDP
		}
		for i, side := range []string{"SRC", "DST"} {
			if !hasPort[i] {
				return "", fmt.Errorf("%s %s has no port; %s hashes ports (use --proto ip for addresses only)", side, addrs[i], *protoFlag)
			}
		}
		hash, err = cfg.HashAddrPorts(proto, src, dst)
	case "ip":
		for i, side := range []string{"SRC", "DST"} {
			if hasPort[i] {
				return "", fmt.Errorf("%s %s has a port, but --proto ip hashes addresses only", side, addrs[i])
			}
		}
		hash, err = cfg.HashAddrs(src.Addr(), dst.Addr())
	default:
		return "", fmt.Errorf("--proto %q: want tcp, udp or ip", *protoFlag)
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("hash=0x%08x queue=%d", hash, cfg.Queue(hash)), nil
}
