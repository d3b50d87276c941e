//go:build linux && cgo

package main

// The Go side of the C wrappers in shim.go. packetdrill loads the library
// once per process and runs one script, so the plugin is one global.

/*
#include <poll.h>
#include <stddef.h>
#include <sys/uio.h>
*/
import "C"

import (
	"os"
	"syscall"
	"unsafe"
)

var pd *plugin

func tid() int { return syscall.Gettid() }

func bytesAt(p unsafe.Pointer, n int) []byte {
	if p == nil || n <= 0 {
		return nil
	}
	return unsafe.Slice((*byte)(p), n)
}

func ret(n int, e syscall.Errno, errp *C.int) C.int {
	*errp = C.int(e)
	return C.int(n)
}

//export pdInit
func pdInit(flags *C.char) {
	var s string
	if flags != nil {
		s = C.GoString(flags)
	}
	opts, err := parseOptions(s)
	if err != nil {
		os.Stderr.WriteString("mkstack plugin: " + err.Error() + "\n")
		os.Exit(1)
	}
	p, err := newPlugin(opts, tid())
	if err != nil {
		os.Stderr.WriteString("mkstack plugin: " + err.Error() + "\n")
		os.Exit(1)
	}
	pd = p
	go p.ticker()
}

//export pdFree
func pdFree() {
	pd.closeAll(tid())
}

//export pdSocket
func pdSocket(domain, typ, proto C.int, errp *C.int) C.int {
	n, e := pd.socket(tid(), int(domain), int(typ), int(proto))
	return ret(n, e, errp)
}

//export pdBind
func pdBind(fd C.int, addr unsafe.Pointer, l C.uint, errp *C.int) C.int {
	n, e := pd.bind(tid(), int(fd), bytesAt(addr, int(l)))
	return ret(n, e, errp)
}

//export pdListen
func pdListen(fd, backlog C.int, errp *C.int) C.int {
	n, e := pd.listen(tid(), int(fd), int(backlog))
	return ret(n, e, errp)
}

//export pdAccept
func pdAccept(fd C.int, addr unsafe.Pointer, l *C.uint, errp *C.int) C.int {
	var sa []byte
	n, e := pd.accept(tid(), int(fd), &sa)
	if e == 0 && addr != nil && l != nil {
		k := copy(bytesAt(addr, int(*l)), sa)
		*l = C.uint(k)
	}
	return ret(n, e, errp)
}

//export pdConnect
func pdConnect(fd C.int, addr unsafe.Pointer, l C.uint, errp *C.int) C.int {
	n, e := pd.connect(tid(), int(fd), bytesAt(addr, int(l)))
	return ret(n, e, errp)
}

func iovecs(iov unsafe.Pointer, n C.int) [][]byte {
	if iov == nil || n <= 0 {
		return nil
	}
	vs := unsafe.Slice((*C.struct_iovec)(iov), int(n))
	bufs := make([][]byte, len(vs))
	for i, v := range vs {
		bufs[i] = bytesAt(v.iov_base, int(v.iov_len))
	}
	return bufs
}

// peerAddr fills recvfrom's and recvmsg's source address with the
// connection's peer, when the caller asked for it.
func peerAddr(fd C.int, addr unsafe.Pointer, l *C.uint) {
	if addr == nil || l == nil {
		return
	}
	pd.mu.Lock()
	var sa []byte
	if s := pd.fds[int(fd)]; s != nil && s.conn != nil {
		sa = sockaddr(s.conn.RemoteAddr().As4(), s.conn.RemotePort())
	}
	pd.mu.Unlock()
	*l = C.uint(copy(bytesAt(addr, int(*l)), sa))
}

//export pdRecv
func pdRecv(fd C.int, iov unsafe.Pointer, n C.int, flags C.int, addr unsafe.Pointer, l *C.uint, errp *C.int) C.long {
	r, e := pd.recv(tid(), int(fd), iovecs(iov, n), int(flags))
	if e == 0 {
		peerAddr(fd, addr, l)
	}
	*errp = C.int(e)
	return C.long(r)
}

