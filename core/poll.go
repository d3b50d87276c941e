package core

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The runtime's only system calls of its own: blocking on the descriptors
// of a core's queues and doorbell, either in poll(2) on the core's own
// thread or, for a core on shared threads, through an epoll set that Go's
// network poller watches. Everything else it does goes through msgring,
// nicq and affinity.

// pollSet is the descriptors an idle core blocks on, kept in the core so
// that sleeping does not allocate.
type pollSet struct {
	fds []unix.PollFd

	// For a core on shared threads (Threads): an epoll set holding fds,
	// registered with Go's network poller through ep; look is rc.Read's
	// callback, bound once so a wait does not allocate, and n and err
	// its results.
	ep   *os.File
	rc   syscall.RawConn
	look func(uintptr) bool
	n    int
	err  error
	// parked says this wait's callback has run once (see parkOnce), and
	// unknown that the wait woke without learning which descriptors
	// are ready: fds' Revents then say nothing. recheck is the core's
	// look at its queues and mailbox (bound once).
	parked, unknown bool
	recheck         func() bool
	// misses counts waits that ran out with a descriptor ready (see
	// sharedWaitCap); the core publishes it as SharedWaitMisses.
	misses uint64
	// polls counts poll(2) calls on a core on shared threads (tests, and
	// the Syscalls metric):
	// only a wait that runs out polls.
	polls uint64
}

// sharedWaitCap bounds a shared wait. The poller's wake-ups come through
// an epoll set inside its own epoll set; should one ever not come, the core
// finds its work at the cap rather than at its next timer (seconds away)
// or the peer's retransmission, and counts it. An idle core then wakes ten
// times a second, a few microseconds of CPU each.
const sharedWaitCap = 100 * time.Millisecond

func newPollSet(fds []int) pollSet {
	p := pollSet{fds: make([]unix.PollFd, len(fds))}
	for i, fd := range fds {
		p.fds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	return p
}

// share makes the set wait through Go's network poller: an epoll set of
// the descriptors (level-triggered, so a descriptor still readable when
// the core waits again counts), itself non-blocking and handed to os.File,
// which registers it with the poller. An event on any descriptor makes
// the epoll set readable, and the poller wakes the waiting core.
func (p *pollSet) share() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	for _, f := range p.fds {
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, int(f.Fd), &unix.EpollEvent{Events: unix.EPOLLIN, Fd: f.Fd}); err != nil {
			unix.Close(epfd)
			return fmt.Errorf("epoll_ctl add fd %d: %w", f.Fd, err)
		}
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return fmt.Errorf("epoll set non-blocking: %w", err)
	}
	ep := os.NewFile(uintptr(epfd), "core-epoll")
	// NewFile falls back to a blocking file when the poller will not take
	// the descriptor; deadlines then fail, which says so.
	if err := ep.SetReadDeadline(time.Time{}); err != nil {
		ep.Close()
		return fmt.Errorf("register the epoll set with Go's network poller: %w", err)
	}
	rc, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		return err
	}
	p.ep, p.rc = ep, rc
	p.look = p.parkOnce
	return nil
}

// close lets go of the epoll set of a core on shared threads.
func (p *pollSet) close() {
	if p.ep != nil {
		p.ep.Close()
		p.ep, p.rc = nil, nil
	}
}

// lookNow polls the descriptors without blocking; it is done when one is
// readable or the poll failed.
func (p *pollSet) lookNow(uintptr) bool {
	p.polls++
	p.n, p.err = unix.Poll(p.fds, 0)
	if p.err == unix.EINTR {
		p.n, p.err = 0, nil
		return true // look again with a fresh timeout
	}
	return p.n > 0 || p.err != nil
}

// parkOnce is rc.Read's callback for a shared wait: the first call looks
// at the core's queues and mailbox in memory and says "not ready" if they
// are empty, so the goroutine parks in the poller; the call after the
// poller wakes it says "done". That look must come here, not only in
// core.sleep's re-check before the wait: rc.Read first forgets any
// wake-up the poller recorded (it resets the descriptor's ready state),
// so a frame or message that came between the re-check and rc.Read would
// wait for the next event or sharedWaitCap (with 2 cores, one net/http
// connection each, p99 97 ms). Work that comes after this look makes its
// descriptor ready anew, which wakes the park. Which descriptor woke the
// core need not be known (see core.sleep), so a shared sleep makes no
// poll(2) at all, where it made two.
func (p *pollSet) parkOnce(uintptr) bool {
	if !p.parked {
		p.parked = true
		return p.recheck != nil && p.recheck()
	}
	return true
}

// wait blocks until one of the descriptors is readable or timeout passes
// (negative: no timeout; on the core's own thread rounded up to whole
// milliseconds) and returns how many are readable. A wait a signal
// interrupts returns 0 like a timeout: the core looks again and computes
// a fresh timeout.
func (p *pollSet) wait(timeout time.Duration) (int, error) {
	for i := range p.fds {
		p.fds[i].Revents = 0
	}
	if p.rc != nil {
		return p.waitShared(timeout)
	}
	ms := -1
	if timeout >= 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	n, err := unix.Poll(p.fds, ms)
	if err == unix.EINTR {
		return 0, nil
	}
	return p.result(n, err)
}

// waitShared is wait for a core on shared threads: the goroutine parks in
// Go's network poller until the epoll set is readable or the deadline
// passes, and its thread runs other goroutines meanwhile.
func (p *pollSet) waitShared(timeout time.Duration) (int, error) {
	if timeout < 0 || timeout > sharedWaitCap {
		timeout = sharedWaitCap
	}
	p.ep.SetReadDeadline(time.Now().Add(timeout))
	p.n, p.err, p.parked, p.unknown = 0, nil, false, false
	if err := p.rc.Read(p.look); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if p.lookNow(0) && p.n > 0 {
				p.misses++
				return p.result(p.n, p.err)
			}
			return 0, p.err
		}
		return 0, err
	}
	p.unknown = true
	return 1, nil
}

func (p *pollSet) result(n int, err error) (int, error) {
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

// ready reports whether descriptor i polled readable in the last wait;
// after a wait that woke without polling (unknown), every one may be.
func (p *pollSet) ready(i int) bool { return p.unknown || p.fds[i].Revents&unix.POLLIN != 0 }

// threadID returns the calling thread's kernel id, so tests can tell that
// a call ran on a core's own thread.
func threadID() int { return unix.Gettid() }
