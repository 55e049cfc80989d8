// Who may join which port, and how much of the broker one uid may use.
//
// Ports below 1024 are open only to processes that could bind them themselves
// (CAP_NET_BIND_SERVICE in the broker's user namespace): the broker must never
// be a way around that. A policy file may grant more, authbind-style, and
// bound what each uid may hold so that one local user cannot exhaust the
// broker or starve the others.
//
// File format (one rule per line, '#' starts a comment):
//
//   allow uid=www-data port=80,443 protocol=tcp
//   allow gid=1001 port=8000-8100
//   limit groups=256 members=1024 links=2048 queued=4096
//   limit uid=1000 members=16 udp_bytes=67108864
//
//   allow  lets the processes of a uid, or of a group (primary or
//          supplementary), join ports below 1024 without the capability, and
//          have the broker bind such a port for them. protocol is tcp, udp or
//          both (the default). Names are looked up in /etc/passwd and
//          /etc/group when the file is read (user_database.h).
//   limit  without uid= sets the default for every uid; with uid= for one.
//          groups   groups a uid may own
//          members  member sockets of a uid
//          links    open connections to the control socket of a uid
//          queued   connections accepted for a uid's groups and not yet
//                   taken by a member: held by the broker or sitting in the
//                   members' channels (each of those is an fd in flight)
//          udp_bytes   bytes of UDP datagrams a uid's members may have
//                   waiting in their channels, all members together
//          reply_bytes bytes of replies the broker holds for a uid's links
//                   that do not read them (status documents mostly)
//
// Thread-safety: immutable once loaded; reads only.
#ifndef REUSEPORT_BROKER_POLICY_H_
#define REUSEPORT_BROKER_POLICY_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "peer_identity.h"

namespace reuseport::broker {

struct UidLimits {
  int groups = 256;
  int members = 1024;
  int links = 2048;
  int queued = 4096;
  int64_t udp_bytes = int64_t{256} << 20;
  int64_t reply_bytes = int64_t{8} << 20;
};

struct AllowRule {
  bool by_uid = true;
  uint32_t id = 0;  // uid or gid
  uint16_t first_port = 0;
  uint16_t last_port = 0;
  int protocol = 0;  // 0 = both, else RP_PROTO_*
  int line = 0;
};

class Policy {
 public:
  // Linux's PROT_SOCK: on 3.2 a fixed 1024 (4.11 made it a sysctl).
  static constexpr uint16_t kFirstUnprivilegedPort = 1024;

  Policy() = default;

  // Parses a policy file's text. Errors name the line and what is wrong.
  static absl::StatusOr<Policy> Parse(const std::string& text, const std::string& origin = "policy");
  static absl::StatusOr<Policy> Load(const std::string& path);

  // May the process behind `peer` have traffic of `port` handed to it without
  // having bound the port itself? Decided on what was read when its link was
  // accepted (PeerIdentity), never on /proc at request time.
  bool MayJoinPort(const PeerIdentity& peer, int protocol, uint16_t port) const;

  // Does an allow rule (not a capability) cover this? Then the broker may bind
  // a privileged port on the peer's behalf.
  bool AllowedByRule(const PeerIdentity& peer, int protocol, uint16_t port) const;

  UidLimits LimitsFor(uid_t uid) const;

  const std::vector<AllowRule>& rules() const { return rules_; }
  // A one-paragraph summary for --check-config.
  std::string Describe() const;

 private:
  std::vector<AllowRule> rules_;
  UidLimits defaults_;
  absl::flat_hash_map<uid_t, UidLimits> per_uid_;
};

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_POLICY_H_
