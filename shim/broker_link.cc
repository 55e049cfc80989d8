#include "broker_link.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "raw_log.h"
#include "real_calls.h"
#include "reuseport/fd_passing.h"
#include "settings.h"

namespace reuseport::shim {

namespace {

constexpr int kConnectTimeoutMs = 1000;
constexpr int kReplyTimeoutMs = 3000;

uint64_t g_next_request_id = 1;

int64_t NowMs() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Waits for `events` on fd until deadline_ms. Returns 1 ready, 0 timeout, -1 error.
int WaitFor(int fd, short events, int64_t deadline_ms) {
  for (;;) {
    int64_t left = deadline_ms - NowMs();
    if (left <= 0) return 0;
    struct pollfd p = {fd, events, 0};
    int n = poll(&p, 1, static_cast<int>(left));
    if (n > 0) return 1;
    if (n == 0) return 0;
    if (errno != EINTR) return -1;
  }
}

}  // namespace

int ConnectBroker() {
  const Settings& settings = GetSettings();
  int fd = Real().socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  strcpy(addr.sun_path, settings.socket_path);
  int64_t deadline = NowMs() + kConnectTimeoutMs;
  for (;;) {
    if (Real().connect(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) == 0) break;
    int err = errno;
    if (err == EINTR) continue;
    // A full listen backlog answers EAGAIN on a non-blocking Unix connect: the
    // broker is alive but busy; give it until the deadline.
    if (err == EAGAIN && NowMs() < deadline) {
      struct timespec pause = {0, 2 * 1000 * 1000};
      nanosleep(&pause, nullptr);
      continue;
    }
    Real().close(fd);
    errno = err == EAGAIN ? ETIMEDOUT : err;
    return -1;
  }
  // Requests are small and the broker reads promptly; blocking sends with a
  // timeout are simpler than a second poll loop.
  int flags = Real().fcntl(fd, F_GETFL);
  Real().fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  struct timeval send_timeout = {kReplyTimeoutMs / 1000, 0};
  Real().setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout));
  return fd;
}

int CallBroker(int link, uint16_t opcode, const void* payload, uint32_t payload_size, const int* fds,
               int fd_count, BrokerReply* reply) {
  memset(reply, 0, sizeof(*reply));
  struct rp_header header =
      rp_request_header(opcode, payload_size, __atomic_fetch_add(&g_next_request_id, 1, __ATOMIC_RELAXED));

  struct iovec iov[2] = {{&header, sizeof(header)}, {const_cast<void*>(payload), payload_size}};
  alignas(struct cmsghdr) char control[RP_FDS_CONTROL_SPACE(RP_MAX_FDS)];
  struct msghdr msg {};
  msg.msg_iov = iov;
  msg.msg_iovlen = payload_size > 0 ? 2 : 1;
  if (fd_count < 0 || rp_fds_attach(&msg, control, sizeof(control), fds, static_cast<size_t>(fd_count)) != 0) {
    errno = EINVAL;
    return -1;
  }
  for (;;) {
    if (Real().sendmsg(link, &msg, MSG_NOSIGNAL) >= 0) break;
    if (errno != EINTR) return -1;
  }

  int64_t deadline = NowMs() + kReplyTimeoutMs;
  for (;;) {
    int ready = WaitFor(link, POLLIN, deadline);
    if (ready <= 0) {
      if (ready == 0) errno = ETIMEDOUT;
      return -1;
    }
    struct iovec riov[2] = {{&reply->header, sizeof(reply->header)}, {&reply->payload, sizeof(reply->payload)}};
    alignas(struct cmsghdr) char rcontrol[RP_FDS_CONTROL_SPACE(RP_MAX_FDS)];
    struct msghdr rmsg {};
    rmsg.msg_iov = riov;
    rmsg.msg_iovlen = 2;
    rmsg.msg_control = rcontrol;
    rmsg.msg_controllen = sizeof(rcontrol);
    ssize_t n = Real().recvmsg(link, &rmsg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return -1;
    }
    if (n == 0) {
      errno = EPIPE;  // the broker closed the link
      return -1;
    }
    struct rp_fds_taken taken;
    rp_fds_take(&rmsg, reply->fds, RP_MAX_FDS, Real().close, &taken);
    reply->fd_count = static_cast<int>(taken.count);
    const rp_header& h = reply->header;
    bool well_formed = static_cast<size_t>(n) >= sizeof(h) && h.magic == RP_MAGIC && h.header_size == sizeof(h) &&
                       (h.flags & RP_FLAG_REPLY) && h.payload_size <= sizeof(reply->payload) &&
                       static_cast<size_t>(n) >= sizeof(h) + h.payload_size && !(rmsg.msg_flags & (MSG_TRUNC | MSG_CTRUNC));
    if (!well_formed) {
      CloseReplyFds(reply);
      errno = EBADMSG;
      return -1;
    }
    if (h.request_id != header.request_id) {  // a late reply to an earlier, timed-out call
      CloseReplyFds(reply);
      continue;
    }
    reply->payload_size = h.payload_size;
    return 0;
  }
}

void CloseReplyFds(BrokerReply* reply) {
  for (int i = 0; i < reply->fd_count; ++i) Real().close(reply->fds[i]);
  reply->fd_count = 0;
}

void WarnBrokerUnreachable(int err) {
  static int warned;
  if (FirstTime(&warned)) {
    RawLog(kLogWarn)
        .Str("broker not reachable at ")
        .Str(GetSettings().socket_path)
        .Str(" (")
        .Errno(err)
        .Str("); SO_REUSEPORT is not emulated, sockets behave as on this kernel")
        .Emit();
  }
}

}  // namespace reuseport::shim
