// Package memcache is the memcached text protocol and a memory-bounded
// item store, for `mkstack serve --app memcached`. It owns parsing requests
// (Parse: zero-copy views of the input, no allocation), the protocol's
// replies, and Store: one core's items with LRU eviction under a byte
// bound, expiry, CAS and the statistics memcached reports. It knows nothing
// of cores, connections or the network: the server in cmd/mkstack shards
// Stores across cores and carries requests between them.
//
// The protocol is memcached's protocol.txt (as memcached 1.6 answers it):
// get, gets, gat, gats, set, add, replace, append, prepend, cas, delete,
// incr, decr, touch, flush_all, stats, version, verbosity, quit, with
// noreply; keys of at most 250 bytes; values up to a configured bound (1 MiB
// by default); ERROR, CLIENT_ERROR and SERVER_ERROR replies for bad input.
package memcache

import (
	"bytes"
)

// Limits of the protocol.
const (
	// MaxKeyLen is the longest key memcached accepts.
	MaxKeyLen = 250
	// DefaultMaxValue is the largest value stored by default (memcached's
	// -I default, 1 MiB).
	DefaultMaxValue = 1 << 20
	// MaxLine is the longest command line accepted; a line that reaches it
	// without its newline is refused and the connection closed. It holds a
	// get of about 250 keys of the longest size.
	MaxLine = 64 << 10
)

// Op is a command.
type Op uint8

// The commands.
const (
	OpNone Op = iota
	OpGet
	OpGets
	OpGat
	OpGats
	OpSet
	OpAdd
	OpReplace
	OpAppend
	OpPrepend
	OpCas
	OpDelete
	OpIncr
	OpDecr
	OpTouch
	OpFlushAll
	OpStats
	OpVersion
	OpVerbosity
	OpQuit
	numOps
)

var opNames = [numOps]string{
	OpNone: "none", OpGet: "get", OpGets: "gets", OpGat: "gat", OpGats: "gats",
	OpSet: "set", OpAdd: "add", OpReplace: "replace", OpAppend: "append", OpPrepend: "prepend", OpCas: "cas",
	OpDelete: "delete", OpIncr: "incr", OpDecr: "decr", OpTouch: "touch",
	OpFlushAll: "flush_all", OpStats: "stats", OpVersion: "version", OpVerbosity: "verbosity", OpQuit: "quit",
}

// String returns the command's name on the wire.
func (op Op) String() string {
	if op < numOps {
		return opNames[op]
	}
	return "op?"
}

// IsRetrieval reports whether op answers with VALUE lines and END.
func (op Op) IsRetrieval() bool { return op >= OpGet && op <= OpGats }

// IsStorage reports whether op carries a data block.
func (op Op) IsStorage() bool { return op >= OpSet && op <= OpCas }

// Command is one parsed request. Its byte slices are views of the input
// given to Parse, valid as long as that input is.
type Command struct {
	Op Op
	// Keys are the keys: one for every command that takes a key, one or
	// more for the retrieval commands. The slice is reused by Parse.
	Keys    [][]byte
	Flags   uint32
	Exptime int64 // storage, touch, gat, gats: as sent (relative, absolute or negative)
	Cas     uint64
	Delta   uint64 // incr, decr
	Delay   int64  // flush_all
	NoReply bool
	// Data is the data block of a storage command, without its \r\n.
	Data []byte
	// Stats is the argument of stats ("" for general statistics).
	Stats []byte
	// Need is, after Parse returned 0 bytes and no error for a storage
	// command whose line is complete, the bytes the whole request takes;
	// otherwise 0 (a line is still incomplete).
	Need int
	// Swallow is, after ErrTooLarge, how many bytes of data follow the
	// line and must be skipped.
	Swallow int
}

// Error is a request the protocol refuses, with the reply it gets.
type Error struct {
	reply []byte
	// Close: the connection cannot be resynchronised and is closed after
	// the reply.
	Close bool
}

func (e *Error) Error() string { return string(bytes.TrimSpace(e.reply)) }

// Reply is the line to send, with its \r\n.
func (e *Error) Reply() []byte { return e.reply }

