#include "membership.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "control_server.h"
#include "log.h"

namespace reuseport::broker {

namespace {

const char* ProtocolName(int protocol) { return protocol == RP_PROTO_UDP ? "udp" : "tcp"; }

uint64_t InodeOf(int fd) {
  struct stat st {};
  return fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_ino) : 0;
}

std::unique_ptr<Member> NewMemberFor(const Link& link, uint64_t id) {
  auto m = std::make_unique<Member>();
  m->id = id;
  m->creds = link.identity.creds;
  m->command = link.command;
  return m;
}

}  // namespace

Membership::Membership(Registry& registry, Dispatcher& dispatcher) : registry_(registry), dispatcher_(dispatcher) {}

absl::StatusOr<Membership::NewMember> Membership::MakeMember(const Link& link, int protocol, int64_t udp_channel_bytes) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return absl::ErrnoToStatus(errno, "socketpair");
  }
  UniqueFd broker_end(sv[0]);
  NewMember out;
  out.member_end.reset(sv[1]);
  UniqueFd member_copy(fcntl(out.member_end.get(), F_DUPFD_CLOEXEC, 0));
  out.broker_copy.reset(fcntl(broker_end.get(), F_DUPFD_CLOEXEC, 0));
  if (!member_copy || !out.broker_copy) return absl::ErrnoToStatus(errno, "dup");
  uint64_t key = InodeOf(out.member_end.get());
  if (key == 0) return absl::ErrnoToStatus(errno, "fstat");
  out.member = NewMemberFor(link, registry_.NextId());
  out.member->udp_channel_bytes = udp_channel_bytes;
  if (protocol == RP_PROTO_UDP && ring_directory_ >= 0) {
    absl::StatusOr<std::unique_ptr<MemberRing>> ring =
        MemberRing::Create(ring_directory_, static_cast<uint64_t>(udp_channel_bytes));
    if (ring.ok()) {
      out.member->ring = std::move(*ring);
    } else {
      LogLimited("ring-create", Severity::kWarning, "datagram ring: %s; member %d gets datagrams through its channel",
                 ring.status().ToString(), out.member->id);
    }
  }
  dispatcher_.PrepareChannel(broker_end.get(), protocol, udp_channel_bytes, out.member->ring != nullptr);
  out.member->channel = std::move(broker_end);
  out.member->channel_member = std::move(member_copy);
  out.member->key = key;
  return out;
}

std::unique_ptr<Member> Membership::RejoiningMember(const Link& link, int protocol, UniqueFd member_end,
                                                    UniqueFd broker_end, UniqueFd ring, int64_t udp_channel_bytes) {
  auto m = NewMemberFor(link, registry_.NextId());
  m->key = InodeOf(member_end.get());
  m->udp_channel_bytes = udp_channel_bytes;
  if (protocol == RP_PROTO_UDP && ring) {
    // The ring keeps what the previous broker wrote; we go on writing after it.
    absl::StatusOr<std::unique_ptr<MemberRing>> adopted = MemberRing::Adopt(std::move(ring));
    if (adopted.ok()) {
      m->ring = std::move(*adopted);
    } else {
      LogLimited("ring-adopt", Severity::kWarning, "member %d's datagram ring: %s; its datagrams go through its channel",
                 m->id, adopted.status().ToString());
    }
  }
  dispatcher_.PrepareChannel(broker_end.get(), protocol, udp_channel_bytes, m->ring != nullptr);
  m->channel = std::move(broker_end);
  m->channel_member = std::move(member_end);
  // What the previous broker wrote and nobody took yet: ring for it (a spare
  // doorbell is dropped by the reader that finds nothing behind it).
  if (m->ring != nullptr && m->ring->records_at_adoption() > 0) dispatcher_.RingDoorbell(m.get());
  return m;
}

Group* Membership::GroupFor(const JoinPlan& plan, UniqueFd passed_socket, const SocketFacts& facts,
                            const char* creator) {
  if (plan.group != nullptr) return plan.group;
  PortDomain& domain = registry_.DomainFor(plan.domain);
  RealSocket* real = plan.real;
  bool new_real = real == nullptr;
  if (new_real) {
    real = registry_.AddRealSocket(domain, std::move(passed_socket), plan.domain.protocol, facts.address, facts.v6only,
                                   facts.inode, facts.owner_uid);
  }
  Group* g = registry_.AddGroup(domain, real, plan.group_address, plan.group_v6only, plan.owner_uid);
  if (plan.also != nullptr) {
    g->also = plan.also;
    ++plan.also->groups;
  }
  if (new_real && plan.domain.protocol == RP_PROTO_UDP) {
    if (absl::Status s = dispatcher_.StartUdp(real); !s.ok()) Log(Severity::kError, "%s", s.ToString());
  }
  Log(Severity::kInfo, "group %d: %s %s uid %d created by %s, served through %s", g->id,
      ProtocolName(plan.domain.protocol), FormatAddress(plan.group_address), plan.owner_uid, creator,
      FormatAddress(real->address));
  return g;
}

void Membership::DropIfEmpty(Group* group) {
  if (!group->members.empty()) return;
  for (const auto& released : registry_.RemoveGroup(group)) dispatcher_.ForgetRealSocket(released.get());
}

Member* Membership::Commit(Group* group, std::unique_ptr<Member> member, Link* link) {
  Member* m = member.get();
  by_key_[m->key].push_back(m);
  dispatcher_.AddMember(group, std::move(member));
  AddLink(m, link);
  return m;
}

void Membership::AddLink(Member* member, Link* link) {
  link->member = member;
  member->links.push_back(link);
}

void Membership::RemoveLink(Link* link) {
  Member* m = link->member;
  if (m == nullptr) return;
  link->member = nullptr;
  auto& links = m->links;
  links.erase(std::remove(links.begin(), links.end(), link), links.end());
  if (!links.empty()) return;
  Log(Severity::kInfo, "member %d (pid %d %s) left group %d", m->id, m->creds.pid, m->command, m->group->id);
  auto it = by_key_.find(m->key);
  if (it != by_key_.end()) {
    auto& same = it->second;
    same.erase(std::remove(same.begin(), same.end(), m), same.end());
    if (same.empty()) by_key_.erase(it);
  }
  dispatcher_.RemoveMember(m);
}

const std::vector<Member*>* Membership::WithKey(uint64_t key) const {
  auto it = by_key_.find(key);
  return it == by_key_.end() ? nullptr : &it->second;
}

}  // namespace reuseport::broker
