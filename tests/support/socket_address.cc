#include "socket_address.h"

#include <arpa/inet.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace reuseport::testing {

absl::StatusOr<SocketAddress> SocketAddress::Parse(std::string_view host, uint16_t port) {
  std::string host_text(host);
  SocketAddress result;
  if (host_text.find(':') != std::string::npos) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&result.storage_);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    if (inet_pton(AF_INET6, host_text.c_str(), &in6->sin6_addr) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("not a numeric IPv6 address: ", host_text));
    }
    result.size_ = sizeof(sockaddr_in6);
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&result.storage_);
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    if (inet_pton(AF_INET, host_text.c_str(), &in4->sin_addr) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("not a numeric IPv4 address: ", host_text));
    }
    result.size_ = sizeof(sockaddr_in);
  }
  return result;
}

absl::StatusOr<SocketAddress> SocketAddress::FromSockaddr(const sockaddr* addr, socklen_t len) {
  if (len < static_cast<socklen_t>(sizeof(sa_family_t))) {
    return absl::InvalidArgumentError("socket address too short for a family");
  }
  socklen_t want = addr->sa_family == AF_INET    ? sizeof(sockaddr_in)
                   : addr->sa_family == AF_INET6 ? sizeof(sockaddr_in6)
                                                 : 0;
  if (want == 0) {
    return absl::InvalidArgumentError(absl::StrCat("not an IP family: ", addr->sa_family));
  }
  if (len < want) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket address length ", len, " too short for family ", addr->sa_family));
  }
  SocketAddress result;
  std::memcpy(&result.storage_, addr, want);
  result.size_ = want;
  return result;
}

absl::StatusOr<SocketAddress> SocketAddress::FromStorage(const sockaddr_storage& storage) {
  return FromSockaddr(reinterpret_cast<const sockaddr*>(&storage), sizeof(storage));
}

absl::StatusOr<SocketAddress> SocketAddress::LocalOf(int fd) {
  sockaddr_storage storage{};
  socklen_t len = sizeof(storage);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &len) != 0) {
    return absl::InternalError(absl::StrCat("getsockname: ", std::strerror(errno)));
  }
  return FromSockaddr(reinterpret_cast<const sockaddr*>(&storage), len);
}

uint16_t SocketAddress::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
}

std::string SocketAddress::ip() const {
  char buf[INET6_ADDRSTRLEN] = "?";
  const void* ip = family() == AF_INET
                       ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr)
                       : static_cast<const void*>(&reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr);
  inet_ntop(family(), ip, buf, sizeof(buf));
  return buf;
}

std::string SocketAddress::ToString() const {
  if (family() == AF_INET6) return absl::StrCat("[", ip(), "]:", port());
  return absl::StrCat(ip(), ":", port());
}

SocketAddress SocketAddress::AnyOfSameFamily() const {
  SocketAddress any;
  any.storage_.ss_family = storage_.ss_family;  // zeroed address and port: wildcard, 0
  any.size_ = size_;
  return any;
}

bool SocketAddress::operator==(const SocketAddress& other) const {
  if (family() != other.family() || port() != other.port()) return false;
  if (family() == AF_INET) {
    return reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr.s_addr ==
           reinterpret_cast<const sockaddr_in*>(&other.storage_)->sin_addr.s_addr;
  }
  return std::memcmp(&reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr,
                     &reinterpret_cast<const sockaddr_in6*>(&other.storage_)->sin6_addr,
                     sizeof(in6_addr)) == 0;
}

}  // namespace reuseport::testing
