#include "socket_facts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "reuseport/address_codec.h"

namespace reuseport::broker {

namespace {

int IntOption(int fd, int level, int name, bool* ok) {
  int v = 0;
  socklen_t len = sizeof(v);
  *ok = getsockopt(fd, level, name, &v, &len) == 0;
  return v;
}

}  // namespace

absl::StatusOr<SocketFacts> InspectSocket(int fd) {
  SocketFacts f;
  struct stat st {};
  if (fstat(fd, &st) != 0) return absl::InvalidArgumentError(absl::StrFormat("fstat: %s", strerror(errno)));
  if (!S_ISSOCK(st.st_mode)) return absl::InvalidArgumentError("not a socket");
  f.owner_uid = st.st_uid;
  f.inode = st.st_ino;
  bool ok = false;
  f.family = IntOption(fd, SOL_SOCKET, SO_DOMAIN, &ok);
  if (!ok || (f.family != AF_INET && f.family != AF_INET6)) return absl::InvalidArgumentError("not an IPv4 or IPv6 socket");
  int type = IntOption(fd, SOL_SOCKET, SO_TYPE, &ok);
  if (!ok) return absl::InvalidArgumentError("SO_TYPE unreadable");
  int protocol = IntOption(fd, SOL_SOCKET, SO_PROTOCOL, &ok);
  if (!ok) return absl::InvalidArgumentError("SO_PROTOCOL unreadable");
  if (type == SOCK_STREAM && protocol == IPPROTO_TCP) {
    f.protocol = RP_PROTO_TCP;
  } else if (type == SOCK_DGRAM && protocol == IPPROTO_UDP) {
    f.protocol = RP_PROTO_UDP;
  } else {
    return absl::InvalidArgumentError("not a TCP or UDP socket");
  }
  if (f.family == AF_INET6) f.v6only = IntOption(fd, IPPROTO_IPV6, IPV6_V6ONLY, &ok) != 0;
  struct sockaddr_storage ss {};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) != 0 ||
      rp_address_from_sockaddr(reinterpret_cast<struct sockaddr*>(&ss), len, &f.address) != 0) {
    return absl::InvalidArgumentError("getsockname failed");
  }
  f.bound = f.address.port != 0;
  if (f.protocol == RP_PROTO_TCP) f.listening = IntOption(fd, SOL_SOCKET, SO_ACCEPTCONN, &ok) != 0;
  len = sizeof(ss);
  f.connected = getpeername(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) == 0;
  return f;
}

std::string FormatAddress(const rp_address& a) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (a.family == AF_INET) {
    inet_ntop(AF_INET, a.addr, text, sizeof(text));
    return absl::StrFormat("%s:%d", text, a.port);
  }
  inet_ntop(AF_INET6, a.addr, text, sizeof(text));
  return absl::StrFormat("[%s]:%d", text, a.port);
}

}  // namespace reuseport::broker
