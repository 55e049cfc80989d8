// What the kernel says about a socket a client passed us. The broker trusts
// these facts, never the client's description of its socket.
#ifndef REUSEPORT_BROKER_SOCKET_FACTS_H_
#define REUSEPORT_BROKER_SOCKET_FACTS_H_

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "reuseport/protocol.h"

namespace reuseport::broker {

struct SocketFacts {
  int family = 0;    // AF_INET / AF_INET6
  int protocol = 0;  // RP_PROTO_TCP / RP_PROTO_UDP
  bool bound = false;
  rp_address address{};  // getsockname(); port 0 when unbound
  bool v6only = false;
  bool listening = false;
  bool connected = false;
  uid_t owner_uid = 0;  // the creator's fsuid: what the kernel compares for SO_REUSEPORT
  ino_t inode = 0;
};

// Fails (with a reason) for anything but an IPv4/IPv6 TCP or UDP socket.
absl::StatusOr<SocketFacts> InspectSocket(int fd);

// Formats "0.0.0.0:8080", "[::1]:53".
std::string FormatAddress(const rp_address& a);

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_SOCKET_FACTS_H_
