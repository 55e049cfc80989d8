// The calls that read or change a member socket once it is one: setsockopt,
// getsockopt, getsockname, getpeername, connect and shutdown, each routed by
// the member's state (socket_setup.cc's state comment) to the fd that holds
// what the call means:
//   kPending, kBound  the program's own socket (or the holder): the kernel's
//                     answer, except SO_REUSEPORT reads as on.
//   kListening        the channel is under the fd: timeouts act on it (they
//                     bound accept()); every other option on the holder, and
//                     those accepted sockets inherit are recorded.
//   kDatagram         as kListening, and options that act on sending reach
//                     the group's socket too, where replies leave from.
// getsockname/getpeername answer from what the broker bound; a UDP member's
// connect() only sets a default destination.
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "member_attach.h"
#include "member_table.h"
#include "presented_family.h"
#include "real_calls.h"
#include "reuseport/address_codec.h"
#include "shim.h"
#include "socket_options.h"
#include "socket_setup.h"

namespace reuseport::shim {

namespace {

// Receive and send timeouts act on the fd the program holds (the channel):
// they bound accept() and recvmsg() there.
bool IsListeningOption(int level, int name) {
  return level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO);
}

// After a listener option reached the holder: the value accepted sockets
// should inherit, if it is one they inherit.
void RecordInheritedOption(Member* m, int level, int name) {
  int index = InheritedOptionIndex(level, name);
  if (index < 0) return;
  int64_t values[kInheritedOptionCount];
  ReadInheritedOptions(m->holder_fd, m->family, values);
  TableLock lock;
  m->inherited.wanted[index] = values[index];
  UpdateDifferMask(&m->inherited);
}

// After a datagram option reached the holder: pktinfo decides what recvmsg()
// reports; sending options must reach the shared socket too.
void ApplyDatagramOption(Member* m, int level, int name, const void* value, socklen_t len) {
  if ((level == IPPROTO_IP && name == IP_PKTINFO) || (level == IPPROTO_IPV6 && name == IPV6_RECVPKTINFO)) {
    m->want_pktinfo = static_cast<uint8_t>(IntOption(m->holder_fd, level, name) != 0);
  } else if (AffectsSending(level, name)) {
    // Replies leave from the shared socket; the group shares one uid.
    Real().setsockopt(m->group_fd, level, name, value, len);
  }
}

}  // namespace

int Setsockopt(int fd, int level, int name, const void* value, socklen_t len) {
  Member* m = LookupMemberOrAttach(fd);
  if (level == SOL_SOCKET && name == SO_REUSEPORT) {
    if (m == nullptr || m->state == MemberState::kPending) return SetsockoptReuseport(fd, value, len);
    // After bind the kernel accepts it too, with no effect on the group.
    return CheckIntArgument(value, len);
  }
  if (m == nullptr) return Real().setsockopt(fd, level, name, value, len);
  switch (m->state) {
    case MemberState::kPending:
    case MemberState::kBound:
    case MemberState::kAttaching:
    case MemberState::kFree:
      return Real().setsockopt(fd, level, name, value, len);
    case MemberState::kListening:
    case MemberState::kDatagram: {
      if (IsListeningOption(level, name)) {
        int r = Real().setsockopt(fd, level, name, value, len);
        if (r == 0) Real().setsockopt(m->holder_fd, level, name, value, len);
        return r;
      }
      int r = Real().setsockopt(m->holder_fd, level, name, value, len);
      if (r != 0) return r;
      if (m->state == MemberState::kListening) {
        RecordInheritedOption(m, level, name);
      } else {
        ApplyDatagramOption(m, level, name, value, len);
      }
      return 0;
    }
  }
  return Real().setsockopt(fd, level, name, value, len);
}

