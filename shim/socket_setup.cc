// setsockopt(SO_REUSEPORT), bind() and listen(): how an ordinary socket
// becomes a member of a broker group, by swapping what is under its fd.
// (What each call does on a member once it is one: socket_routing.cc.)
//
// A member's program fd changes identity twice, always under the same number:
//   kPending   the program's own socket; a link to the broker is open.
//   kBound     (TCP) a private "holder" socket carrying the program's options;
//              the group's real socket is the broker's.
//   kListening (TCP) / kDatagram (UDP) the member's channel end, readable when
//              the broker has queued a connection or a datagram for it.
// Programs register listeners with epoll after listen(), so the last swap is
// invisible to them; the number, O_NONBLOCK and FD_CLOEXEC are kept each time.
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker_link.h"
#include "link_watcher.h"
#include "member_attach.h"
#include "member_ring.h"
#include "member_table.h"
#include "presented_family.h"
#include "raw_log.h"
#include "real_calls.h"
#include "reuseport/address_codec.h"
#include "reuseport/protocol.h"
#include "settings.h"
#include "shim.h"
#include "socket_options.h"
#include "socket_setup.h"

namespace reuseport::shim {

namespace {

struct SocketKind {
  int family;
  int type;
  int protocol;  // RP_PROTO_TCP / RP_PROTO_UDP
};

// Is fd an IPv4/IPv6 TCP or UDP socket, the only kinds SO_REUSEPORT shares?
bool InspectSocket(int fd, SocketKind* kind) {
  int family = 0, type = 0, protocol = 0;
  socklen_t len = sizeof(int);
  if (Real().getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) != 0) return false;
  len = sizeof(int);
  if (Real().getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) return false;
  len = sizeof(int);
  if (Real().getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) != 0) return false;
  if (family != AF_INET && family != AF_INET6) return false;
  if (type == SOCK_STREAM && protocol == IPPROTO_TCP) {
    *kind = {family, type, RP_PROTO_TCP};
    return true;
  }
  if (type == SOCK_DGRAM && protocol == IPPROTO_UDP) {
    *kind = {family, type, RP_PROTO_UDP};
    return true;
  }
  return false;
}

bool IsV4MappedAddress(const Member* m) {
  if (m->bound.ss_family != AF_INET6) return false;
  const auto* a = reinterpret_cast<const struct sockaddr_in6*>(&m->bound);
  return IN6_IS_ADDR_V4MAPPED(&a->sin6_addr);
}

ino_t InodeOf(int fd) {
  struct stat st {};
  return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

// Opens a link for a socket that wants sharing, with the lock let go (the
// connect can wait up to a second). Opening the link now tells the program at
// once, as an old kernel would, when there is nobody to share with. Returns
// the link, or -1 (logged) with the lock held again either way.
int ConnectUnlocked(TableLock& lock) {
  lock.Release();
  int link = ConnectBroker();
  int err = errno;
  lock.Acquire();
  if (link < 0) WarnBrokerUnreachable(err);
  return link;
}

// Starts tracking fd as a socket that wants sharing, on `link` (which it takes).
// Requires TableLock.
Member* StartMember(int fd, const SocketKind& kind, int link) {
  Member* m = AllocateMember();
  if (m == nullptr) {
    Real().close(link);
    return nullptr;
  }
  m->protocol = static_cast<uint8_t>(kind.protocol);
  m->family = static_cast<uint8_t>(kind.family);
  m->socket_ino = InodeOf(fd);
  m->link_fd = AdoptPrivateFd(link, m);
  m->link_pid = getpid();
  m->fd_refs = 1;
  MirrorInheritance(m, fd);
  if (!MapFd(fd, m)) {
    static int warned;
    if (FirstTime(&warned)) RawLog(kLogWarn).Str("socket fd ").Int(fd).Str(" is above 65535; not shared").Emit();
    ReleaseMember(m);
    return nullptr;
  }
  return m;
}

// A pending record whose socket was closed behind our back (fclose, a raw
// syscall) must not capture whatever socket now has that number.
bool PendingIsStale(int fd, Member* m) { return m->state == MemberState::kPending && InodeOf(fd) != m->socket_ino; }

void ForgetMember(int fd, Member* m) {
  UnmapFd(fd);
  ReleaseMember(m);
}

// REUSEPORT_PORTS: a bind to a listed port shares it even though the program
// never asked. Requires TableLock (let go while connecting).
Member* MemberForListedPort(int fd, const struct sockaddr* addr, socklen_t len, TableLock& lock) {
  const Settings& settings = GetSettings();
  if (settings.port_count == 0 || settings.mode == Mode::kOff) return nullptr;
  struct rp_address requested;
  if (rp_address_from_sockaddr(addr, len, &requested) != 0 || requested.port == 0) return nullptr;
  SocketKind kind;
  if (!InspectSocket(fd, &kind) || !PortListed(settings, requested.port, kind.protocol)) return nullptr;
  if (settings.mode == Mode::kAuto) {
    int on = 1;
    if (Real().setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) == 0) return nullptr;  // the kernel shares it
  }
  ino_t inode = InodeOf(fd);
  int link = ConnectUnlocked(lock);
  if (link < 0) return nullptr;
  if (LookupMember(fd) != nullptr || InodeOf(fd) != inode) {  // raced with another call on fd
    Real().close(link);
    return nullptr;
  }
  return StartMember(fd, kind, link);
}

