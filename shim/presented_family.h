// Accepted connections shown to the program in its listener's family.
//
// A TCP socket has the family of the listener that accepted it. When a
// group's traffic reaches it through a real socket of the other family (an
// IPv4 group served by a dual-stack [::] socket, a ::ffff:a.b.c.d group by an
// IPv4 one: an old kernel cannot hold both), the broker flags the connection
// (RP_CONNECTION_OTHER_FAMILY) and the shim presents the fd as a socket of the
// member's family: getsockname and getpeername convert between a.b.c.d and
// ::ffff:a.b.c.d, and SO_DOMAIN answers the member's family. Reads, writes and
// IP-level options work the same on either (Linux passes IPPROTO_IP options of
// an IPv6 socket to IPv4).
//
// One byte per fd below kMaxTrackedFd; 0 means "as it is". Marks follow the fd
// through dup*/fcntl(F_DUPFD) and go with close, close_range and a new socket
// at the same number. Lock-free: each fd's byte belongs to whichever thread
// owns that fd number at the time, as the program's own uses of it do.
#ifndef REUSEPORT_SHIM_PRESENTED_FAMILY_H_
#define REUSEPORT_SHIM_PRESENTED_FAMILY_H_

#include <sys/socket.h>

namespace reuseport::shim {

// The family fd is presented as, or 0.
int PresentedFamily(int fd);
void PresentFamily(int fd, int family);
void ForgetPresentedFamily(int fd);
void CopyPresentedFamily(int from, int to);

// getsockname/getpeername of a presented fd: the kernel's answer, converted.
int PresentedName(int fd, int family, bool peer, struct sockaddr* addr, socklen_t* len);

}  // namespace reuseport::shim

#endif  // REUSEPORT_SHIM_PRESENTED_FAMILY_H_
