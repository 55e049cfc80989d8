#ifndef REUSEPORT_TESTS_SUPPORT_SOCKET_ADDRESS_H_
#define REUSEPORT_TESTS_SUPPORT_SOCKET_ADDRESS_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace reuseport::testing {

// An IPv4 or IPv6 socket address (numeric only; no name resolution). Value type.
class SocketAddress {
 public:
  // A host containing ':' is an IPv6 literal, anything else IPv4.
  static absl::StatusOr<SocketAddress> Parse(std::string_view host, uint16_t port);
  // Validates the length against the family before reading the address.
  static absl::StatusOr<SocketAddress> FromSockaddr(const sockaddr* addr, socklen_t len);
  static absl::StatusOr<SocketAddress> FromStorage(const sockaddr_storage& storage);
  // getsockname() of fd.
  static absl::StatusOr<SocketAddress> LocalOf(int fd);

  int family() const { return storage_.ss_family; }
  uint16_t port() const;
  // The numeric IP, without brackets.
  std::string ip() const;
  // "127.0.0.1:80" or "[::1]:80".
  std::string ToString() const;
  // The wildcard address of the same family, port 0 (for binding clients).
  SocketAddress AnyOfSameFamily() const;

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t size() const { return size_; }
  const sockaddr_storage& storage() const { return storage_; }

  // Same family, IP and port.
  bool operator==(const SocketAddress& other) const;

 private:
  SocketAddress() = default;

  sockaddr_storage storage_{};
  socklen_t size_ = 0;
};

}  // namespace reuseport::testing

#endif  // REUSEPORT_TESTS_SUPPORT_SOCKET_ADDRESS_H_