func newError(s string, close bool) *Error { return &Error{reply: []byte(s + "\r\n"), Close: close} }

// The errors of Parse.
var (
	ErrUnknownCommand = newError("ERROR", false)
	ErrBadFormat      = newError("CLIENT_ERROR bad command line format", false)
	ErrBadDelete      = newError("CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]", false)
	ErrBadDataChunk   = newError("CLIENT_ERROR bad data chunk", false)
	ErrBadDelta       = newError("CLIENT_ERROR invalid numeric delta argument", false)
	ErrBadExptime     = newError("CLIENT_ERROR invalid exptime argument", false)
	ErrTooLarge       = newError("SERVER_ERROR object too large for cache", false)
	ErrLineTooLong    = newError("CLIENT_ERROR line too long", true)
)

// maxTokens bounds the tokens of a line that is not a retrieval: more
// than any command takes, so such a line is refused whole.
const maxTokens = 8

// Parse parses the request at the start of p into cmd. It returns:
//
//   - n > 0 and a nil error: a request of n bytes;
//   - n == 0 and a nil error: p does not hold a whole request yet (for a
//     storage command whose line is complete, cmd.Need says how many bytes
//     it takes);
//   - n > 0 and an *Error: a bad request of n bytes (its line, or for a bad
//     data chunk the line and the block), to be answered with the error's
//     reply; after ErrTooLarge, cmd.Swallow more bytes of data follow and
//     must be skipped;
//   - n == 0 and ErrLineTooLong: MaxLine bytes without a newline.
//
// maxValue bounds the data block of a storage command (0: DefaultMaxValue).
// Parse does not allocate once cmd.Keys has grown to the number of keys
// of the largest get.
func Parse(p []byte, cmd *Command, maxValue int) (int, error) {
	if maxValue <= 0 {
		maxValue = DefaultMaxValue
	}
	cmd.Keys = cmd.Keys[:0]
	cmd.Op, cmd.Flags, cmd.Exptime, cmd.Cas, cmd.Delta, cmd.Delay = OpNone, 0, 0, 0, 0, 0
	cmd.NoReply, cmd.Data, cmd.Stats, cmd.Need, cmd.Swallow = false, nil, nil, 0, 0
	eol := bytes.IndexByte(p, '\n')
	if eol < 0 {
		if len(p) >= MaxLine {
			return 0, ErrLineTooLong
		}
		return 0, nil
	}
	if eol >= MaxLine {
		return 0, ErrLineTooLong
	}
	n := eol + 1
	line := p[:eol]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	name, rest := nextToken(line)
	op := lookup(name)
	switch {
	case op == OpNone:
		return n, ErrUnknownCommand
	case op.IsRetrieval():
		return n, parseRetrieval(op, rest, cmd)
	}
	var tok [maxTokens][]byte
	nt := 0
	for {
		var t []byte
		t, rest = nextToken(rest)
		if t == nil {
			break
		}
		if nt == maxTokens {
			return n, ErrUnknownCommand
		}
		tok[nt] = t
		nt++
	}
	args := tok[:nt]
	cmd.Op = op
	if op.IsStorage() {
		return parseStorage(p, n, args, cmd, maxValue)
	}
	return n, parseOther(op, args, cmd)
}

// nextToken returns the first space-separated token of s and the rest, or
// nil when there is none.
func nextToken(s []byte) (tok, rest []byte) {
	i := 0
	for i < len(s) && s[i] == ' ' {
		i++
	}
	if i == len(s) {
		return nil, nil
	}
	j := i
	for j < len(s) && s[j] != ' ' {
		j++
	}
	return s[i:j], s[j:]
}