//export pdRecvmsg
func pdRecvmsg(fd C.int, iov unsafe.Pointer, n C.int, flags C.int, addr unsafe.Pointer, l *C.uint, inq *C.int, errp *C.int) C.long {
	r, e, hint := pd.recvmsg(tid(), int(fd), iovecs(iov, n), int(flags))
	if e == 0 {
		peerAddr(fd, addr, l)
	}
	*inq = C.int(hint)
	*errp = C.int(e)
	return C.long(r)
}

//export pdSend
func pdSend(fd C.int, iov unsafe.Pointer, n C.int, flags C.int, errp *C.int) C.long {
	r, e := pd.send(tid(), int(fd), iovecs(iov, n), int(flags))
	*errp = C.int(e)
	return C.long(r)
}

//export pdFcntl
func pdFcntl(fd, cmd C.int, arg C.long, errp *C.int) C.int {
	n, e := pd.fcntl(tid(), int(fd), int(cmd), int64(arg))
	return ret(n, e, errp)
}

//export pdIoctl
func pdIoctl(fd C.int, req C.ulong, arg *C.int, errp *C.int) C.int {
	var v int32
	if arg != nil {
		v = int32(*arg)
	}
	var vp *int32
	if arg != nil {
		vp = &v
	}
	n, e := pd.ioctl(tid(), int(fd), uint64(req), vp)
	if arg != nil && e == 0 {
		*arg = C.int(v)
	}
	return ret(n, e, errp)
}

//export pdClose
func pdClose(fd C.int, errp *C.int) C.int {
	n, e := pd.close(tid(), int(fd))
	return ret(n, e, errp)
}

//export pdShutdown
func pdShutdown(fd, how C.int, errp *C.int) C.int {
	n, e := pd.shutdown(tid(), int(fd), int(how))
	return ret(n, e, errp)
}

//export pdGetsockopt
func pdGetsockopt(fd, level, name C.int, val unsafe.Pointer, l *C.uint, errp *C.int) C.int {
	var out []byte
	n, e := pd.getsockopt(tid(), int(fd), int(level), int(name), &out)
	if e == 0 && l != nil {
		*l = C.uint(copy(bytesAt(val, int(*l)), out))
	}
	return ret(n, e, errp)
}

//export pdSetsockopt
func pdSetsockopt(fd, level, name C.int, val unsafe.Pointer, l C.uint, errp *C.int) C.int {
	n, e := pd.setsockopt(tid(), int(fd), int(level), int(name), append([]byte(nil), bytesAt(val, int(l))...))
	return ret(n, e, errp)
}

//export pdPoll
func pdPoll(fds unsafe.Pointer, n C.int, timeout C.int, errp *C.int) C.int {
	var pfs []C.struct_pollfd
	if fds != nil && n > 0 {
		pfs = unsafe.Slice((*C.struct_pollfd)(fds), int(n))
	}
	in := make([]pollFD, len(pfs))
	for i, f := range pfs {
		in[i] = pollFD{fd: int(f.fd), events: int16(f.events)}
	}
	r, e := pd.poll(tid(), in, int(timeout))
	for i := range pfs {
		pfs[i].revents = C.short(in[i].revent)
	}
	return ret(r, e, errp)
}

//export pdNetdevSend
func pdNetdevSend(buf unsafe.Pointer, n C.size_t) C.int {
	return C.int(pd.netdevSend(tid(), append([]byte(nil), bytesAt(buf, int(n))...)))
}

//export pdNetdevReceive
func pdNetdevReceive(buf unsafe.Pointer, n *C.size_t, at *C.longlong) C.int {
	k, us := pd.netdevReceive(tid(), bytesAt(buf, int(*n)))
	*n = C.size_t(k)
	*at = C.longlong(us)
	return 0
}

//export pdUsleep
func pdUsleep(us C.uint) {
	pd.usleep(tid(), int64(us))
}

//export pdGettimeofday
func pdGettimeofday() C.longlong {
	return C.longlong(pd.gettimeofday(tid()))
}
