package bench

import (
	"bytes"
	"errors"
	"strconv"
)

// The http workload's request, and the response the handler-API server
// sends (net/http servers add a Date header; clients parse either).
var (
	httpRequest  = []byte("GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
	httpResponse = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
		strconv.Itoa(len(HTTPBody)) + "\r\n\r\n" + HTTPBody)
	crlf2 = []byte("\r\n\r\n")
)

// httpMessageLen returns the length of the HTTP/1.1 message at the start of
// b (headers and a Content-Length body), or 0 if b does not hold all of
// it yet, or -1 if the headers are malformed.
func httpMessageLen(b []byte) int {
	end := bytes.Index(b, crlf2)
	if end < 0 {
		return 0
	}
	head := b[:end]
	body := 0
	for line := range bytes.SplitSeq(head, []byte("\r\n")) {
		n, ok, err := contentLength(line)
		if err != nil {
			return -1
		}
		if ok {
			body = n
		}
	}
	total := end + len(crlf2) + body
	if total > len(b) {
		return 0
	}
	return total
}

// joined returns a and b as one slice, copying into scratch only when b is
// not empty (the ring wrapped).
func joined(a, b []byte, scratch *[]byte) []byte {
	if len(b) == 0 {
		return a
	}
	*scratch = append(append((*scratch)[:0], a...), b...)
	return *scratch
}

var errContentLength = errors.New("bad Content-Length")

// contentLength parses a header line (without its CRLF): the value of a
// Content-Length header, ok false for any other header.
func contentLength(line []byte) (n int, ok bool, err error) {
	k, v, found := bytes.Cut(line, []byte(":"))
	if !found || !bytes.EqualFold(bytes.TrimSpace(k), []byte("Content-Length")) {
		return 0, false, nil
	}
	v = bytes.TrimSpace(v)
	if len(v) == 0 || len(v) > 9 {
		return 0, false, errContentLength
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false, errContentLength
		}
		n = n*10 + int(c-'0')
	}
	return n, true, nil
}