bool HasLocalPort(int fd) {
  struct sockaddr_storage ss {};
  socklen_t len = sizeof(ss);
  if (Real().getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) != 0) return false;
  if (ss.ss_family == AF_INET) return reinterpret_cast<struct sockaddr_in*>(&ss)->sin_port != 0;
  if (ss.ss_family == AF_INET6) return reinterpret_cast<struct sockaddr_in6*>(&ss)->sin6_port != 0;
  return false;
}

// Creates a holder for a creator whose own socket became the group's, and puts
// it under the program's fd number. `status_flags` are the program's, read
// before the socket went to the broker: the broker makes its listening socket
// non-blocking, and that open file is the one under `fd` until the swap (a
// second member's LISTEN can come first). Requires TableLock.
bool SwapInHolder(int fd, const Member* m, int status_flags) {
  int type = m->protocol == RP_PROTO_TCP ? SOCK_STREAM : SOCK_DGRAM;
  int proto = m->protocol == RP_PROTO_TCP ? IPPROTO_TCP : IPPROTO_UDP;
  int holder = Real().socket(m->family, type | SOCK_CLOEXEC, proto);
  if (holder < 0) return false;
  CopySocketOptions(fd, holder, m->family);
  int fd_flags = Real().fcntl(fd, F_GETFD);
  if (status_flags >= 0 && (status_flags & O_NONBLOCK)) Real().fcntl(holder, F_SETFL, O_NONBLOCK);
  int r = Real().dup3(holder, fd, (fd_flags >= 0 && (fd_flags & FD_CLOEXEC)) ? O_CLOEXEC : 0);
  Real().close(holder);
  return r >= 0;
}

