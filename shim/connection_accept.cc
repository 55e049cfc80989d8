// accept()/accept4() on a TCP member: take the next connection the broker
// queued on the member's channel.
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "link_watcher.h"
#include "member_attach.h"
#include "member_table.h"
#include "presented_family.h"
#include "raw_log.h"
#include "real_calls.h"
#include "reuseport/address_codec.h"
#include "reuseport/fd_passing.h"
#include "reuseport/protocol.h"
#include "shim.h"
#include "socket_options.h"

namespace reuseport::shim {

namespace {

// The kernel drops an fd it cannot install (RLIMIT_NOFILE) and reports
// MSG_CTRUNC: the connection would be lost. Checking for a free slot first
// returns EMFILE as accept() would, and leaves the connection queued.
int CheckFdAvailable(int fd) {
  int probe = Real().fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (probe < 0) return -1;
  Real().close(probe);
  return 0;
}

void CloseAll(const int* fds, int count) {
  for (int i = 0; i < count; ++i) Real().close(fds[i]);
}

}  // namespace

int Accept4(int fd, struct sockaddr* addr, socklen_t* len, int flags) {
  Member* m = LookupMemberOrAttach(fd);
  if (m == nullptr || m->state == MemberState::kPending) return Real().accept4(fd, addr, len, flags);
  if (m->state != MemberState::kListening) {
    errno = m->state == MemberState::kDatagram ? EOPNOTSUPP : EINVAL;
    return -1;
  }
  if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) {
    errno = EINVAL;
    return -1;
  }
  if (addr != nullptr && len == nullptr) {
    errno = EFAULT;
    return -1;
  }
  EnsureLinkWatcher();  // a forked worker starts its own on first use
  if (CheckFdAvailable(fd) != 0) return -1;

  struct rp_header header;
  struct rp_connection connection;
  struct iovec iov[2] = {{&header, sizeof(header)}, {&connection, sizeof(connection)}};
  alignas(struct cmsghdr) char control[RP_FDS_CONTROL_SPACE(RP_MAX_FDS)];
  for (;;) {
    struct msghdr msg {};
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    // Blocking, non-blocking and SO_RCVTIMEO behave as the program set them on
    // its fd, which is the channel itself.
    ssize_t n = Real().recvmsg(fd, &msg, (flags & SOCK_CLOEXEC) ? MSG_CMSG_CLOEXEC : 0);
    if (n < 0) return -1;
    if (n == 0) {
      // Both ends of the channel are closed: cannot happen while the shim holds
      // the broker's end, unless something closed that behind its back.
      static int warned;
      if (FirstTime(&warned)) RawLog(kLogError).Str("listener fd ").Int(fd).Str(": channel closed").Emit();
      errno = ECONNABORTED;
      return -1;
    }
    int fds[RP_MAX_FDS];
    struct rp_fds_taken taken;
    rp_fds_take(&msg, fds, RP_MAX_FDS, Real().close, &taken);
    int fd_count = static_cast<int>(taken.count);
    bool valid = static_cast<size_t>(n) == sizeof(header) + sizeof(connection) && header.magic == RP_MAGIC &&
                 header.opcode == RP_OP_CONNECTION && fd_count == 1 && !(msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC));
    if (!valid) {
      CloseAll(fds, fd_count);
      static int warned;
      if (FirstTime(&warned)) {
        RawLog(kLogError)
            .Str("listener fd ")
            .Int(fd)
            .Str((msg.msg_flags & MSG_CTRUNC) ? ": a connection was lost at the fd limit" : ": unexpected channel message")
            .Emit();
      }
      if (msg.msg_flags & MSG_CTRUNC) {
        errno = ECONNABORTED;  // programs retry accept() after this
        return -1;
      }
      continue;
    }
    int conn = fds[0];
    PresentFamily(conn, (connection.flags & RP_CONNECTION_OTHER_FAMILY) ? m->family : 0);
    if (flags & SOCK_NONBLOCK) Real().fcntl(conn, F_SETFL, O_NONBLOCK);
    if (m->inherited.differ_mask != 0) ApplyInheritedOptions(conn, m->family, m->inherited);
    if (addr != nullptr) {
      struct sockaddr_storage peer;
      socklen_t peer_len = rp_address_to_sockaddr(&connection.peer, m->family, &peer);
      if (peer_len == 0) peer_len = rp_address_to_sockaddr(&connection.peer, connection.peer.family, &peer);
      rp_copy_sockaddr_out(&peer, peer_len, addr, len);
    }
    return conn;
  }
}

}  // namespace reuseport::shim
