// The kinds of fds the fuzzers attach to records: everything a hostile or
// confused client could pass where the protocol wants a TCP or UDP socket or
// a channel. A kind is chosen by one input byte (FdKindFromByte).
#ifndef REUSEPORT_TESTS_FUZZ_FD_KINDS_H_
#define REUSEPORT_TESTS_FUZZ_FD_KINDS_H_

#include <stdint.h>

#include "unique_fd.h"

namespace reuseport::fuzz {

enum class FdKind : uint8_t {
  kPipeRead = 0,
  kPipeWrite = 1,
  kDevNull = 2,
  kEpoll = 3,
  kUnixStream = 4,
  kTcp4 = 5,            // unbound
  kUdp4 = 6,            // unbound
  kTcp6 = 7,            // unbound
  kUdp6 = 8,            // unbound
  kTcp4Loopback = 9,    // bound to 127.0.0.1:port
  kUdp4Loopback = 10,   // bound to 127.0.0.1:port
  kTcp4Wildcard = 11,   // bound to 0.0.0.0:port
  kTcp6Wildcard = 12,   // bound to [::]:port, dual-stack
  kUdp6Loopback = 13,   // bound to [::1]:port
  kTcp4Listening = 14,  // bound to 127.0.0.1 on a port the kernel picks, listening
  kUdp4Connected = 15,  // connected to 127.0.0.1:9 (so also bound)
};
inline constexpr int kFdKindCount = 16;

inline FdKind FdKindFromByte(uint8_t b) { return static_cast<FdKind>(b % kFdKindCount); }

const char* FdKindName(FdKind kind);

// A new fd of `kind`, close-on-exec. Kinds bound to a port use `port` with
// SO_REUSEADDR, falling back to a port the kernel picks when it is taken (by
// another fuzzer process, say); 0 always lets the kernel pick. Returns an
// invalid fd only when the kernel refuses to make one at all.
reuseport::broker::UniqueFd MakeFd(FdKind kind, uint16_t port);

}  // namespace reuseport::fuzz

#endif  // REUSEPORT_TESTS_FUZZ_FD_KINDS_H_
