// Groups, members and the real sockets behind them, and the kernel's rules for
// who may share what.
//
//   PortDomain  everything bound to one (network namespace, protocol, port).
//   RealSocket  a socket the broker accepts or receives on. Usually one per
//               group; a group bound to a specific address under a wildcard
//               group of the same port is served by the wildcard's socket and
//               routed by destination address ("virtual" group), because an
//               old kernel lets only one of two overlapping listeners exist.
//               A dual-stack [::] group beside an IPv4 wildcard one is served
//               by two: the IPv4 group's socket, and a [::] IPV6_V6ONLY one
//               of its own (or ::ffff:0.0.0.0 beside a V6ONLY [::] group),
//               which an old kernel lets coexist where a dual-stack [::] and
//               0.0.0.0 cannot.
//
// Traffic is routed over the whole port domain, whichever of its sockets it
// arrived on: to the group the kernel would choose (MatchScore), so the
// sockets only have to cover, between them, what the groups should receive.
//   Group       the sockets of one uid bound to one (family, V6ONLY, address,
//               port): the unit SO_REUSEPORT shares among.
//   Member      one member socket: its channel, its links, its counters.
//
// Rules as the kernel has them (net/ipv4/inet_connection_sock.c, 3.9+): sockets
// may share when all set SO_REUSEPORT and their creators' uid is the same;
// overlapping addresses (a wildcard and a specific one, or IPv4 and a
// dual-stack IPv6 wildcard) count as the same for that check; a specific
// address beats a wildcard, and IPv4 sockets beat dual-stack IPv6 ones for
// IPv4 traffic.
//
// Thread-safety: none; owned by the broker's event loop.
#ifndef REUSEPORT_BROKER_REGISTRY_H_
#define REUSEPORT_BROKER_REGISTRY_H_

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "event_loop.h"
#include "maglev_table.h"
#include "member_ring.h"
#include "peer_identity.h"
#include "reuseport/protocol.h"
#include "unique_fd.h"

namespace reuseport::broker {

struct Group;
struct PortDomain;
struct Link;

struct Member {
  uint64_t id = 0;
  Group* group = nullptr;
  PeerCredentials creds;  // of the link that created it
  std::string command;
  UniqueFd channel;         // the broker's end
  UniqueFd channel_member;  // a duplicate of the member's end: what it has not consumed can be taken back
  uint64_t key = 0;         // stable across broker restarts (the member end's inode): places it in the table
  int64_t udp_channel_bytes = 0;  // UDP: its queue (ring or channel buffer), counted against its uid's budget
  std::unique_ptr<MemberRing> ring;  // UDP: where its datagrams go (null: as channel records)
  bool bell_due = false;  // UDP: its ring got records this wakeup and needs a doorbell
  bool listening = false;   // TCP: listen() called; UDP: always
  bool full = false;        // the channel refused a send; waiting for it to drain
  // Stall detection (TCP): connections sent but not consumed, seen at ticks.
  bool watch_queue = false;       // sent something since its queue was last seen empty
  uint64_t consumed_seen = 0;     // connections - queued at the last tick
  int idle_ticks = 0;             // ticks in a row with a queue and no progress
  int64_t stalled_until_ms = 0;   // skipped for new connections until then
  int stall_backoff_ms = 0;       // doubles while it keeps stalling, up to 10 s
  EventLoop::Watch* channel_watch = nullptr;
  std::vector<Link*> links;  // the member lives while any link is open
  int64_t joined_ms = 0;
  // Counters for status and metrics.
  uint64_t connections = 0;       // TCP connections handed over
  uint64_t datagrams = 0;         // datagrams handed over
  uint64_t dropped = 0;           // datagrams dropped because the channel was full
  uint64_t redirected_away = 0;   // connections/datagrams sent elsewhere because it was full
  uint64_t recovered = 0;         // unconsumed items taken back when it left
  uint64_t stolen = 0;            // queued connections taken back because it stalled
  uint64_t stalls = 0;            // times it was found not consuming
};

struct RealSocket {
  PortDomain* domain = nullptr;
  UniqueFd fd;
  int protocol = 0;
  rp_address address{};
  bool v6only = false;
  bool listening = false;
  int backlog = 0;
  bool paused = false;  // TCP: not accepting while every member is full
  EventLoop::Watch* watch = nullptr;
  uint64_t inode = 0;
  uid_t owner_uid = 0;        // its creator's: only that uid's groups are served by it
  uint32_t kernel_drops = 0;  // UDP: SO_RXQ_OVFL as last reported
  int groups = 0;             // groups served by this socket
};

struct PendingConnection {
  UniqueFd fd;
  rp_address peer{};
  uint64_t hash = 0;
};

struct Group {
  uint64_t id = 0;
  PortDomain* domain = nullptr;
  rp_address address{};
  bool v6only = false;
  int protocol = 0;
  uid_t owner_uid = 0;
  RealSocket* real = nullptr;  // its own: members hold it (UDP replies leave from it), listen() goes to it
  RealSocket* also = nullptr;  // another group's socket that carries part of its traffic (dual-stack beside IPv4)
  std::vector<std::unique_ptr<Member>> members;
  std::vector<Member*> active;  // listening (TCP) or all (UDP); indexed by the table
  MaglevTable table;
  std::deque<PendingConnection> pending;  // TCP: accepted while every member was full
  // Counters.
  uint64_t accepted = 0;
  uint64_t datagrams = 0;
  uint64_t dropped_full = 0;    // datagrams dropped: every member full
  uint64_t refused = 0;         // connections closed: no member could take them
  uint64_t members_joined = 0;
  uint64_t members_left = 0;

