#include "reply_check.h"

#include <errno.h>
#include <string.h>

#include <algorithm>

#include "fuzz_check.h"

namespace reuseport::fuzz {

using reuseport::broker::Record;
using reuseport::broker::RecordError;

SentRequest DescribeRequest(const std::string& bytes, size_t fd_count) {
  SentRequest r;
  r.fd_count = fd_count;
  if (bytes.size() >= sizeof(rp_header)) {
    memcpy(&r.header, bytes.data(), sizeof(r.header));
    r.header_readable = r.header.magic == RP_MAGIC;
  }
  RecordError ignored;
  size_t length = std::min<size_t>(bytes.size(), RP_MAX_RECORD);
  r.well_framed =
      reuseport::broker::ParseRecord(absl::MakeConstSpan(bytes.data(), length), bytes.size() > RP_MAX_RECORD, &r.parsed, &ignored);
  return r;
}

bool IsObeyedTakeover(const SentRequest& q) {
  // The fuzzer runs as root or as the broker's uid, whom the broker obeys.
  return q.well_framed && q.header.opcode == RP_OP_TAKEOVER && !(q.header.flags & RP_FLAG_REPLY) &&
         q.parsed.payload.empty() && q.fd_count == 0;
}

namespace {

std::string Describe(const SentRequest& q, const Record& a) {
  return absl::StrFormat(
      "request: readable %d framed %d opcode %d flags %d id %d payload %d fds %d; reply: opcode %d flags 0x%x id %d "
      "status %d payload %d trailing %d fds %d",
      q.header_readable, q.well_framed, q.header.opcode, q.header.flags, q.header.request_id, q.parsed.payload.size(),
      q.fd_count, a.header.opcode, a.header.flags, a.header.request_id, a.header.status, a.payload.size(),
      a.trailing.size(), a.fds.size());
}

bool IsRequestOpcode(uint16_t op) {
  return op == RP_OP_BIND || op == RP_OP_LISTEN || op == RP_OP_ATTACH || op == RP_OP_REJOIN || op == RP_OP_TAKEOVER ||
         op == RP_OP_STATUS;
}

void CheckMemberReply(const SentRequest& q, const Record& a) {
  FUZZ_CHECK(a.payload.size() == sizeof(rp_member_reply), Describe(q, a));
  rp_member_reply m;
  memcpy(&m, a.payload.data(), sizeof(m));
  FUZZ_CHECK(m.protocol == RP_PROTO_TCP || m.protocol == RP_PROTO_UDP, Describe(q, a));
  FUZZ_CHECK(m.bound.family == AF_INET || m.bound.family == AF_INET6, Describe(q, a));
  FUZZ_CHECK(m.bound.port != 0, "a member reply with port 0: " + Describe(q, a));
  if (q.header.opcode == RP_OP_BIND) {
    rp_bind_request b;
    memcpy(&b, q.parsed.payload.data(), sizeof(b));
    FUZZ_CHECK(m.protocol == b.protocol, "BIND joined another protocol: " + Describe(q, a));
    FUZZ_CHECK(m.bound.family == b.address.family, "BIND joined another family: " + Describe(q, a));
    FUZZ_CHECK(b.address.port == 0 || m.bound.port == b.address.port, "BIND joined another port: " + Describe(q, a));
  }
  // A REJOIN is not compared with its request: a channel the broker already
  // knows (another process of a member that rejoined) is answered with that
  // member's group, whatever the payload claims, as ATTACH would be.
}

}  // namespace

void CheckReply(const SentRequest& q, const Record& a) {
  const rp_header& h = a.header;
  FUZZ_CHECK(h.magic == RP_MAGIC && h.version == RP_VERSION && h.header_size == sizeof(rp_header), Describe(q, a));
  FUZZ_CHECK(h.flags & RP_FLAG_REPLY, "reply without RP_FLAG_REPLY: " + Describe(q, a));
  FUZZ_CHECK((h.flags & ~(RP_FLAG_REPLY | RP_FLAG_MORE)) == 0, Describe(q, a));
  FUZZ_CHECK(h.status >= 0 && h.status < 4096, "status is not 0 or an errno: " + Describe(q, a));
  FUZZ_CHECK(h.reserved == 0, Describe(q, a));
  if (q.header_readable) {
    FUZZ_CHECK(h.request_id == q.header.request_id && h.opcode == q.header.opcode,
               "opcode/request_id not echoed: " + Describe(q, a));
  } else {
    FUZZ_CHECK(h.request_id == 0 && h.opcode == 0, "an unreadable request got a reply naming one: " + Describe(q, a));
  }
  bool more = (h.flags & RP_FLAG_MORE) != 0;
  FUZZ_CHECK(!more || (q.header.opcode == RP_OP_STATUS && h.status == 0), "RP_FLAG_MORE outside STATUS: " + Describe(q, a));

  if (h.status != 0) {
    FUZZ_CHECK(a.payload.empty() && a.trailing.empty() && a.fds.empty(), "an error reply with a body: " + Describe(q, a));
    if (q.well_framed && q.fd_count > RP_MAX_FDS) FUZZ_CHECK(h.status == EBADMSG, Describe(q, a));
    return;
  }
  // Success is only possible for a well-framed request of a known opcode.
  FUZZ_CHECK(q.well_framed && q.fd_count <= RP_MAX_FDS && !(q.header.flags & RP_FLAG_REPLY) &&
                 IsRequestOpcode(q.header.opcode),
             "success for a request that cannot succeed: " + Describe(q, a));
  // A UDP member's datagram ring travels last (RP_MEMBER_RING).
  size_t ring = 0;
  if (a.payload.size() == sizeof(rp_member_reply)) {
    rp_member_reply m;
    memcpy(&m, a.payload.data(), sizeof(m));
    ring = (m.flags & RP_MEMBER_RING) ? 1 : 0;
    FUZZ_CHECK(!ring || m.protocol == RP_PROTO_UDP, "a ring for a TCP member: " + Describe(q, a));
  }
  switch (q.header.opcode) {
    case RP_OP_BIND:
      FUZZ_CHECK(q.parsed.payload.size() == sizeof(rp_bind_request) && q.fd_count == 1, Describe(q, a));
      FUZZ_CHECK(a.fds.size() == 3 + ring, "BIND success without [channel, channel_peer, group socket]: " + Describe(q, a));
      CheckMemberReply(q, a);
      break;
    case RP_OP_ATTACH:
      FUZZ_CHECK(q.parsed.payload.empty() && q.fd_count == 1, Describe(q, a));
      FUZZ_CHECK(a.fds.size() == 2 + ring, "ATTACH success without [channel_peer, group socket]: " + Describe(q, a));
      CheckMemberReply(q, a);
      break;
    case RP_OP_REJOIN:
      FUZZ_CHECK(q.parsed.payload.size() == sizeof(rp_rejoin_request) && (q.fd_count == 3 || q.fd_count == 4),
                 Describe(q, a));
      FUZZ_CHECK(a.fds.empty(), "REJOIN success with fds: " + Describe(q, a));
      CheckMemberReply(q, a);
      break;
    case RP_OP_LISTEN:
    case RP_OP_TAKEOVER:
      FUZZ_CHECK(a.payload.empty() && a.trailing.empty() && a.fds.empty(), Describe(q, a));
      break;
    case RP_OP_STATUS:
      FUZZ_CHECK(a.payload.empty() && a.fds.empty(), Describe(q, a));
      FUZZ_CHECK(!a.trailing.empty(), "a STATUS chunk without text: " + Describe(q, a));
      break;
  }
}

}  // namespace reuseport::fuzz
