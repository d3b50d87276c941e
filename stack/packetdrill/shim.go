//go:build linux && cgo

package main

// The C side: packetdrill_interface_init and one wrapper per entry of
// packetdrill's struct packetdrill_interface (packetdrill.h), each calling
// the Go function of exports.go and setting errno from its result. The
// struct is declared here with packetdrill.h's layout, so the plugin builds
// without packetdrill's source.

/*
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

// The exports of exports.go (cgo cannot include _cgo_export.h in a preamble).
extern void pdInit(char *flags);
extern void pdFree(void);
extern int pdSocket(int domain, int type, int proto, int *err);
extern int pdBind(int fd, void *addr, unsigned int len, int *err);
extern int pdListen(int fd, int backlog, int *err);
extern int pdAccept(int fd, void *addr, unsigned int *len, int *err);
extern int pdConnect(int fd, void *addr, unsigned int len, int *err);
extern long pdRecv(int fd, void *iov, int n, int flags, void *addr, unsigned int *len, int *err);
extern long pdRecvmsg(int fd, void *iov, int n, int flags, void *addr, unsigned int *len, int *inq, int *err);
extern long pdSend(int fd, void *iov, int n, int flags, int *err);
extern int pdFcntl(int fd, int cmd, long arg, int *err);
extern int pdIoctl(int fd, unsigned long req, int *arg, int *err);
extern int pdClose(int fd, int *err);
extern int pdShutdown(int fd, int how, int *err);
extern int pdGetsockopt(int fd, int level, int name, void *val, unsigned int *len, int *err);
extern int pdSetsockopt(int fd, int level, int name, void *val, unsigned int len, int *err);
extern int pdPoll(void *fds, int n, int timeout, int *err);
extern int pdNetdevSend(void *buf, size_t n);
extern int pdNetdevReceive(void *buf, size_t *n, long long *at);
extern void pdUsleep(unsigned int us);
extern long long pdGettimeofday(void);

struct packetdrill_interface {
	void *userdata;
	void (*free)(void *userdata);
	int (*socket)(void *userdata, int domain, int type, int protocol);
	int (*bind)(void *userdata, int sockfd, const struct sockaddr *addr, socklen_t addrlen);
	int (*listen)(void *userdata, int sockfd, int backlog);
	int (*accept)(void *userdata, int sockfd, struct sockaddr *addr, socklen_t *addrlen);
	int (*connect)(void *userdata, int sockfd, const struct sockaddr *addr, socklen_t addrlen);
	ssize_t (*read)(void *userdata, int fd, void *buf, size_t count);
	ssize_t (*readv)(void *userdata, int fd, const struct iovec *iov, int iovcnt);
	ssize_t (*recv)(void *userdata, int sockfd, void *buf, size_t len, int flags);
	ssize_t (*recvfrom)(void *userdata, int sockfd, void *buf, size_t len, int flags, struct sockaddr *src_addr, socklen_t *addrlen);
	ssize_t (*recvmsg)(void *userdata, int sockfd, struct msghdr *msg, int flags);
	ssize_t (*write)(void *userdata, int fd, const void *buf, size_t count);
	ssize_t (*writev)(void *userdata, int fd, const struct iovec *iov, int iovcnt);
	ssize_t (*send)(void *userdata, int sockfd, const void *buf, size_t len, int flags);
	ssize_t (*sendto)(void *userdata, int sockfd, const void *buf, size_t len, int flags, const struct sockaddr *dest_addr, socklen_t addrlen);
	ssize_t (*sendmsg)(void *userdata, int sockfd, const struct msghdr *msg, int flags);
	int (*fcntl)(void *userdata, int fd, int cmd, ...);
	int (*ioctl)(void *userdata, int fd, unsigned long request, ...);
	int (*close)(void *userdata, int fd);
	int (*shutdown)(void *userdata, int sockfd, int how);
	int (*getsockopt)(void *userdata, int sockfd, int level, int optname, void *optval, socklen_t *optlen);
	int (*setsockopt)(void *userdata, int sockfd, int level, int optname, const void *optval, socklen_t optlen);
	int (*poll)(void *userdata, struct pollfd *fds, nfds_t nfds, int timeout);
	int (*netdev_send)(void *userdata, const void *buf, size_t count);
	int (*netdev_receive)(void *userdata, void *buf, size_t *count, long long *time_usecs);
	int (*usleep)(void *userdata, useconds_t usec);
	int (*gettimeofday)(void *userdata, struct timeval *tv, struct timezone *tz);
	int (*epoll_create)(void *userdata, int size);
	int (*epoll_ctl)(void *userdata, int epfd, int op, int fd, struct epoll_event *event);
	int (*epoll_wait)(void *userdata, int epfd, struct epoll_event *events, int maxevents, int timeout);
	int (*pipe)(void *userdata, int pipefd[2]);
	int (*splice)(void *userdata, int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len, unsigned int flags);
};

#define RET(r, e) do { if ((r) < 0) errno = (e); return (r); } while (0)

static void w_free(void *u) { pdFree(); }
static int w_socket(void *u, int d, int t, int p) { int e = 0; int r = pdSocket(d, t, p, &e); RET(r, e); }
static int w_bind(void *u, int fd, const struct sockaddr *a, socklen_t l) { int e = 0; int r = pdBind(fd, (void *)a, l, &e); RET(r, e); }
static int w_listen(void *u, int fd, int b) { int e = 0; int r = pdListen(fd, b, &e); RET(r, e); }
static int w_accept(void *u, int fd, struct sockaddr *a, socklen_t *l) { int e = 0; int r = pdAccept(fd, (void *)a, (unsigned int *)l, &e); RET(r, e); }
static int w_connect(void *u, int fd, const struct sockaddr *a, socklen_t l) { int e = 0; int r = pdConnect(fd, (void *)a, l, &e); RET(r, e); }

static ssize_t w_recvmsg_iov(int fd, struct iovec *iov, int n, int flags, struct sockaddr *a, socklen_t *l) {
	int e = 0;
	long r = pdRecv(fd, (void *)iov, n, flags, (void *)a, (unsigned int *)l, &e);
	RET(r, e);
}
static ssize_t w_read(void *u, int fd, void *b, size_t c) { struct iovec v = { b, c }; return w_recvmsg_iov(fd, &v, 1, 0, NULL, NULL); }
static ssize_t w_readv(void *u, int fd, const struct iovec *iov, int n) { return w_recvmsg_iov(fd, (struct iovec *)iov, n, 0, NULL, NULL); }
static ssize_t w_recv(void *u, int fd, void *b, size_t c, int f) { struct iovec v = { b, c }; return w_recvmsg_iov(fd, &v, 1, f, NULL, NULL); }
static ssize_t w_recvfrom(void *u, int fd, void *b, size_t c, int f, struct sockaddr *a, socklen_t *l) { struct iovec v = { b, c }; return w_recvmsg_iov(fd, &v, 1, f, a, l); }
// w_recvmsg adds the one control message the plugin has, TCP_CM_INQ
// (TCP_INQ), as Linux's put_cmsg does: truncated to nothing, with
// MSG_CTRUNC, if the control buffer has no room for it.
static ssize_t w_recvmsg(void *u, int fd, struct msghdr *m, int f) {
	socklen_t l = m->msg_namelen;
	int e = 0, inq = -1;
	long r = pdRecvmsg(fd, (void *)m->msg_iov, (int)m->msg_iovlen, f, m->msg_name, m->msg_name ? &l : NULL, &inq, &e);
	size_t room = m->msg_control ? m->msg_controllen : 0;
	if (m->msg_name) m->msg_namelen = l;
	m->msg_controllen = 0;
	m->msg_flags = 0;
	if (r >= 0 && inq >= 0) {
		if (room >= CMSG_LEN(sizeof(int))) {
			struct cmsghdr *cm = (struct cmsghdr *)m->msg_control;
			cm->cmsg_level = 6; // SOL_TCP
			cm->cmsg_type = 36; // TCP_CM_INQ
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &inq, sizeof(int));
			m->msg_controllen = room < CMSG_SPACE(sizeof(int)) ? room : CMSG_SPACE(sizeof(int));
		} else {
			m->msg_flags |= MSG_CTRUNC;
		}
	}
	RET(r, e);
}

static ssize_t w_sendmsg_iov(int fd, const struct iovec *iov, int n, int flags) {
	int e = 0;
	long r = pdSend(fd, (void *)iov, n, flags, &e);
	RET(r, e);
}
static ssize_t w_write(void *u, int fd, const void *b, size_t c) { struct iovec v = { (void *)b, c }; return w_sendmsg_iov(fd, &v, 1, 0); }
static ssize_t w_writev(void *u, int fd, const struct iovec *iov, int n) { return w_sendmsg_iov(fd, iov, n, 0); }
static ssize_t w_send(void *u, int fd, const void *b, size_t c, int f) { struct iovec v = { (void *)b, c }; return w_sendmsg_iov(fd, &v, 1, f); }
static ssize_t w_sendto(void *u, int fd, const void *b, size_t c, int f, const struct sockaddr *a, socklen_t l) { struct iovec v = { (void *)b, c }; return w_sendmsg_iov(fd, &v, 1, f); }
static ssize_t w_sendmsg(void *u, int fd, const struct msghdr *m, int f) { return w_sendmsg_iov(fd, m->msg_iov, (int)m->msg_iovlen, f); }

static int w_fcntl(void *u, int fd, int cmd, ...) {
	long arg = 0;
	if (cmd == F_SETFL || cmd == F_SETFD) {
		va_list ap;
		va_start(ap, cmd);
		arg = va_arg(ap, int);
		va_end(ap);
	}
	int e = 0;
	int r = pdFcntl(fd, cmd, arg, &e);
	RET(r, e);
}
static int w_ioctl(void *u, int fd, unsigned long req, ...) {
	va_list ap;
	va_start(ap, req);
	int *arg = va_arg(ap, int *);
	va_end(ap);
	int e = 0;
	int r = pdIoctl(fd, req, arg, &e);
	RET(r, e);
}
static int w_close(void *u, int fd) { int e = 0; int r = pdClose(fd, &e); RET(r, e); }
static int w_shutdown(void *u, int fd, int how) { int e = 0; int r = pdShutdown(fd, how, &e); RET(r, e); }
static int w_getsockopt(void *u, int fd, int lv, int nm, void *v, socklen_t *l) { int e = 0; int r = pdGetsockopt(fd, lv, nm, v, (unsigned int *)l, &e); RET(r, e); }
static int w_setsockopt(void *u, int fd, int lv, int nm, const void *v, socklen_t l) { int e = 0; int r = pdSetsockopt(fd, lv, nm, (void *)v, l, &e); RET(r, e); }
static int w_poll(void *u, struct pollfd *fds, nfds_t n, int t) { int e = 0; int r = pdPoll((void *)fds, (int)n, t, &e); RET(r, e); }
static int w_netdev_send(void *u, const void *b, size_t c) { return pdNetdevSend((void *)b, c); }
static int w_netdev_receive(void *u, void *b, size_t *c, long long *t) { return pdNetdevReceive(b, c, t); }
static int w_usleep(void *u, useconds_t us) { pdUsleep(us); return 0; }
static int w_gettimeofday(void *u, struct timeval *tv, struct timezone *tz) {
	long long us = pdGettimeofday();
	tv->tv_sec = us / 1000000;
	tv->tv_usec = us % 1000000;
	return 0;
}
static int w_epoll_create(void *u, int size) { errno = ENOSYS; return -1; }
static int w_epoll_ctl(void *u, int epfd, int op, int fd, struct epoll_event *ev) { errno = ENOSYS; return -1; }
static int w_epoll_wait(void *u, int epfd, struct epoll_event *ev, int max, int t) { errno = ENOSYS; return -1; }
static int w_pipe(void *u, int fds[2]) { errno = ENOSYS; return -1; }
static int w_splice(void *u, int a, loff_t *b, int c, loff_t *d, size_t l, unsigned int f) { errno = ENOSYS; return -1; }

void packetdrill_interface_init(const char *flags, struct packetdrill_interface *ifc) {
	memset(ifc, 0, sizeof(*ifc));
	pdInit((char *)flags);
	ifc->free = w_free;
	ifc->socket = w_socket;
	ifc->bind = w_bind;
	ifc->listen = w_listen;
	ifc->accept = w_accept;
	ifc->connect = w_connect;
	ifc->read = w_read;
	ifc->readv = w_readv;
	ifc->recv = w_recv;
	ifc->recvfrom = w_recvfrom;
	ifc->recvmsg = w_recvmsg;
	ifc->write = w_write;
	ifc->writev = w_writev;
	ifc->send = w_send;
	ifc->sendto = w_sendto;
	ifc->sendmsg = w_sendmsg;
	ifc->fcntl = w_fcntl;
	ifc->ioctl = w_ioctl;
	ifc->close = w_close;
	ifc->shutdown = w_shutdown;
	ifc->getsockopt = w_getsockopt;
	ifc->setsockopt = w_setsockopt;
	ifc->poll = w_poll;
	ifc->netdev_send = w_netdev_send;
	ifc->netdev_receive = w_netdev_receive;
	ifc->usleep = w_usleep;
	ifc->gettimeofday = w_gettimeofday;
	ifc->epoll_create = w_epoll_create;
	ifc->epoll_ctl = w_epoll_ctl;
	ifc->epoll_wait = w_epoll_wait;
	ifc->pipe = w_pipe;
	ifc->splice = w_splice;
}
*/
import "C"