  // Rebuilds `active` and the table after a member joined, left or listened.
  void RebuildTable();
};

struct DomainKey {
  NamespaceId netns;
  int protocol = 0;
  uint16_t port = 0;
  bool operator==(const DomainKey& o) const { return netns == o.netns && protocol == o.protocol && port == o.port; }
  template <typename H>
  friend H AbslHashValue(H h, const DomainKey& k) {
    return H::combine(std::move(h), k.netns, k.protocol, k.port);
  }
};

struct PortDomain {
  DomainKey key;
  std::vector<std::unique_ptr<Group>> groups;
  std::vector<std::unique_ptr<RealSocket>> reals;
};

// What one uid holds of the broker, kept as groups, members and connections
// come and go (a decision must not cost a walk over every group).
struct UidUsage {
  int members = 0;
  int groups = 0;
  int64_t udp_channel_bytes = 0;  // its UDP members' channel buffers, together
  // TCP connections accepted for its groups: held by the broker, and handed
  // to members but not yet taken (an upper bound between the dispatcher's
  // recounts; each is an fd in flight).
  int64_t waiting = 0;
  int64_t in_channels = 0;
  int64_t queued() const { return waiting + in_channels; }
};

// The outcome of asking to join an address without a bound socket of one's own.
struct JoinDecision {
  enum Kind { kJoinGroup, kNewGroupOnSocket, kNewGroupWithCompanion, kWiden, kNoGroup, kRefused } kind = kNoGroup;
  Group* group = nullptr;      // kJoinGroup
  RealSocket* real = nullptr;  // kNewGroupOnSocket; kNewGroupWithCompanion: the socket that carries the rest
  // kNewGroupWithCompanion: the member's own socket, bound here, carries the
  // part of the group's traffic that no socket of the port carries yet.
  // kWiden: the member's own socket, bound here, takes over from `retire`,
  // narrower sockets of the port that an old kernel will not let it overlap.
  rp_address companion{};
  bool companion_v6only = false;
  std::vector<RealSocket*> retire;
  int error = 0;  // kRefused
};

class Registry {
 public:
  PortDomain* FindDomain(const DomainKey& key);
  const PortDomain* FindDomain(const DomainKey& key) const;
  PortDomain& DomainFor(const DomainKey& key);
  void DropDomainIfEmpty(const DomainKey& key);

  // For a member whose own bind found the port taken.
  JoinDecision DecideJoin(const PortDomain& domain, const rp_address& address, bool v6only, uid_t uid) const;