func lookup(name []byte) Op {
	switch len(name) {
	case 3:
		switch string(name) {
		case "get":
			return OpGet
		case "set":
			return OpSet
		case "add":
			return OpAdd
		case "cas":
			return OpCas
		case "gat":
			return OpGat
		}
	case 4:
		switch string(name) {
		case "gets":
			return OpGets
		case "gats":
			return OpGats
		case "incr":
			return OpIncr
		case "decr":
			return OpDecr
		case "quit":
			return OpQuit
		}
	default:
		switch string(name) {
		case "delete":
			return OpDelete
		case "replace":
			return OpReplace
		case "append":
			return OpAppend
		case "prepend":
			return OpPrepend
		case "touch":
			return OpTouch
		case "flush_all":
			return OpFlushAll
		case "stats":
			return OpStats
		case "version":
			return OpVersion
		case "verbosity":
			return OpVerbosity
		}
	}
	return OpNone
}

func parseRetrieval(op Op, rest []byte, cmd *Command) error {
	cmd.Op = op
	if op == OpGat || op == OpGats {
		var t []byte
		t, rest = nextToken(rest)
		if t == nil {
			return ErrUnknownCommand
		}
		exp, ok := parseInt(t)
		if !ok {
			return ErrBadExptime
		}
		cmd.Exptime = exp
	}
	for {
		var k []byte
		k, rest = nextToken(rest)
		if k == nil {
			break
		}
		if len(k) > MaxKeyLen {
			return ErrBadFormat
		}
		cmd.Keys = append(cmd.Keys, k)
	}
	if len(cmd.Keys) == 0 && (op == OpGet || op == OpGets) {
		return ErrUnknownCommand // gat and gats without keys answer END
	}
	return nil
}

// parseStorage parses "<cmd> <key> <flags> <exptime> <bytes> [<cas>]
// [noreply]" (the line is p[:n]) and its data block.
func parseStorage(p []byte, n int, args [][]byte, cmd *Command, maxValue int) (int, error) {
	want := 4
	if cmd.Op == OpCas {
		want = 5
	}
	if len(args) != want && len(args) != want+1 {
		return n, ErrUnknownCommand
	}
	if len(args) == want+1 {
		// memcached ignores a last token other than noreply.
		cmd.NoReply = string(args[want]) == "noreply"
	}
	key := args[0]
	if len(key) > MaxKeyLen {
		return n, ErrBadFormat
	}
	flags, ok1 := parseUint(args[1])
	exp, ok2 := parseInt(args[2])
	size, ok3 := parseInt(args[3])
	if !ok1 || !ok2 || !ok3 || flags > 1<<32-1 || size < 0 || size > 1<<31-3 {
		return n, ErrBadFormat
	}
	if cmd.Op == OpCas {
		cas, ok := parseUint(args[4])
		if !ok {
			return n, ErrBadFormat
		}
		cmd.Cas = cas
	}
	cmd.Keys = append(cmd.Keys, key)
	cmd.Flags, cmd.Exptime = uint32(flags), exp
	if size > int64(maxValue) {
		cmd.Swallow = int(size) + 2
		return n, ErrTooLarge
	}
	total := n + int(size) + 2
	if len(p) < total {
		cmd.Need = total
		return 0, nil
	}
	if p[total-2] != '\r' || p[total-1] != '\n' {
		return total, ErrBadDataChunk
	}
	cmd.Data = p[n : total-2]
	return total, nil
}

