// Maglev: even shares, and minimal movement when membership changes.
#include "maglev_table.h"

#include <map>
#include <vector>

#include "flow_hash.h"
#include "gtest/gtest.h"

namespace reuseport::broker {
namespace {

std::vector<int> Assign(const MaglevTable& t, int flows) {
  std::vector<int> out;
  FlowKey key{1, 2};
  for (int i = 0; i < flows; ++i) {
    uint64_t x = static_cast<uint64_t>(i);
    out.push_back(t.Lookup(SipHash13(key, &x, sizeof(x))));
  }
  return out;
}

TEST(MaglevTableTest, EmptyTableHasNoMember) {
  MaglevTable t;
  t.Build({});
  EXPECT_EQ(t.Lookup(123), -1);
}

TEST(MaglevTableTest, SharesAreEven) {
  for (size_t n : {2u, 4u, 7u, 64u}) {
    std::vector<uint64_t> keys;
    for (size_t i = 0; i < n; ++i) keys.push_back(1000 + i * 7919);
    MaglevTable t;
    t.Build(keys);
    std::map<int, int> entries;
    for (uint64_t h = 0; h < t.size(); ++h) ++entries[t.Lookup(h)];
    ASSERT_EQ(entries.size(), n);
    int lo = t.size(), hi = 0;
    for (auto& [m, c] : entries) {
      lo = std::min(lo, c);
      hi = std::max(hi, c);
    }
    EXPECT_LE(hi - lo, 1) << n << " members";
  }
}

TEST(MaglevTableTest, ResultDependsOnTheSetNotTheOrder) {
  MaglevTable a, b;
  a.Build({10, 20, 30});
  b.Build({30, 10, 20});
  std::vector<uint64_t> ka = {10, 20, 30}, kb = {30, 10, 20};
  for (uint64_t h = 0; h < a.size(); ++h) EXPECT_EQ(ka[a.Lookup(h)], kb[b.Lookup(h)]);
}

TEST(MaglevTableTest, RemovingOneOfFourMovesAboutAQuarter) {
  std::vector<uint64_t> four = {11, 22, 33, 44}, three = {11, 22, 44};
  MaglevTable before, after;
  before.Build(four);
  after.Build(three);
  const int flows = 100000;
  std::vector<int> b = Assign(before, flows), a = Assign(after, flows);
  int moved = 0, moved_from_survivors = 0;
  for (int i = 0; i < flows; ++i) {
    uint64_t was = four[b[i]], now = three[a[i]];
    if (was != now) {
      ++moved;
      if (was != 33) ++moved_from_survivors;
    }
  }
  double fraction = static_cast<double>(moved) / flows;
  EXPECT_NEAR(fraction, 0.25, 0.05);
  // Maglev trades a little stability for balance; most moved flows are the leaver's.
  EXPECT_LT(static_cast<double>(moved_from_survivors) / flows, 0.05);
}

TEST(MaglevTableTest, AddingAFifthMovesAboutAFifth) {
  MaglevTable before, after;
  before.Build({11, 22, 33, 44});
  after.Build({11, 22, 33, 44, 55});
  std::vector<uint64_t> k4 = {11, 22, 33, 44}, k5 = {11, 22, 33, 44, 55};
  std::vector<int> b = Assign(before, 100000), a = Assign(after, 100000);
  int moved = 0;
  for (size_t i = 0; i < b.size(); ++i) moved += k4[b[i]] != k5[a[i]];
  EXPECT_NEAR(moved / 100000.0, 0.20, 0.05);
}

}  // namespace
}  // namespace reuseport::broker
