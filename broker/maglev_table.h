// Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table that
// maps a flow hash to a member in O(1), and when a member joins or leaves moves
// only about 1/N of the table (the kernel's modulo moves most flows).
//
// Thread-safety: none; owned by one Group on the event loop.
#ifndef REUSEPORT_BROKER_MAGLEV_TABLE_H_
#define REUSEPORT_BROKER_MAGLEV_TABLE_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace reuseport::broker {

class MaglevTable {
 public:
  // Rebuilds for members identified by stable keys (their order does not
  // matter to the result: ties break by key).
  void Build(absl::Span<const uint64_t> member_keys);

  // Index into the keys given to Build, or -1 when there are none.
  int Lookup(uint64_t flow_hash) const {
    if (entries_.empty()) return -1;
    return entries_[flow_hash % entries_.size()];
  }

  size_t size() const { return entries_.size(); }

 private:
  std::vector<uint16_t> entries_;
};

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_MAGLEV_TABLE_H_
