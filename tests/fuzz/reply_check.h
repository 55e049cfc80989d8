// What a reply must look like given the request it answers (protocol.h):
// the request's opcode and request_id echoed, RP_FLAG_REPLY, a status of 0 or
// an errno, and the payload and fds of that opcode's reply, no more.
#ifndef REUSEPORT_TESTS_FUZZ_REPLY_CHECK_H_
#define REUSEPORT_TESTS_FUZZ_REPLY_CHECK_H_

#include <stddef.h>

#include <string>

#include "wire.h"

namespace reuseport::fuzz {

// A request as sent, and as the broker's framing check sees it.
struct SentRequest {
  bool header_readable = false;  // long enough for a header, with our magic
  rp_header header{};            // valid when header_readable
  bool well_framed = false;      // ParseRecord accepts it
  reuseport::broker::Record parsed;  // valid when well_framed (no fds)
  size_t fd_count = 0;
};

SentRequest DescribeRequest(const std::string& bytes, size_t fd_count);

// A TAKEOVER the broker will obey: it answers 0 and stops serving (by design:
// a successor has its socket). The fuzzer then starts a new broker.
bool IsObeyedTakeover(const SentRequest& request);

// Traps (FUZZ_CHECK) on a reply that cannot be the answer to `request`.
void CheckReply(const SentRequest& request, const reuseport::broker::Record& reply);

}  // namespace reuseport::fuzz

#endif  // REUSEPORT_TESTS_FUZZ_REPLY_CHECK_H_
