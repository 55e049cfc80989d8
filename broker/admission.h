// Who may become a member of what: the one decision behind every request that
// creates or joins a member (BIND, REJOIN), attaches a process to one
// (ATTACH) or starts one listening (LISTEN).
//
// Each Decide* function is pure: it reads the request, facts the control
// server gathered from the kernel beforehand (what the passed socket is, who
// the peer is, which network namespace, whether the channel ends it passed
// are proven to be one channel), the registry as it is now and the policy,
// and returns a plan. Nothing changes until the control server carries the
// plan out, so a refusal leaves no trace: no socket kept, no group touched.
//
// The rules, in the order they are applied to a join:
//   1. the request is well formed and the link is not a member already;
//   2. the passed socket is what it claims (protocol, family, bound or not,
//      not connected) and its network namespace is known;
//   3. uids the broker's user namespace does not map are refused;
//   4. REJOIN: the two channel ends passed are one channel (proven by the
//      control server, channel_proof.h), and the group socket serves the
//      address claimed;
//   5. the kernel's sharing rule (registry.h): nothing overlapping the
//      address may belong to another uid, whichever socket and group it is;
//   6. privileged ports: a socket the member did not bind itself needs the
//      peer's CAP_NET_BIND_SERVICE or an allow rule;
//   7. limits: members of the peer's uid, groups of the owner's uid, UDP
//      channel bytes of the peer's uid (policy.h).
//
// Thread-safety: none needed; pure functions over state owned by the caller.
#ifndef REUSEPORT_BROKER_ADMISSION_H_
#define REUSEPORT_BROKER_ADMISSION_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "peer_identity.h"
#include "policy.h"
#include "registry.h"
#include "reuseport/protocol.h"
#include "socket_facts.h"
#include "wire.h"

namespace reuseport::broker {

// Why a request is refused: the errno for the reply, a key for the refusal
// counters, and words for the log.
struct Refusal {
  int error = 0;
  std::string reason;
  std::string detail;
};

// A BIND or REJOIN, its payload checked and decoded.
struct JoinRequest {
  enum class Kind { kBind, kRejoin };
  Kind kind = Kind::kBind;
  int protocol = 0;
  rp_address address{};    // BIND: as passed to bind(); REJOIN: the group's address
  bool v6only = false;     // REJOIN: the group's (BIND takes the socket's own)
  bool listening = false;  // REJOIN: the member had called listen()
  int backlog = 0;         // REJOIN
  uint64_t previous_id = 0;  // REJOIN: the member's id under the previous broker, for logs
};

// Checks a BIND or REJOIN record's shape and decodes it (rule 1).
std::optional<Refusal> ParseJoinRequest(const Record& record, JoinRequest* out);

// What the control server read from the kernel before asking.
struct JoinFacts {
  bool link_is_member = false;
  PeerIdentity peer;
  // The socket passed: BIND's member socket, REJOIN's group socket. Empty
  // when it is not an IPv4/IPv6 TCP or UDP socket (the string says why).
  std::optional<SocketFacts> socket;
  std::string socket_problem;
  std::optional<NamespaceId> netns;
  // The socket's owner or the peer may be a uid the broker's user namespace
  // does not map (peer_identity.h).
  bool uid_may_be_unmapped = false;
  // REJOIN: fds[0] and fds[1] are the two ends of one channel.
  bool channel_proven = false;
  // REJOIN: the member this channel is proven to belong to, if registered
  // already (another process of it rejoined first).
  Member* rejoined_member = nullptr;
  // Another link of the peer's uid has said nothing yet: a shim on its way
  // from setsockopt() to its BIND, which may create the group asked for.
  bool creator_may_be_coming = false;
  // This join waited for a group already and its time is up.
  bool wait_over = false;
};

struct AdmissionSettings {
  int64_t udp_channel_bytes = 4 << 20;  // a UDP member's channel buffer, when its uid's budget allows
  // Below this a UDP member is refused rather than given a channel too small
  // to hold one burst (one largest datagram and its record, with room).
  static constexpr int64_t kMinUdpChannelBytes = 256 << 10;
};

struct JoinPlan {
  enum class Action {
    kRefuse,
    kWait,           // no group yet; one may be on its way (see JoinFacts)
    kBindAndCreate,  // bind the member's socket (to bind_address), then a new group on it
    kAdmit,          // a new member: into `group`, or a new group (see below)
    kAddLink,        // REJOIN: the link joins `member`, which rejoined through another process
  };
  Action action = Action::kRefuse;
  Refusal refusal;
  DomainKey domain;
  // kAdmit: the member joins `group`; when it is null a new group is made at
  // group_address, served by `real`, or by the passed socket when `real` is
  // null too.
  Group* group = nullptr;
  RealSocket* real = nullptr;
  RealSocket* also = nullptr;  // a new group's second socket (a dual-stack group's other half)
  Member* member = nullptr;    // kAddLink
  // kBindAndCreate: where the member's socket is bound, and its IPV6_V6ONLY
  // first (a policy bind of a privileged port; a dual-stack group's half).
  rp_address bind_address{};
  bool bind_v6only = false;
  // kBindAndCreate: narrower sockets of the port the new one takes over from
  // (see Dispatcher::Supersede).
  std::vector<RealSocket*> retire;
  rp_address group_address{};
  bool group_v6only = false;
  uid_t owner_uid = 0;
  int64_t udp_channel_bytes = 0;  // UDP: the new member's channel buffer
};

JoinPlan DecideJoin(const JoinRequest& request, const JoinFacts& facts, const Registry& registry,
                    const Policy& policy, const AdmissionSettings& settings);

// ATTACH: a process that holds a member's channel (forked or exec'd) gets a
// link of its own to it.
struct AttachFacts {
  bool link_is_member = false;
  bool well_formed = false;  // no payload, one fd
  bool is_socket = false;
  Member* proven_member = nullptr;  // the member whose channel the fd is proven to be
};
struct AttachPlan {
  std::optional<Refusal> refusal;
  Member* member = nullptr;
};
AttachPlan DecideAttach(const AttachFacts& facts);

// LISTEN on a member's link.
struct ListenPlan {
  std::optional<Refusal> refusal;
  int backlog = 0;
};
ListenPlan DecideListen(const Record& record, const Member* member);

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_ADMISSION_H_