// Puts `channel` under the program's fd number, keeping the program's socket as
// the member's holder. Requires TableLock.
bool SwapInChannel(int fd, int channel, Member* m) {
  int status_flags = Real().fcntl(fd, F_GETFL);
  int fd_flags = Real().fcntl(fd, F_GETFD);
  int holder = Real().fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (holder < 0) return false;
  // Timeouts on a listener bound accept(); on the channel they bound recvmsg().
  struct timeval tv {};
  socklen_t tv_len = sizeof(tv);
  if (Real().getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &tv_len) == 0) {
    Real().setsockopt(channel, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  int channel_flags = Real().fcntl(channel, F_GETFL);
  if (status_flags >= 0 && channel_flags >= 0) {
    Real().fcntl(channel, F_SETFL, (channel_flags & ~O_NONBLOCK) | (status_flags & O_NONBLOCK));
  }
  if (Real().dup3(channel, fd, (fd_flags >= 0 && (fd_flags & FD_CLOEXEC)) ? O_CLOEXEC : 0) < 0) {
    Real().close(holder);
    return false;
  }
  m->holder_fd = AdoptPrivateFd(holder, m);
  return true;
}

// Adopts a successful BIND reply: fds [channel, channel_peer, group socket,
// and a UDP member's datagram ring]. Requires TableLock.
int AdoptMembership(int fd, Member* m, BrokerReply* reply, bool creator, int status_flags) {
  bool ring = reply->fd_count == 4 && (reply->payload.member.flags & RP_MEMBER_RING);
  if (reply->fd_count != (ring ? 4 : 3) || reply->payload_size != sizeof(rp_member_reply)) {
    CloseReplyFds(reply);
    errno = EBADMSG;
    return -1;
  }
  const rp_member_reply& r = reply->payload.member;
  m->bound_len = rp_address_to_sockaddr(&r.bound, m->family, &m->bound);
  m->member_id = r.member_id;
  m->group_id = r.group_id;
  m->v6only = r.v6only;
  m->channel_fd = AdoptPrivateFd(reply->fds[0], m);
  m->channel_peer_fd = AdoptPrivateFd(reply->fds[1], m);
  m->group_fd = AdoptPrivateFd(reply->fds[2], m);
  if (ring && !AdoptRing(m, reply->fds[3])) {
    RawLog(kLogWarn).Str("cannot map the datagram ring the broker sent; datagrams are lost until it restarts").Emit();
  }
  reply->fd_count = 0;
  m->group_family = static_cast<uint8_t>(IntOption(m->group_fd, SOL_SOCKET, SO_DOMAIN));

  bool swapped = true;
  if (creator) swapped = SwapInHolder(fd, m, status_flags);
  // The socket under fd carries the program's options from now on (it is the
  // holder, or becomes it at listen()). IPV6_V6ONLY reads as the group's, as
  // on a kernel with SO_REUSEPORT: 1 for a specific IPv6 address, whatever the
  // program left it at, and the group's for [::] (the broker may have bound a
  // dual-stack group's own socket IPV6_V6ONLY, as one half of the port).
  if (swapped && m->family == AF_INET6 && !IsV4MappedAddress(m)) SetIntOption(fd, IPPROTO_IPV6, IPV6_V6ONLY, m->v6only);
  if (swapped && m->protocol == RP_PROTO_UDP) {
    m->want_pktinfo = static_cast<uint8_t>(IntOption(fd, m->family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP,
                                                     m->family == AF_INET6 ? IPV6_RECVPKTINFO : IP_PKTINFO) != 0);
    swapped = SwapInChannel(fd, m->channel_fd, m);
    if (swapped) {
      UnmarkPrivateFd(m->channel_fd);
      Real().close(m->channel_fd);
      m->channel_fd = -1;
    }
  }
  if (!swapped) {
    // Out of fds: we cannot present the membership, so leave the group (closing
    // the link tells the broker) and report what the kernel would for this.
    int err = errno;
    ReleaseMember(m);
    UnmapFd(fd);
    errno = err == EMFILE || err == ENFILE ? err : ENOBUFS;
    return -1;
  }
  m->state = m->protocol == RP_PROTO_TCP ? MemberState::kBound : MemberState::kDatagram;
  EnsureLinkWatcher();
  RawLog(kLogDebug)
      .Str(m->protocol == RP_PROTO_TCP ? "tcp" : "udp")
      .Str(" fd ")
      .Int(fd)
      .Str(creator ? " created group " : " joined group ")
      .Uint(m->group_id)
      .Str(" as member ")
      .Uint(m->member_id)
      .Emit();
  return 0;
}

// One BIND round trip with the lock let go. Returns CallBroker's result; on
// false in *kept the program dropped the member meanwhile (it is released and
// the reply's fds are closed).
int BindRoundTrip(Member* m, const rp_bind_request& request, int fd, BrokerReply* reply, TableLock& lock,
                  bool* kept) {
  BeginRoundTrip(m);
  int link = m->link_fd;
  lock.Release();
  int call = CallBroker(link, RP_OP_BIND, &request, sizeof(request), &fd, 1, reply);
  int err = errno;
  lock.Acquire();
  *kept = EndRoundTrip(m);
  if (!*kept) CloseReplyFds(reply);
  errno = err;
  return call;
}

int EmulatedBind(int fd, Member* m, const struct sockaddr* addr, socklen_t len, TableLock& lock) {
  struct rp_bind_request request {};
  if (rp_address_from_sockaddr(addr, len, &request.address) != 0 || request.address.family != m->family) {
    return Real().bind(fd, addr, len);  // let the kernel give the exact error
  }
  request.protocol = m->protocol;
  request.v6only = static_cast<uint8_t>(m->family == AF_INET6 ? IntOption(fd, IPPROTO_IPV6, IPV6_V6ONLY) != 0 : 0);

  // The kernel decides privilege, address validity and whether the port is
  // free. SO_REUSEADDR is off for this probe so that an existing group's socket
  // is seen as a conflict rather than shared (UDP would otherwise allow it).
  int reuseaddr = IntOption(fd, SOL_SOCKET, SO_REUSEADDR);
  if (reuseaddr) SetIntOption(fd, SOL_SOCKET, SO_REUSEADDR, 0);
  int bound = Real().bind(fd, addr, len);
  int bind_err = errno;
  // EADDRINUSE: perhaps a group holds it. EACCES on a privileged port: the
  // broker's policy may grant it (authbind-style); the broker decides.
  bool ask = bound == 0 || bind_err == EADDRINUSE ||
             (bind_err == EACCES && request.address.port != 0 && request.address.port < 1024);
  // The probe is done: the socket carries the program's options again (the
  // broker may bind it for the member, authbind-style).
  if (reuseaddr) SetIntOption(fd, SOL_SOCKET, SO_REUSEADDR, 1);
  if (!ask) {
    errno = bind_err;
    return -1;
  }

  int status_flags = Real().fcntl(fd, F_GETFL);  // before the broker shares this open file
  for (int attempt = 0; attempt < 2; ++attempt) {
    BrokerReply reply;
    bool kept = true;
    int call = BindRoundTrip(m, request, fd, &reply, lock, &kept);
    if (!kept) {
      // Another thread closed the socket while we asked: what it closed was
      // bound or not as the kernel said.
      if (bound == 0) return 0;
      errno = EBADF;
      return -1;
    }
    if (call != 0) {
      WarnBrokerUnreachable(errno);
      ForgetMember(fd, m);
      if (bound == 0) return 0;  // as on an old kernel: the first bind simply succeeds
      errno = bind_err;
      return -1;
    }
    int status = reply.header.status;
    // The program's socket became the group's if the kernel bound it, or if
    // the broker bound it for us (a policy rule for a port below 1024).
    if (status == 0) return AdoptMembership(fd, m, &reply, bound == 0 || HasLocalPort(fd), status_flags);
    CloseReplyFds(&reply);
    if (bound == 0) {
      // The broker refused a socket the kernel already bound (policy, limits):
      // it stays an ordinary bound socket, as on an old kernel.
      RawLog(kLogWarn).Str("broker refused to share a bound socket (").Errno(status).Str("); not shared").Emit();
      ForgetMember(fd, m);
      return 0;
    }
    // ENOENT: no group holds this address. With SO_REUSEADDR the conflict may
    // be a TIME_WAIT leftover that the program's own bind would have ignored.
    if (status == ENOENT && reuseaddr && attempt == 0 && bind_err == EADDRINUSE) {
      bound = Real().bind(fd, addr, len);
      if (bound != 0) return -1;
      continue;
    }
    if (status == EDQUOT) {
      static int warned;
      if (FirstTime(&warned)) RawLog(kLogWarn).Str("broker refused to share: this uid is at its limit").Emit();
    }
    // No group, or a refusal: what the kernel said stands (EADDRINUSE or
    // EACCES); a uid mismatch is EADDRINUSE either way.
    errno = (status == ENOENT || status == EDQUOT) ? bind_err : status;
    return -1;
  }
  errno = EADDRINUSE;
  return -1;
}

}  // namespace

