// The hash that picks a member for a connection or datagram: SipHash-1-3 over
// the 4-tuple, keyed with a secret chosen at start so that clients cannot aim
// their flows at one member.
#ifndef REUSEPORT_BROKER_FLOW_HASH_H_
#define REUSEPORT_BROKER_FLOW_HASH_H_

#include <cstddef>
#include <cstdint>

#include "reuseport/protocol.h"

namespace reuseport::broker {

struct FlowKey {
  uint64_t k0 = 0;
  uint64_t k1 = 0;
};

// Fills a key from /dev/urandom (getrandom() is 3.17; we run on 3.2).
FlowKey RandomFlowKey();

// SipHash with c compression and d finalization rounds; SipHash13 is what
// the broker uses (as the kernel's siphash.h offers for hash tables).
uint64_t SipHash(const FlowKey& key, const void* data, size_t size, int c_rounds, int d_rounds);
inline uint64_t SipHash13(const FlowKey& key, const void* data, size_t size) { return SipHash(key, data, size, 1, 3); }

// Hash of (source address, source port, destination address, destination port).
uint64_t FlowHash(const FlowKey& key, const rp_address& source, const rp_address& destination);

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_FLOW_HASH_H_
