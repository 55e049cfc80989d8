#include "channel_proof.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "flow_hash.h"
#include "reuseport/protocol.h"
#include "wire.h"

namespace reuseport::broker {

namespace {

// Nonces need not be secret (nobody but the broker reads the broker's end),
// only fresh, so stale records from an earlier failed proof never match.
rp_channel_proof NextNonce() {
  static const FlowKey base = RandomFlowKey();
  static uint64_t counter = 0;
  ++counter;
  return rp_channel_proof{{base.k0 ^ counter, base.k1 + counter}};
}

}  // namespace

bool IsChannelSocket(int fd) {
  int domain = 0, type = 0;
  socklen_t len = sizeof(domain);
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) return false;
  len = sizeof(type);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) return false;
  return domain == AF_UNIX && type == SOCK_SEQPACKET;
}

bool ProvesChannel(int claimed_member_end, int broker_end) {
  if (claimed_member_end == broker_end || !IsChannelSocket(claimed_member_end)) return false;
  rp_channel_proof nonce = NextNonce();
  rp_header h = MakeHeader(RP_OP_CHANNEL_PROOF, sizeof(nonce), 0);
  if (SendRecord(claimed_member_end, h, &nonce, sizeof(nonce), nullptr, 0, {}, MSG_DONTWAIT) != 0) return false;
  // Read until our record or nothing is left: whatever else is there was put
  // there by a misbehaving holder of the member's end and means nothing.
  char buffer[sizeof(rp_header) + sizeof(rp_channel_proof)];
  for (int i = 0; i < 64; ++i) {
    ssize_t n = recv(broker_end, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;  // nothing arrived: the claimed end leads elsewhere
    if (n != static_cast<ssize_t>(sizeof(buffer))) continue;
    rp_header got;
    rp_channel_proof proof;
    memcpy(&got, buffer, sizeof(got));
    memcpy(&proof, buffer + sizeof(got), sizeof(proof));
    if (got.magic == RP_MAGIC && got.opcode == RP_OP_CHANNEL_PROOF && memcmp(&proof, &nonce, sizeof(nonce)) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace reuseport::broker