int SetsockoptReuseport(int fd, const void* value, socklen_t len) {
  const Settings& settings = GetSettings();
  if (settings.mode == Mode::kOff || InVforkChild()) return Real().setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, value, len);
  if (settings.mode == Mode::kAuto) {
    int r = Real().setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, value, len);
    if (r == 0 || errno != ENOPROTOOPT) return r;
  }
  if (CheckIntArgument(value, len) != 0) return -1;
  SocketKind kind;
  if (!InspectSocket(fd, &kind)) {
    errno = ENOPROTOOPT;  // what the kernel says for other sockets on an old kernel
    return -1;
  }
  int on = 0;
  memcpy(&on, value, sizeof(on));
  TableLock lock;
  Member* m = LookupMember(fd);
  if (m != nullptr && !m->busy && PendingIsStale(fd, m)) {
    ForgetMember(fd, m);
    m = nullptr;
  }
  if (!on) {
    if (m != nullptr && m->state == MemberState::kPending && !m->busy) ForgetMember(fd, m);
    return 0;
  }
  if (m != nullptr) return 0;
  ino_t inode = InodeOf(fd);
  int link = ConnectUnlocked(lock);
  if (link < 0) {
    errno = ENOPROTOOPT;
    return -1;
  }
  // Meanwhile another thread may have asked for the same socket, or closed it.
  if (LookupMember(fd) != nullptr || InodeOf(fd) != inode) {
    Real().close(link);
    return 0;
  }
  if (StartMember(fd, kind, link) == nullptr) {
    errno = ENOPROTOOPT;
    return -1;
  }
  return 0;
}

