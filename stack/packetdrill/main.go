// Command packetdrill is not a command: it is mkstack's packetdrill plugin,
// a shared object (go build -buildmode=c-shared) that packetdrill loads with
// --so_filename to run its scripts against one stack.Stack instead of the
// kernel, and the runner that does so (go test -run TestScripts).
//
// # What it owns
//
// The plugin implements packetdrill's shared-object interface (packetdrill.h:
// packetdrill_interface_init fills a struct of function pointers): the packets
// packetdrill injects go to the stack's Input wrapped in Ethernet, the frames
// the stack sends come back as IPv4 packets stamped with the time they left,
// and the socket calls (socket, bind, listen, accept, connect, read/write and
// their vector and message forms, close, shutdown, setsockopt/getsockopt,
// poll, fcntl, ioctl) run on a file-descriptor table with Linux's errno
// semantics (EAGAIN, EINPROGRESS, ECONNREFUSED, ECONNRESET, EPIPE), blocking
// and O_NONBLOCK. The stack's TCPConfig takes the sysctls the script set
// (tcp_timestamps, tcp_sack, tcp_rmem, tcp_wmem, tcp_congestion_control,
// tcp_syncookies) and Linux's policy values (200 ms minimum RTO, 40 ms
// delayed ACK, 120 s maximum RTO).
//
// # Time
//
// The stack runs on a virtual clock that packetdrill's own calls drive:
// gettimeofday reads it; usleep moves it forward, running the stack's timers
// on the way; netdev_receive, asked for the next packet the stack sends when
// none waits, moves it to the stack's next timer until one comes out (or a
// horizon passes, and it returns no packet: packetdrill ignores its receive
// timeout in this mode). packetdrill spins on gettimeofday for the last
// microseconds before an event, so two gettimeofday calls in a row from one
// thread move the clock by a microsecond. A script thus runs in
// milliseconds whatever its length, and a run is a function of the script.
//
// Blocking calls that the script marks as such run on packetdrill's system
// call thread and sleep in the plugin until the stack's state lets them
// finish; before the main thread moves time or looks at the stack it waits
// until every woken call has finished or gone back to sleep, so a call
// returns at the virtual time of the packet that woke it. A blocking call on
// the main thread (the script did not expect it to block) drives time itself,
// as the kernel would, up to the horizon.
//
// # The runner
//
// go test ./stack/packetdrill -run TestScripts builds packetdrill from the
// shared copy (patched to skip SCHED_RR and mlockall in plugin mode), builds
// the plugin, and runs each script in its own network namespace (scripts run
// shell lines) with a time limit; applicability.txt says which scripts do
// not apply and why, and expected_pass.txt which must pass.
package main

func main() {}
