#include "policy.h"

#include <linux/capability.h>

namespace reuseport::broker {

bool Policy::MayJoinPort(const PeerCredentials& peer, uint16_t port) const {
  if (port >= kFirstUnprivilegedPort) return true;
  // /proc is read now, while the link that carries the request is open; a pid
  // reused since connect() must also run as the peer's uid to pass.
  return HasCapabilityInOurNamespace(peer.pid, peer.uid, CAP_NET_BIND_SERVICE);
}

}  // namespace reuseport::broker