func parseOther(op Op, args [][]byte, cmd *Command) error {
	noreply := func(k int) bool {
		// k arguments, or one more: noreply (memcached ignores another
		// word there).
		if len(args) == k+1 {
			cmd.NoReply = string(args[k]) == "noreply"
			return true
		}
		return len(args) == k
	}
	key := func() error {
		if len(args[0]) > MaxKeyLen {
			return ErrBadFormat
		}
		cmd.Keys = append(cmd.Keys, args[0])
		return nil
	}
	switch op {
	case OpDelete:
		// delete <key> [0] [noreply]
		switch {
		case len(args) < 1 || len(args) > 3:
			return ErrUnknownCommand
		case len(args) == 1:
		case len(args) == 2 && (string(args[1]) == "0" || string(args[1]) == "noreply"):
			cmd.NoReply = string(args[1]) == "noreply"
		case len(args) == 3 && string(args[1]) == "0" && string(args[2]) == "noreply":
			cmd.NoReply = true
		default:
			return ErrBadDelete
		}
		return key()
	case OpIncr, OpDecr:
		if len(args) < 2 || !noreply(2) {
			return ErrUnknownCommand
		}
		d, ok := parseUint(args[1])
		if !ok {
			return ErrBadDelta
		}
		cmd.Delta = d
		return key()
	case OpTouch:
		if len(args) < 2 || !noreply(2) {
			return ErrUnknownCommand
		}
		exp, ok := parseInt(args[1])
		if !ok {
			return ErrBadExptime
		}
		cmd.Exptime = exp
		return key()
	case OpFlushAll:
		switch {
		case len(args) > 2:
			return ErrUnknownCommand
		case len(args) == 0:
		case len(args) == 1 && string(args[0]) == "noreply":
			cmd.NoReply = true
		default:
			d, ok := parseInt(args[0])
			if !ok || !noreply(1) {
				return ErrBadFormat
			}
			cmd.Delay = d
		}
		return nil
	case OpStats:
		if len(args) > 1 {
			return ErrUnknownCommand
		}
		if len(args) == 1 {
			cmd.Stats = args[0]
		}
		return nil
	case OpVerbosity:
		// As memcached: verbosity <level> [noreply], and "verbosity
		// noreply" sets level 0 silently.
		if len(args) < 1 || len(args) > 2 {
			return ErrUnknownCommand
		}
		cmd.NoReply = string(args[len(args)-1]) == "noreply"
		return nil
	case OpVersion, OpQuit:
		// memcached 1.6 ignores their arguments.
		return nil
	}
	return ErrUnknownCommand
}

// parseUint parses a decimal number of at most 20 digits that fits in 64
// bits.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// parseInt parses a decimal number with an optional minus sign.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	v, ok := parseUint(b)
	if !ok || v > 1<<63-1 {
		return 0, false
	}
	if neg {
		return -int64(v), true
	}
	return int64(v), true
}

// Replies without arguments.
var (
	ReplyStored      = []byte("STORED\r\n")
	ReplyNotStored   = []byte("NOT_STORED\r\n")
	ReplyExists      = []byte("EXISTS\r\n")
	ReplyNotFound    = []byte("NOT_FOUND\r\n")
	ReplyDeleted     = []byte("DELETED\r\n")
	ReplyTouched     = []byte("TOUCHED\r\n")
	ReplyEnd         = []byte("END\r\n")
	ReplyOK          = []byte("OK\r\n")
	ReplyReset       = []byte("RESET\r\n")
	ReplyNonNumeric  = []byte("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
	ReplyOutOfMemory = []byte("SERVER_ERROR out of memory storing object\r\n")
)

// AppendValue appends a retrieval's VALUE line, the data and its \r\n;
// withCas adds the CAS unique (gets, gats).
func AppendValue(dst, key []byte, flags uint32, data []byte, cas uint64, withCas bool) []byte {
	dst = append(dst, "VALUE "...)
	dst = append(dst, key...)
	dst = append(dst, ' ')
	dst = appendUint(dst, uint64(flags))
	dst = append(dst, ' ')
	dst = appendUint(dst, uint64(len(data)))
	if withCas {
		dst = append(dst, ' ')
		dst = appendUint(dst, cas)
	}
	dst = append(dst, "\r\n"...)
	dst = append(dst, data...)
	return append(dst, "\r\n"...)
}

// AppendNumber appends the reply to incr or decr: the new value.
func AppendNumber(dst []byte, v uint64) []byte {
	return append(appendUint(dst, v), "\r\n"...)
}

// AppendStat appends "STAT name value\r\n".
func AppendStat(dst []byte, name string, v uint64) []byte {
	dst = append(dst, "STAT "...)
	dst = append(dst, name...)
	dst = append(dst, ' ')
	return append(appendUint(dst, v), "\r\n"...)
}

// AppendStatString appends "STAT name value\r\n" for a text value.
func AppendStatString(dst []byte, name, v string) []byte {
	dst = append(dst, "STAT "...)
	dst = append(dst, name...)
	dst = append(dst, ' ')
	dst = append(dst, v...)
	return append(dst, "\r\n"...)
}

func appendUint(dst []byte, v uint64) []byte {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(dst, b[i:]...)
}
