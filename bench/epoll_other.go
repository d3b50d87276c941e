//go:build !linux

package bench

// LinuxEpoll is not available off Linux: it is the kernel's epoll.
func LinuxEpoll() System { return unavailable(SysLinuxEpoll, "needs Linux (epoll)") }
