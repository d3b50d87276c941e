package core

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// The runtime's only system call of its own: blocking on the descriptors of
// a core's queues and doorbell. Everything else it does goes through
// msgring, nicq and affinity.

// pollSet is the descriptors an idle core blocks on, kept in the core so
// that sleeping does not allocate.
type pollSet struct {
	fds []unix.PollFd
}

func newPollSet(fds []int) pollSet {
	p := pollSet{fds: make([]unix.PollFd, len(fds))}
	for i, fd := range fds {
		p.fds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	return p
}

// wait blocks until one of the descriptors is readable or timeout passes
// (negative: no timeout; rounded up to whole milliseconds) and returns how
// many are readable. A wait a signal interrupts returns 0 like a timeout:
// the core looks again and computes a fresh timeout.
func (p *pollSet) wait(timeout time.Duration) (int, error) {
	ms := -1
	if timeout >= 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	for i := range p.fds {
		p.fds[i].Revents = 0
	}
	n, err := unix.Poll(p.fds, ms)
	if err == unix.EINTR {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	for i := range p.fds {
		if p.fds[i].Revents&unix.POLLNVAL != 0 {
			return 0, errClosedFD
		}
	}
	return n, nil
}

// errClosedFD: a descriptor the core waits on was closed under it (its NIC
// or doorbell closed while it ran).
var errClosedFD = errors.New("a wait descriptor is closed")

// ready reports whether descriptor i polled readable in the last wait.
func (p *pollSet) ready(i int) bool { return p.fds[i].Revents&unix.POLLIN != 0 }

// threadID returns the calling thread's kernel id, so tests can tell that
// a call ran on a core's own thread.
func threadID() int { return unix.Gettid() }
