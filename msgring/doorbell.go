package msgring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Doorbell wakes one sleeping consumer. It wraps a non-blocking eventfd, so a
// core can wait on its doorbell and its NIC queue in one poll or epoll call.
//
// Any number of producers may call Ring. Exactly one consumer calls
// PrepareSleep, CancelSleep, Wait and Clear.
type Doorbell struct {
	_        [cacheLine]byte
	sleeping atomic.Uint32 // 1 between PrepareSleep and the wake-up
	_        [cacheLine - 4]byte

	fd      int
	wakeups atomic.Uint64  // eventfd writes by producers, counted once written
	sleeps  atomic.Uint64  // Wait calls that blocked
	pollfds [1]unix.PollFd // consumer only; kept here so Wait does not allocate
	cleared uint64         // consumer only: wakeups as of the last read of the eventfd
	_       [cacheLine - 40]byte
}

// ErrClosed is returned by Wait on a closed doorbell.
var ErrClosed = errors.New("msgring: doorbell closed")

// NewDoorbell creates a doorbell backed by a new eventfd.
func NewDoorbell() (*Doorbell, error) {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("msgring: create doorbell eventfd: %w", err)
	}
	return &Doorbell{fd: fd}, nil
}

// Fd returns the eventfd, readable while a wake-up is pending. A consumer
// that polls it together with other descriptors calls Clear after it wakes.
func (d *Doorbell) Fd() int { return d.fd }

// Ring wakes the consumer if it announced that it sleeps. While the consumer
// is awake it costs one atomic load and makes no system call. Call it after
// the enqueue that the consumer must see.
func (d *Doorbell) Ring() {
	if d.sleeping.Load() == 0 {
		return
	}
	// Only the producer that wins the swap writes, so a burst of producers
	// finding the consumer asleep costs one system call, not one each.
	if !d.sleeping.CompareAndSwap(1, 0) {
		return
	}
	var one = [8]byte{1}
	// EAGAIN means the counter is already non-zero: the consumer will wake.
	_, _ = unix.Write(d.fd, one[:])
	// Counted after the write, so a consumer that sees the count (ClearRung)
	// finds the write in the eventfd.
	d.wakeups.Add(1)
}

// PrepareSleep announces that the consumer is about to sleep. The consumer
// must re-check everything it waits for after this call, then either Wait or
// CancelSleep.
func (d *Doorbell) PrepareSleep() { d.sleeping.Store(1) }

// CancelSleep withdraws PrepareSleep when the re-check found work.
func (d *Doorbell) CancelSleep() { d.sleeping.Store(0) }

// Asleep reports whether the consumer announced sleep and has not been woken.
func (d *Doorbell) Asleep() bool { return d.sleeping.Load() == 1 }

// Wait blocks until the doorbell rings or timeout passes (a negative timeout
// waits forever) and reports whether it was woken by a ring. Call it only
// after PrepareSleep and a re-check that found nothing.
func (d *Doorbell) Wait(timeout time.Duration) (woken bool, err error) {
	ms := -1
	if timeout >= 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	d.sleeps.Add(1)
	d.pollfds[0] = unix.PollFd{Fd: int32(d.fd), Events: unix.POLLIN}
	fds := d.pollfds[:]
	for {
		n, err := unix.Poll(fds, ms)
		if err == unix.EINTR {
			continue
		}
		d.sleeping.Store(0)
		if err != nil {
			return false, fmt.Errorf("msgring: wait on doorbell: %w", err)
		}
		if fds[0].Revents&unix.POLLNVAL != 0 {
			return false, ErrClosed
		}
		if n == 0 {
			return false, nil
		}
		d.Clear()
		return true, nil
	}
}

// Clear consumes a pending wake-up, so the eventfd stops polling readable.
func (d *Doorbell) Clear() {
	w := d.wakeups.Load()
	var buf [8]byte
	_, _ = unix.Read(d.fd, buf[:])
	d.cleared = w
}

// ClearRung is Clear for a consumer that woke without learning which of
// its descriptors were ready (a goroutine parked in Go's network poller):
// it reads the eventfd only if a producer wrote it since the last Clear,
// so a wake-up that came from elsewhere costs no system call. A write is
// counted only once it is in the eventfd, so the read finds every write
// the count names; one that lands after the count was taken is found by
// the next ClearRung (its count differs by then), and one that lands
// between the count and the read is consumed early and costs the next
// ClearRung a read that finds nothing. Consumer only.
func (d *Doorbell) ClearRung() {
	if d.wakeups.Load() != d.cleared {
		d.Clear()
	}
}

// Wakeups returns how many times a producer woke the consumer with a system
// call.
func (d *Doorbell) Wakeups() uint64 { return d.wakeups.Load() }

// Sleeps returns how many times the consumer blocked in Wait.
func (d *Doorbell) Sleeps() uint64 { return d.sleeps.Load() }

// Close releases the eventfd.
func (d *Doorbell) Close() error {
	if err := unix.Close(d.fd); err != nil {
		return fmt.Errorf("msgring: close doorbell: %w", err)
	}
	return nil
}
