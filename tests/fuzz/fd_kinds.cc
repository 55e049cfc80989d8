#include "fd_kinds.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace reuseport::fuzz {

using reuseport::broker::UniqueFd;

namespace {

UniqueFd NewSocket(int family, int type) { return UniqueFd(socket(family, type | SOCK_CLOEXEC, 0)); }

bool BindTo(int fd, int family, const char* address, uint16_t port) {
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_storage ss {};
  socklen_t len;
  if (family == AF_INET) {
    auto* in = reinterpret_cast<struct sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    inet_pton(AF_INET, address, &in->sin_addr);
    len = sizeof(*in);
  } else {
    auto* in6 = reinterpret_cast<struct sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    inet_pton(AF_INET6, address, &in6->sin6_addr);
    len = sizeof(*in6);
  }
  return bind(fd, reinterpret_cast<struct sockaddr*>(&ss), len) == 0;
}

// Bound to `port` if free, else to a port the kernel picks, else unbound.
UniqueFd BoundSocket(int family, int type, const char* address, uint16_t port) {
  UniqueFd s = NewSocket(family, type);
  if (s && !BindTo(s.get(), family, address, port) && port != 0) BindTo(s.get(), family, address, 0);
  return s;
}

UniqueFd PipeEnd(bool read_end) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return UniqueFd();
  UniqueFd r(p[0]), w(p[1]);
  return read_end ? std::move(r) : std::move(w);
}

}  // namespace

const char* FdKindName(FdKind kind) {
  switch (kind) {
    case FdKind::kPipeRead: return "pipe-read";
    case FdKind::kPipeWrite: return "pipe-write";
    case FdKind::kDevNull: return "/dev/null";
    case FdKind::kEpoll: return "epoll";
    case FdKind::kUnixStream: return "unix-stream";
    case FdKind::kTcp4: return "tcp4";
    case FdKind::kUdp4: return "udp4";
    case FdKind::kTcp6: return "tcp6";
    case FdKind::kUdp6: return "udp6";
    case FdKind::kTcp4Loopback: return "tcp4-127.0.0.1";
    case FdKind::kUdp4Loopback: return "udp4-127.0.0.1";
    case FdKind::kTcp4Wildcard: return "tcp4-0.0.0.0";
    case FdKind::kTcp6Wildcard: return "tcp6-[::]";
    case FdKind::kUdp6Loopback: return "udp6-[::1]";
    case FdKind::kTcp4Listening: return "tcp4-listening";
    case FdKind::kUdp4Connected: return "udp4-connected";
  }
  return "?";
}

UniqueFd MakeFd(FdKind kind, uint16_t port) {
  switch (kind) {
    case FdKind::kPipeRead: return PipeEnd(true);
    case FdKind::kPipeWrite: return PipeEnd(false);
    case FdKind::kDevNull: return UniqueFd(open("/dev/null", O_RDWR | O_CLOEXEC));
    case FdKind::kEpoll: return UniqueFd(epoll_create1(EPOLL_CLOEXEC));
    case FdKind::kUnixStream: return NewSocket(AF_UNIX, SOCK_STREAM);
    case FdKind::kTcp4: return NewSocket(AF_INET, SOCK_STREAM);
    case FdKind::kUdp4: return NewSocket(AF_INET, SOCK_DGRAM);
    case FdKind::kTcp6: return NewSocket(AF_INET6, SOCK_STREAM);
    case FdKind::kUdp6: return NewSocket(AF_INET6, SOCK_DGRAM);
    case FdKind::kTcp4Loopback: return BoundSocket(AF_INET, SOCK_STREAM, "127.0.0.1", port);
    case FdKind::kUdp4Loopback: return BoundSocket(AF_INET, SOCK_DGRAM, "127.0.0.1", port);
    case FdKind::kTcp4Wildcard: return BoundSocket(AF_INET, SOCK_STREAM, "0.0.0.0", port);
    case FdKind::kTcp6Wildcard: return BoundSocket(AF_INET6, SOCK_STREAM, "::", port);
    case FdKind::kUdp6Loopback: return BoundSocket(AF_INET6, SOCK_DGRAM, "::1", port);
    case FdKind::kTcp4Listening: {
      UniqueFd s = BoundSocket(AF_INET, SOCK_STREAM, "127.0.0.1", 0);
      if (s) listen(s.get(), 4);
      return s;
    }
    case FdKind::kUdp4Connected: {
      UniqueFd s = NewSocket(AF_INET, SOCK_DGRAM);
      struct sockaddr_in to {};
      to.sin_family = AF_INET;
      to.sin_port = htons(9);
      to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (s) connect(s.get(), reinterpret_cast<struct sockaddr*>(&to), sizeof(to));
      return s;
    }
  }
  return UniqueFd();
}

}  // namespace reuseport::fuzz
