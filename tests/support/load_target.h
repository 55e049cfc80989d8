#ifndef REUSEPORT_TESTS_SUPPORT_LOAD_TARGET_H_
#define REUSEPORT_TESTS_SUPPORT_LOAD_TARGET_H_

// Internal to the load clients: the parts both the TCP and UDP client need.

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "socket_address.h"

namespace reuseport::testing::load_internal {

// `address` if set, else host + port.
absl::StatusOr<SocketAddress> ResolveTarget(const std::string& host, uint16_t port,
                                            const std::optional<sockaddr_storage>& address);

// Milliseconds until `deadline` for epoll_wait/poll: rounded up, never negative.
int MillisecondsUntil(absl::Time deadline, absl::Time now);

// Keeps the first few example messages.
void AddExample(std::vector<std::string>& examples, std::string example);

}  // namespace reuseport::testing::load_internal

#endif  // REUSEPORT_TESTS_SUPPORT_LOAD_TARGET_H_
