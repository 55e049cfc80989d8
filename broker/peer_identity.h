// Who is on the other end of a link: credentials frozen at connect()
// (SO_PEERCRED), and what /proc says about that process.
//
// Everything a decision needs about the peer is read once, when the broker
// accepts the link, and kept with it (PeerIdentity): a pid can be reused
// later, and a /proc entry read at request time could describe another
// process. /proc is trusted only where its uid and gid match SO_PEERCRED's.
#ifndef REUSEPORT_BROKER_PEER_IDENTITY_H_
#define REUSEPORT_BROKER_PEER_IDENTITY_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/status/statusor.h"

namespace reuseport::broker {

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

absl::StatusOr<PeerCredentials> ReadPeerCredentials(int fd);

// What the policy may ask about a peer, read at link accept.
struct PeerIdentity {
  PeerCredentials creds;
  // Supplementary groups (SO_PEERGROUPS from 4.13, else /proc/PID/status
  // while its uid and gid match SO_PEERCRED's); the primary gid is creds.gid.
  std::vector<gid_t> groups;
  // CAP_NET_BIND_SERVICE in the broker's user namespace, as the process had
  // it when it connected.
  bool may_bind_privileged = false;

  bool InGroup(gid_t gid) const;
};

// Reads a connected peer's identity: SO_PEERCRED, then the rest.
absl::StatusOr<PeerIdentity> ReadPeerIdentity(int fd);

// The process's command name (/proc/PID/comm), or "?" when gone.
std::string CommandName(pid_t pid);

// True when process `pid` still runs as `uid` (effective), has `capability` in
// its effective set and lives in the broker's user namespace (a capability in
// another namespace says nothing about ours). False when anything cannot be
// read. Needs no privilege: /proc/PID/status and uid_map are world-readable.
bool HasCapabilityInOurNamespace(pid_t pid, uid_t uid, int capability);

// True when `uid`, as the broker sees it, may be a uid its user namespace does
// not map: the kernel shows every such uid as the overflow uid
// (/proc/sys/kernel/overflowuid, 65534), so two different users would look
// the same and could share a group. Only possible when the broker's namespace
// does not map every uid (it runs in a container's user namespace).
bool UidMayBeUnmapped(uid_t uid);

// A network namespace's identity: (st_dev, st_ino) of its nsfs inode.
struct NamespaceId {
  uint64_t dev = 0;
  uint64_t ino = 0;
  bool operator==(const NamespaceId& o) const { return dev == o.dev && ino == o.ino; }
  template <typename H>
  friend H AbslHashValue(H h, const NamespaceId& n) {
    return H::combine(std::move(h), n.dev, n.ino);
  }
};

// The broker's own network namespace.
NamespaceId OwnNetworkNamespace();

// The network namespace of a socket: SIOCGSKNS where the kernel has it (4.9),
// else the namespace of the process that passed it (/proc/PID/ns/net, stable
// since 3.8), else, before 3.8, the broker's own (members must then share the
// broker's namespace, as documented). nullopt when it cannot be told (a peer
// in a PID namespace the broker cannot see, /proc unreadable): guessing could
// merge groups of two namespaces.
std::optional<NamespaceId> SocketNetworkNamespace(int socket_fd, pid_t peer_pid);

// True when SocketNetworkNamespace must read other processes' /proc/PID/ns/net
// (Linux 3.8 to 4.8, no SIOCGSKNS): that takes ptrace access, so the broker
// keeps CAP_SYS_PTRACE only then.
bool SocketNamespacesNeedProc();

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_PEER_IDENTITY_H_
