#include "load_target.h"

#include <algorithm>

namespace reuseport::testing::load_internal {

absl::StatusOr<SocketAddress> ResolveTarget(const std::string& host, uint16_t port,
                                            const std::optional<sockaddr_storage>& address) {
  if (address.has_value()) return SocketAddress::FromStorage(*address);
  return SocketAddress::Parse(host, port);
}

int MillisecondsUntil(absl::Time deadline, absl::Time now) {
  if (deadline <= now) return 0;
  return static_cast<int>(
      absl::ToInt64Milliseconds(absl::Ceil(deadline - now, absl::Milliseconds(1))));
}

void AddExample(std::vector<std::string>& examples, std::string example) {
  constexpr size_t kMaxExamples = 8;
  if (examples.size() < kMaxExamples) examples.push_back(std::move(example));
}

}  // namespace reuseport::testing::load_internal
