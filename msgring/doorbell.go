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
	wakeups atomic.Uint64  // eventfd writes by producers
	sleeps  atomic.Uint64  // Wait calls that blocked
	pollfds [1]unix.PollFd // consumer only; kept here so Wait does not allocate
	_       [cacheLine - 32]byte
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
	d.wakeups.Add(1)
	var one = [8]byte{1}
	// EAGAIN means the counter is already non-zero: the consumer will wake.
	_, _ = unix.Write(d.fd, one[:])
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
	var buf [8]byte
	_, _ = unix.Read(d.fd, buf[:])
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