int Getsockopt(int fd, int level, int name, void* value, socklen_t* len) {
  Member* m = LookupMemberOrAttach(fd);
  if (m == nullptr) {
    int family = ShimEngaged() && level == SOL_SOCKET && name == SO_DOMAIN ? PresentedFamily(fd) : 0;
    if (family != 0) return ReturnInt(family, value, len);
    return Real().getsockopt(fd, level, name, value, len);
  }
  if (level == SOL_SOCKET && name == SO_REUSEPORT) return ReturnInt(1, value, len);
  switch (m->state) {
    case MemberState::kPending:
    case MemberState::kBound:
    case MemberState::kAttaching:
    case MemberState::kFree:
      return Real().getsockopt(fd, level, name, value, len);
    case MemberState::kListening:
    case MemberState::kDatagram:
      if (m->state == MemberState::kListening && level == SOL_SOCKET && name == SO_ACCEPTCONN) {
        return ReturnInt(1, value, len);
      }
      if (IsListeningOption(level, name)) return Real().getsockopt(fd, level, name, value, len);
      return Real().getsockopt(m->holder_fd, level, name, value, len);
  }
  return Real().getsockopt(fd, level, name, value, len);
}

int Getsockname(int fd, struct sockaddr* addr, socklen_t* len) {
  if (int family = ShimEngaged() ? PresentedFamily(fd) : 0) return PresentedName(fd, family, false, addr, len);
  Member* m = LookupMemberOrAttach(fd);
  if (m == nullptr || m->state == MemberState::kPending) return Real().getsockname(fd, addr, len);
  if (addr == nullptr || len == nullptr) {
    errno = EFAULT;
    return -1;
  }
  rp_copy_sockaddr_out(&m->bound, m->bound_len, addr, len);
  return 0;
}

int Getpeername(int fd, struct sockaddr* addr, socklen_t* len) {
  if (int family = ShimEngaged() ? PresentedFamily(fd) : 0) return PresentedName(fd, family, true, addr, len);
  Member* m = LookupMemberOrAttach(fd);
  if (m == nullptr || m->state == MemberState::kPending) return Real().getpeername(fd, addr, len);
  if (m->state == MemberState::kDatagram && m->connected) {
    if (addr == nullptr || len == nullptr) {
      errno = EFAULT;
      return -1;
    }
    rp_copy_sockaddr_out(&m->peer, m->peer_len, addr, len);
    return 0;
  }
  errno = ENOTCONN;
  return -1;
}

int Connect(int fd, const struct sockaddr* addr, socklen_t len) {
  Member* m = LookupMemberOrAttach(fd);
  if (m == nullptr || m->state != MemberState::kDatagram) return Real().connect(fd, addr, len);
  // A UDP member keeps receiving through the group; connect() only sets the
  // default destination of send()/write(), which leave from the shared socket.
  if (addr == nullptr) {
    errno = EFAULT;
    return -1;
  }
  if (len >= sizeof(sa_family_t) && addr->sa_family == AF_UNSPEC) {
    m->connected = 0;
    return 0;
  }
  struct rp_address peer;
  if (rp_address_from_sockaddr(addr, len, &peer) != 0) {
    errno = len < sizeof(sa_family_t) ? EINVAL : EAFNOSUPPORT;
    return -1;
  }
  TableLock lock;
  m->peer_len = rp_address_to_sockaddr(&peer, m->family, &m->peer);
  if (m->peer_len == 0) {
    errno = EAFNOSUPPORT;
    return -1;
  }
  m->connected = 1;
  return 0;
}

int Shutdown(int fd, int how) {
  Member* m = LookupMember(fd);
  if (m == nullptr || m->state == MemberState::kPending || m->state == MemberState::kBound) {
    return Real().shutdown(fd, how);
  }
  if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) {
    errno = EINVAL;
    return -1;
  }
  // Shutting the channel would make it read as end-of-file forever; the group
  // socket is shared. A listener or unconnected UDP socket has nothing to shut.
  errno = ENOTCONN;
  return m->state == MemberState::kListening ? 0 : -1;
}

}  // namespace reuseport::shim
