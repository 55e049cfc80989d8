#include "socket_options.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "real_calls.h"

namespace reuseport::shim {

namespace {

enum class Kind : uint8_t { kInt, kBuffer, kLinger };
enum FamilyMask : uint8_t { kV4 = 1, kV6 = 2, kBoth = 3 };

struct OptionSpec {
  int level;
  int name;
  Kind kind;
  uint8_t families;
};

// What Linux copies from a listener to the sockets it accepts (sk_clone and
// tcp_create_openreq_child) and programs commonly set on listeners.
constexpr OptionSpec kOptions[kInheritedOptionCount] = {
    {SOL_SOCKET, SO_KEEPALIVE, Kind::kInt, kBoth},
    {SOL_SOCKET, SO_RCVBUF, Kind::kBuffer, kBoth},
    {SOL_SOCKET, SO_SNDBUF, Kind::kBuffer, kBoth},
    {SOL_SOCKET, SO_LINGER, Kind::kLinger, kBoth},
    {SOL_SOCKET, SO_OOBINLINE, Kind::kInt, kBoth},
    {SOL_SOCKET, SO_PRIORITY, Kind::kInt, kBoth},
    {IPPROTO_TCP, TCP_NODELAY, Kind::kInt, kBoth},
    {IPPROTO_TCP, TCP_CORK, Kind::kInt, kBoth},
    {IPPROTO_TCP, TCP_KEEPIDLE, Kind::kInt, kBoth},
    {IPPROTO_TCP, TCP_KEEPINTVL, Kind::kInt, kBoth},
    {IPPROTO_TCP, TCP_KEEPCNT, Kind::kInt, kBoth},
    {IPPROTO_TCP, TCP_USER_TIMEOUT, Kind::kInt, kBoth},
    {IPPROTO_IP, IP_TOS, Kind::kInt, kV4},
    {IPPROTO_IPV6, IPV6_TCLASS, Kind::kInt, kV6},
};

bool AppliesTo(const OptionSpec& spec, int family) {
  return (spec.families & (family == AF_INET6 ? kV6 : kV4)) != 0;
}

// kUnknown marks "could not read" (no option holds INT64_MIN), so such an
// option is never applied.
constexpr int64_t kUnknown = INT64_MIN;

int64_t ReadOne(int fd, const OptionSpec& spec) {
  if (spec.kind == Kind::kLinger) {
    struct linger l {};
    socklen_t len = sizeof(l);
    if (Real().getsockopt(fd, spec.level, spec.name, &l, &len) != 0) return kUnknown;
    return l.l_onoff ? (static_cast<int64_t>(1) << 32) | static_cast<uint32_t>(l.l_linger) : 0;
  }
  int v = 0;
  socklen_t len = sizeof(v);
  if (Real().getsockopt(fd, spec.level, spec.name, &v, &len) != 0) return kUnknown;
  return v;
}

void WriteOne(int fd, const OptionSpec& spec, int64_t value) {
  if (value == kUnknown) return;
  if (spec.kind == Kind::kLinger) {
    struct linger l {};
    l.l_onoff = (value >> 32) != 0;
    l.l_linger = static_cast<int>(value & 0xffffffff);
    Real().setsockopt(fd, spec.level, spec.name, &l, sizeof(l));
    return;
  }
  // getsockopt reports buffer sizes doubled (the kernel's bookkeeping share);
  // setting half reproduces the same value.
  int v = static_cast<int>(spec.kind == Kind::kBuffer ? value / 2 : value);
  Real().setsockopt(fd, spec.level, spec.name, &v, sizeof(v));
}

}  // namespace

int InheritedOptionIndex(int level, int name) {
  for (int i = 0; i < kInheritedOptionCount; ++i) {
    if (kOptions[i].level == level && kOptions[i].name == name) return i;
  }
  return -1;
}

void ReadInheritedOptions(int fd, int family, int64_t values[kInheritedOptionCount]) {
  for (int i = 0; i < kInheritedOptionCount; ++i) {
    values[i] = AppliesTo(kOptions[i], family) ? ReadOne(fd, kOptions[i]) : kUnknown;
  }
}

void UpdateDifferMask(InheritedOptions* options) {
  uint32_t mask = 0;
  for (int i = 0; i < kInheritedOptionCount; ++i) {
    if (options->wanted[i] != kUnknown && options->listener[i] != kUnknown &&
        options->wanted[i] != options->listener[i]) {
      mask |= 1u << i;
    }
  }
  options->differ_mask = mask;
}

void WriteInheritedOptions(int fd, int family, const int64_t values[kInheritedOptionCount]) {
  for (int i = 0; i < kInheritedOptionCount; ++i) {
    if (!AppliesTo(kOptions[i], family) || values[i] == kUnknown) continue;
    if (ReadOne(fd, kOptions[i]) != values[i]) WriteOne(fd, kOptions[i], values[i]);
  }
}

void ApplyInheritedOptions(int accepted_fd, int family, const InheritedOptions& options) {
  uint32_t mask = options.differ_mask;
  while (mask != 0) {
    int i = __builtin_ctz(mask);
    mask &= mask - 1;
    if (AppliesTo(kOptions[i], family)) WriteOne(accepted_fd, kOptions[i], options.wanted[i]);
  }
}

namespace {

// The socket's own options worth carrying over to a holder (not inherited by
// accepted sockets, but read back by programs and used by the shim).
constexpr OptionSpec kOwnOptions[] = {
    {IPPROTO_IPV6, IPV6_V6ONLY, Kind::kInt, kV6},
    {SOL_SOCKET, SO_REUSEADDR, Kind::kInt, kBoth},
    {SOL_SOCKET, SO_BROADCAST, Kind::kInt, kBoth},
    {IPPROTO_IP, IP_PKTINFO, Kind::kInt, kV4},
    {IPPROTO_IPV6, IPV6_RECVPKTINFO, Kind::kInt, kV6},
    {IPPROTO_IP, IP_TTL, Kind::kInt, kV4},
    {IPPROTO_IPV6, IPV6_UNICAST_HOPS, Kind::kInt, kV6},
};

void CopyTimeout(int from_fd, int to_fd, int name) {
  struct timeval tv {};
  socklen_t len = sizeof(tv);
  if (Real().getsockopt(from_fd, SOL_SOCKET, name, &tv, &len) == 0 && (tv.tv_sec != 0 || tv.tv_usec != 0)) {
    Real().setsockopt(to_fd, SOL_SOCKET, name, &tv, sizeof(tv));
  }
}

}  // namespace

void CopySocketOptions(int from_fd, int to_fd, int family) {
  for (const OptionSpec& spec : kOwnOptions) {
    if (!AppliesTo(spec, family)) continue;
    int64_t value = ReadOne(from_fd, spec);
    if (value != kUnknown && ReadOne(to_fd, spec) != value) WriteOne(to_fd, spec, value);
  }
  CopyTimeout(from_fd, to_fd, SO_RCVTIMEO);
  CopyTimeout(from_fd, to_fd, SO_SNDTIMEO);
  int64_t values[kInheritedOptionCount];
  ReadInheritedOptions(from_fd, family, values);
  WriteInheritedOptions(to_fd, family, values);
}

bool AffectsSending(int level, int name) {
  if (level == SOL_SOCKET) {
    return name == SO_BROADCAST || name == SO_SNDBUF || name == SO_PRIORITY || name == SO_DONTROUTE ||
           name == SO_BINDTODEVICE || name == SO_MARK;
  }
  if (level == IPPROTO_IP) {
    return name == IP_TTL || name == IP_TOS || name == IP_MULTICAST_IF || name == IP_MULTICAST_TTL ||
           name == IP_MULTICAST_LOOP || name == IP_ADD_MEMBERSHIP || name == IP_DROP_MEMBERSHIP ||
           name == IP_MTU_DISCOVER;
  }
  if (level == IPPROTO_IPV6) {
    return name == IPV6_UNICAST_HOPS || name == IPV6_TCLASS || name == IPV6_MULTICAST_IF ||
           name == IPV6_MULTICAST_HOPS || name == IPV6_MULTICAST_LOOP || name == IPV6_ADD_MEMBERSHIP ||
           name == IPV6_DROP_MEMBERSHIP || name == IPV6_MTU_DISCOVER;
  }
  return false;
}

int IntOption(int fd, int level, int name) {
  int v = 0;
  socklen_t len = sizeof(v);
  return Real().getsockopt(fd, level, name, &v, &len) == 0 ? v : 0;
}

void SetIntOption(int fd, int level, int name, int v) { Real().setsockopt(fd, level, name, &v, sizeof(v)); }

int ReturnInt(int v, void* value, socklen_t* len) {
  if (value == nullptr || len == nullptr) {
    errno = EFAULT;
    return -1;
  }
  if (static_cast<int>(*len) < 0) {
    errno = EINVAL;
    return -1;
  }
  socklen_t n = *len < sizeof(int) ? *len : sizeof(int);
  memcpy(value, &v, n);
  *len = n;
  return 0;
}

int CheckIntArgument(const void* value, socklen_t len) {
  if (value == nullptr) {
    errno = EFAULT;
    return -1;
  }
  if (len < sizeof(int)) {
    errno = EINVAL;
    return -1;
  }
  return 0;
}

}  // namespace reuseport::shim
