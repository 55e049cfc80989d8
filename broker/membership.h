// Carries out admission plans (admission.h): the only code that makes and
// ends groups and members for the control server, and the index that finds a
// member by its channel.
//
// Who owns what:
//   Registry    groups, real sockets, members (through their group)
//   Membership  the index of members by channel key; which links hold a member
//   Link        (control_server.h) the connection; points at its member
// A member lives while any link holds it; when the last one closes the member
// leaves (the dispatcher hands what it had not consumed to the others) and a
// group with no member left closes.
//
// Thread-safety: none; runs on the broker's event loop.
#ifndef REUSEPORT_BROKER_MEMBERSHIP_H_
#define REUSEPORT_BROKER_MEMBERSHIP_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "admission.h"
#include "dispatcher.h"
#include "registry.h"
#include "unique_fd.h"

namespace reuseport::broker {

struct Link;

class Membership {
 public:
  Membership(Registry& registry, Dispatcher& dispatcher);
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // A member made for a BIND, not yet in any group: its channel exists and
  // the reply can carry the member's end.
  struct NewMember {
    std::unique_ptr<Member> member;
    UniqueFd member_end;   // for the reply; the member keeps it as its program fd
    UniqueFd broker_copy;  // for the reply; the member holds it so a broker restart cannot close the channel
  };
  absl::StatusOr<NewMember> MakeMember(const Link& link, int protocol, int64_t udp_channel_bytes);

  // A member that rejoins with the channel it already has (REJOIN), and its
  // datagram ring if it had one (an invalid fd when not).
  std::unique_ptr<Member> RejoiningMember(const Link& link, int protocol, UniqueFd member_end, UniqueFd broker_end,
                                          UniqueFd ring, int64_t udp_channel_bytes);

  // Where UDP members' datagram rings are made (the control socket's
  // directory); -1: UDP members get their datagrams as channel records.
  void SetRingDirectory(int directory_fd) { ring_directory_ = directory_fd; }

  // The group a kAdmit plan names, made if the plan says so: on plan.real, or
  // on `passed_socket` (bound by the kernel) when that is null.
  Group* GroupFor(const JoinPlan& plan, UniqueFd passed_socket, const SocketFacts& facts, const char* creator);

  // Puts a member (after its reply went out) into its group and gives it `link`.
  Member* Commit(Group* group, std::unique_ptr<Member> member, Link* link);
  // Ends a group that a failed admission made and left empty.
  void DropIfEmpty(Group* group);

  void AddLink(Member* member, Link* link);
  // The link is closing: the member leaves when it was its last.
  void RemoveLink(Link* link);

  // Members whose channel key is `key`. Keys are inode numbers and may repeat
  // (the counter wraps); a proof (channel_proof.h) tells them apart.
  const std::vector<Member*>* WithKey(uint64_t key) const;

 private:
  Registry& registry_;
  Dispatcher& dispatcher_;
  absl::flat_hash_map<uint64_t, std::vector<Member*>> by_key_;
  int ring_directory_ = -1;
};

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_MEMBERSHIP_H_
