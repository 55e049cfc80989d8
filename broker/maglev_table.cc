#include "maglev_table.h"

#include <algorithm>
#include <numeric>

namespace reuseport::broker {

namespace {

// Prime sizes: each member owns size/N entries give or take one, so shares
// differ by under 1% with 4 members and under 7% with 64.
uint32_t TableSizeFor(size_t members) {
  if (members <= 64) return 1031;
  if (members <= 512) return 8191;
  return 65521;
}

uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

}  // namespace

void MaglevTable::Build(absl::Span<const uint64_t> member_keys) {
  entries_.clear();
  size_t n = member_keys.size();
  if (n == 0) return;
  const uint32_t m = TableSizeFor(n);
  // Populate in key order so the table depends only on the set of members.
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return member_keys[a] < member_keys[b]; });
  std::vector<uint32_t> offset(n), skip(n), next(n, 0);
  for (size_t i = 0; i < n; ++i) {
    uint64_t k = member_keys[order[i]];
    offset[i] = static_cast<uint32_t>(Mix(k ^ 0x5bd1e995ULL) % m);
    skip[i] = static_cast<uint32_t>(Mix(k ^ 0x27d4eb2fULL) % (m - 1) + 1);
  }
  std::vector<int32_t> table(m, -1);
  uint32_t filled = 0;
  while (filled < m) {
    for (size_t i = 0; i < n && filled < m; ++i) {
      uint32_t c;
      do {
        c = static_cast<uint32_t>((offset[i] + static_cast<uint64_t>(next[i]) * skip[i]) % m);
        ++next[i];
      } while (table[c] >= 0);
      table[c] = static_cast<int32_t>(order[i]);
      ++filled;
    }
  }
  entries_.assign(table.begin(), table.end());
}

}  // namespace reuseport::broker