  // For a member whose own socket the kernel bound: 0, or EADDRINUSE when it
  // overlaps a group of another uid (a virtual group the kernel cannot see).
  int CheckNewSocket(const PortDomain& domain, const rp_address& address, bool v6only, uid_t uid) const;
  Group* FindExactGroup(const PortDomain& domain, const rp_address& address, bool v6only) const;
  // The real socket with this inode (a member presenting the group socket it holds).
  RealSocket* FindRealSocket(const PortDomain& domain, uint64_t inode) const;
  // A real socket bound to exactly this address.
  RealSocket* FindRealSocketAt(const PortDomain& domain, const rp_address& address, bool v6only) const;

  RealSocket* AddRealSocket(PortDomain& domain, UniqueFd fd, int protocol, const rp_address& address, bool v6only,
                            uint64_t inode, uid_t owner_uid);
  Group* AddGroup(PortDomain& domain, RealSocket* real, const rp_address& address, bool v6only, uid_t uid);

  // Removes an empty group; returns the real sockets no group uses any more
  // (the caller unwatches them; they close with the returned owners).
  std::vector<std::unique_ptr<RealSocket>> RemoveGroup(Group* group);

  // Moves every group served by `from` to `to` (a wider socket that took over);
  // returns `from` once nothing uses it.
  std::unique_ptr<RealSocket> Rehome(RealSocket* from, RealSocket* to);

  // The group that should receive traffic arriving on `real` for `local`
  // (nullptr: any group, when only one can take it). TCP needs listening members.
  Group* Route(RealSocket& real, const rp_address* local);
  // True when Route needs the destination address to decide.
  bool NeedsLocalAddress(const RealSocket& real) const;

  uint64_t NextId() { return ++last_id_; }

  // Per-uid counts for the policy's limits.
  void MemberAdded(const Member& m);
  void MemberRemoved(const Member& m);
  int MembersOf(uid_t uid) const { return UsageOf(uid).members; }
  int GroupsOf(uid_t uid) const { return UsageOf(uid).groups; }
  const UidUsage& UsageOf(uid_t uid) const;
  // The groups a uid owns (for recounting what its members hold).
  const std::vector<Group*>& GroupsOwnedBy(uid_t uid) const;
  UidUsage& MutableUsage(uid_t uid) { return usage_[uid]; }
  // Forgets a uid that holds nothing any more.
  void DropUsageIfIdle(uid_t uid);

  const absl::flat_hash_map<DomainKey, std::unique_ptr<PortDomain>>& domains() const { return domains_; }
  const absl::flat_hash_map<uid_t, UidUsage>& usage() const { return usage_; }

 private:
  absl::flat_hash_map<DomainKey, std::unique_ptr<PortDomain>> domains_;
  absl::flat_hash_map<uid_t, UidUsage> usage_;
  absl::flat_hash_map<uid_t, std::vector<Group*>> groups_by_owner_;
  uint64_t last_id_ = 0;
};

// Address relations, exposed for tests.
bool IsWildcard(const rp_address& a);
bool IsV4Mapped(const rp_address& a);
// IPV6_V6ONLY as it matters for an address: only an IPv6 wildcard can be
// either; a specific IPv6 address is IPv6 only (the kernel sets the option on
// binding one), a v4-mapped or IPv4 one never.
bool EffectiveV6only(const rp_address& a, bool v6only);
bool SameAddress(const rp_address& a, const rp_address& b);  // family and bytes
// Would sockets bound to a and b conflict on a kernel without SO_REUSEPORT?
bool Overlaps(const rp_address& a, bool a_v6only, const rp_address& b, bool b_v6only);
// Does a socket bound to `socket` receive traffic addressed to `target`?
bool Covers(const rp_address& socket, bool socket_v6only, const rp_address& target);
// How well a group bound to `bound` matches traffic to `local` (higher wins,
// 0 = no match), after the kernel's compute_score.
int MatchScore(const rp_address& bound, bool v6only, const rp_address& local);
// Does all the traffic a socket bound to (a, a_v6only) would get arrive on a
// socket bound to (socket, socket_v6only)?
bool Serves(const rp_address& socket, bool socket_v6only, const rp_address& a, bool a_v6only);

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_REGISTRY_H_
