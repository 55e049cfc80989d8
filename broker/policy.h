// Who may join which port beyond the kernel's own rules. Today: ports below
// 1024 need CAP_NET_BIND_SERVICE in the broker's user namespace, exactly as a
// bind() of their own would; the broker must never be a way around that.
#ifndef REUSEPORT_BROKER_POLICY_H_
#define REUSEPORT_BROKER_POLICY_H_

#include <cstdint>

#include "peer_identity.h"

namespace reuseport::broker {

class Policy {
 public:
  // Linux's PROT_SOCK: on 3.2 a fixed 1024 (4.11 made it a sysctl).
  static constexpr uint16_t kFirstUnprivilegedPort = 1024;

  // May the process behind `peer` have traffic of `port` handed to it without
  // having bound the port itself?
  bool MayJoinPort(const PeerCredentials& peer, uint16_t port) const;
};

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_POLICY_H_