int Bind(int fd, const struct sockaddr* addr, socklen_t len) {
  Member* m = LookupMember(fd);
  const Settings& settings = GetSettings();
  if ((m == nullptr && settings.port_count == 0) || InVforkChild()) return Real().bind(fd, addr, len);
  TableLock lock;
  m = LookupMember(fd);
  if (m != nullptr && m->busy) {
    WaitWhileBusy(m, lock);  // another thread is binding (or listening on) this socket
    m = LookupMember(fd);
  }
  if (m != nullptr && !m->busy && PendingIsStale(fd, m)) {
    ForgetMember(fd, m);
    m = nullptr;
  }
  if (m == nullptr) m = MemberForListedPort(fd, addr, len, lock);
  if (m == nullptr) return Real().bind(fd, addr, len);
  if (m->state != MemberState::kPending || m->busy) {
    errno = EINVAL;  // the kernel's answer to binding a bound socket
    return -1;
  }
  return EmulatedBind(fd, m, addr, len, lock);
}

int Listen(int fd, int backlog) {
  Member* m = LookupMemberOrAttach(fd);
  if (m == nullptr || m->state == MemberState::kPending || InVforkChild()) return Real().listen(fd, backlog);
  if (m->state == MemberState::kDatagram) {
    errno = EOPNOTSUPP;
    return -1;
  }
  TableLock lock;
  for (int i = 0; i < 3 && LookupMember(fd) == m && m->busy; ++i) WaitWhileBusy(m, lock);
  if (LookupMember(fd) == m && m->busy) {
    errno = ENOBUFS;  // the broker has not answered another call on this socket
    return -1;
  }
  if (LookupMember(fd) != m || m->state == MemberState::kPending) return Real().listen(fd, backlog);
  struct rp_listen_request request {};
  request.backlog = backlog;
  BrokerReply reply;
  // After fork, ask on a link of our own: a reply on the shared one could be
  // read by the other process.
  pid_t me = getpid();
  bool need_own_link = m->link_pid != me;
  int channel = m->state == MemberState::kListening ? fd : m->channel_fd;
  int link = m->link_fd;
  BeginRoundTrip(m);
  lock.Release();
  int own = need_own_link ? OpenOwnLink(channel) : -1;
  if (own >= 0) link = own;
  int call = need_own_link && own < 0 ? -1
                                      : CallBroker(link, RP_OP_LISTEN, &request, sizeof(request), nullptr, 0, &reply);
  int err = errno;
  lock.Acquire();
  if (!EndRoundTrip(m)) {
    if (own >= 0) Real().close(own);
    CloseReplyFds(&reply);
    errno = EBADF;  // closed by another thread while we asked
    return -1;
  }
  if (own >= 0) InstallOwnLink(m, own, me);
  if (call != 0) {
    WarnBrokerUnreachable(err);
    if (m->state == MemberState::kListening) return 0;  // the group keeps its backlog
    errno = EADDRINUSE;
    return -1;
  }
  CloseReplyFds(&reply);
  if (reply.header.status != 0) {
    errno = reply.header.status;
    return -1;
  }
  m->backlog = backlog;
  if (m->state == MemberState::kListening) return 0;

  // The program's option values now, against the shared socket's.
  ReadInheritedOptions(fd, m->family, m->inherited.wanted);
  ReadInheritedOptions(m->group_fd, m->family, m->inherited.listener);
  UpdateDifferMask(&m->inherited);
  if (!SwapInChannel(fd, m->channel_fd, m)) {
    errno = errno == EMFILE || errno == ENFILE ? errno : ENOBUFS;
    return -1;
  }
  UnmarkPrivateFd(m->channel_fd);
  Real().close(m->channel_fd);
  m->channel_fd = -1;
  m->state = MemberState::kListening;
  return 0;
}

}  // namespace reuseport::shim
