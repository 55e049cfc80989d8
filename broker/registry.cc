#include "registry.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <algorithm>

namespace reuseport::broker {

bool IsV4Mapped(const rp_address& a) {
  static const uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return a.family == AF_INET6 && memcmp(a.addr, kPrefix, 12) == 0;
}

namespace {

// An IPv4 address as 4 bytes, whether written as IPv4 or as ::ffff:a.b.c.d.
bool V4Bytes(const rp_address& a, uint8_t out[4]) {
  if (a.family == AF_INET) {
    memcpy(out, a.addr, 4);
    return true;
  }
  if (IsV4Mapped(a)) {
    memcpy(out, a.addr + 12, 4);
    return true;
  }
  return false;
}

bool IsV4Traffic(const rp_address& a) { return a.family == AF_INET || IsV4Mapped(a); }

}  // namespace

bool EffectiveV6only(const rp_address& a, bool v6only) {
  if (a.family != AF_INET6 || IsV4Mapped(a)) return false;
  return IsWildcard(a) ? v6only : true;
}

bool IsWildcard(const rp_address& a) {
  size_t n = a.family == AF_INET ? 4 : 16;
  for (size_t i = 0; i < n; ++i) {
    if (a.addr[i] != 0) return false;
  }
  return true;
}

bool SameAddress(const rp_address& a, const rp_address& b) {
  if (a.family != b.family) return false;
  return memcmp(a.addr, b.addr, a.family == AF_INET ? 4 : 16) == 0;
}

bool Covers(const rp_address& socket, bool socket_v6only, const rp_address& target) {
  if (socket.family == AF_INET) {
    uint8_t t[4];
    if (!V4Bytes(target, t)) return false;
    return IsWildcard(socket) || memcmp(socket.addr, t, 4) == 0;
  }
  // IPv6 socket.
  if (IsV4Traffic(target)) {
    if (socket_v6only) return false;
    if (IsWildcard(socket)) return true;
    uint8_t s[4], t[4];
    return V4Bytes(socket, s) && V4Bytes(target, t) && memcmp(s, t, 4) == 0;
  }
  return IsWildcard(socket) || SameAddress(socket, target);
}

bool Overlaps(const rp_address& a, bool a_v6only, const rp_address& b, bool b_v6only) {
  if (a.family == b.family) {
    if (a.family == AF_INET6 && (IsV4Mapped(a) != IsV4Mapped(b))) {
      // ::ffff:x and a native IPv6 address only meet through a wildcard.
      return (IsWildcard(a) && !a_v6only) || (IsWildcard(b) && !b_v6only);
    }
    return IsWildcard(a) || IsWildcard(b) || SameAddress(a, b);
  }
  const rp_address& v6 = a.family == AF_INET6 ? a : b;
  const rp_address& v4 = a.family == AF_INET ? a : b;
  bool v6only = a.family == AF_INET6 ? a_v6only : b_v6only;
  if (v6only) return false;
  if (IsWildcard(v6)) return true;
  uint8_t x[4];
  if (!V4Bytes(v6, x)) return false;
  return IsWildcard(v4) || memcmp(x, v4.addr, 4) == 0;
}

int MatchScore(const rp_address& bound, bool v6only, const rp_address& local) {
  if (!Covers(bound, v6only, local)) return 0;
  bool same_family = IsV4Traffic(local) ? bound.family == AF_INET : bound.family == AF_INET6;
  int score = same_family ? 2 : 1;
  if (!IsWildcard(bound)) score += 4;
  return score;
}

bool Serves(const rp_address& socket, bool socket_v6only, const rp_address& a, bool a_v6only) {
  if ((a.family != AF_INET && a.family != AF_INET6) || (socket.family != AF_INET && socket.family != AF_INET6)) {
    return false;
  }
  bool a_wildcard = IsWildcard(a);
  bool needs_v4 = a.family == AF_INET || IsV4Mapped(a) || (a.family == AF_INET6 && a_wildcard && !a_v6only);
  bool needs_v6 = a.family == AF_INET6 && !IsV4Mapped(a);
  if (needs_v6) {
    if (socket.family != AF_INET6 || IsV4Mapped(socket)) return false;
    if (!IsWildcard(socket) && !SameAddress(socket, a)) return false;
  }
  if (needs_v4) {
    bool a_all_v4 = a_wildcard;  // 0.0.0.0, or [::] dual-stack
    if (a_all_v4) {
      bool socket_all_v4 = IsWildcard(socket) && (socket.family == AF_INET || !socket_v6only);
      if (!socket_all_v4) return false;
    } else if (!Covers(socket, socket_v6only, a)) {
      return false;
    }
  }
  return true;
}

void Group::RebuildTable() {
  active.clear();
  for (auto& m : members) {
    if (m->listening) active.push_back(m.get());
  }
  std::vector<uint64_t> keys;
  keys.reserve(active.size());
  for (Member* m : active) keys.push_back(m->key);
  table.Build(keys);
}

PortDomain* Registry::FindDomain(const DomainKey& key) {
  auto it = domains_.find(key);
  return it == domains_.end() ? nullptr : it->second.get();
}

const PortDomain* Registry::FindDomain(const DomainKey& key) const {
  auto it = domains_.find(key);
  return it == domains_.end() ? nullptr : it->second.get();
}

PortDomain& Registry::DomainFor(const DomainKey& key) {
  auto& slot = domains_[key];
  if (!slot) {
    slot = std::make_unique<PortDomain>();
    slot->key = key;
  }
  return *slot;
}

void Registry::DropDomainIfEmpty(const DomainKey& key) {
  auto it = domains_.find(key);
  if (it != domains_.end() && it->second->groups.empty() && it->second->reals.empty()) domains_.erase(it);
}

Group* Registry::FindExactGroup(const PortDomain& domain, const rp_address& address, bool v6only) const {
  bool effective = EffectiveV6only(address, v6only);
  for (auto& g : domain.groups) {
    if (SameAddress(g->address, address) && g->v6only == effective) return g.get();
  }
  return nullptr;
}

RealSocket* Registry::FindRealSocket(const PortDomain& domain, uint64_t inode) const {
  for (auto& r : domain.reals) {
    if (r->inode == inode) return r.get();
  }
  return nullptr;
}

RealSocket* Registry::FindRealSocketAt(const PortDomain& domain, const rp_address& address, bool v6only) const {
  bool effective = EffectiveV6only(address, v6only);
  for (auto& r : domain.reals) {
    if (SameAddress(r->address, address) && EffectiveV6only(r->address, r->v6only) == effective) return r.get();
  }
  return nullptr;
}

int Registry::CheckNewSocket(const PortDomain& domain, const rp_address& address, bool v6only, uid_t uid) const {
  for (const auto& g : domain.groups) {
    if (Overlaps(g->address, g->v6only, address, v6only) && g->owner_uid != uid) return EADDRINUSE;
  }
  return 0;
}

namespace {

// The all-IPv4 half of the port, as a dual-stack group's companion would bind it
// on its own (AF_INET6) socket: ::ffff:0.0.0.0 receives IPv4 only, as AF_INET6.
rp_address MappedAny(uint16_t port) {
  rp_address a{};
  a.family = AF_INET6;
  a.port = port;
  a.addr[10] = a.addr[11] = 0xff;
  return a;
}

rp_address Ipv6Any(uint16_t port) {
  rp_address a{};
  a.family = AF_INET6;
  a.port = port;
  return a;
}

}  // namespace

JoinDecision Registry::DecideJoin(const PortDomain& domain, const rp_address& address, bool v6only, uid_t uid) const {
  JoinDecision d;
  v6only = EffectiveV6only(address, v6only);
  for (const auto& g : domain.groups) {
    if (Overlaps(g->address, g->v6only, address, v6only) && g->owner_uid != uid) {
      d.kind = JoinDecision::kRefused;
      d.error = EADDRINUSE;
      return d;
    }
  }
  if (Group* g = FindExactGroup(domain, address, v6only)) {
    d.kind = JoinDecision::kJoinGroup;
    d.group = g;
    return d;
  }
  // A wildcard socket of the same port already receives this address's
  // traffic: serve the new group from it, routed by destination. Only the
  // uid's own: another's socket would hand its owner this group's traffic.
  for (const auto& real : domain.reals) {
    if (real->owner_uid == uid && IsWildcard(real->address) && Serves(real->address, real->v6only, address, v6only)) {
      d.kind = JoinDecision::kNewGroupOnSocket;
      d.real = real.get();
      return d;
    }
  }
  // A dual-stack [::] group where one half of the port is taken: the other
  // half gets a socket of its own, which an old kernel lets coexist with the
  // first (0.0.0.0 beside [::] V6ONLY, or [::] V6ONLY beside ::ffff:0.0.0.0).
  if (address.family == AF_INET6 && IsWildcard(address) && !v6only && domain.reals.size() == 1) {
    const RealSocket& taken = *domain.reals.front();
    bool ipv4_half = IsWildcard(taken.address) && (taken.address.family == AF_INET ||
                     (IsV4Mapped(taken.address) && Covers(taken.address, false, MappedAny(address.port))));
    bool ipv6_half = taken.address.family == AF_INET6 && IsWildcard(taken.address) && taken.v6only;
    if (taken.owner_uid == uid && (ipv4_half || ipv6_half)) {
      d.kind = JoinDecision::kNewGroupWithCompanion;
      d.real = domain.reals.front().get();
      d.companion = ipv4_half ? Ipv6Any(address.port) : MappedAny(address.port);
      d.companion_v6only = ipv4_half;
      return d;
    }
  }
  // Wider than the sockets the port has (0.0.0.0 after 127.0.0.1, [::]
  // after ::1): an old kernel will not bind it beside them, so it takes over
  // from each socket it overlaps, which must be the uid's own and wholly
  // covered by it; the groups they served are routed by destination.
  std::vector<RealSocket*> overlapped;
  for (const auto& real : domain.reals) {
    if (!Overlaps(real->address, real->v6only, address, v6only)) continue;
    if (real->owner_uid != uid || !Serves(address, v6only, real->address, real->v6only)) {
      overlapped.clear();
      break;
    }
    overlapped.push_back(real.get());
  }
  if (!overlapped.empty()) {
    d.kind = JoinDecision::kWiden;
    d.companion = address;
    d.companion_v6only = v6only;
    d.retire = std::move(overlapped);
    return d;
  }
  d.kind = JoinDecision::kNoGroup;
  return d;
}

RealSocket* Registry::AddRealSocket(PortDomain& domain, UniqueFd fd, int protocol, const rp_address& address,
                                    bool v6only, uint64_t inode, uid_t owner_uid) {
  auto real = std::make_unique<RealSocket>();
  real->owner_uid = owner_uid;
  real->domain = &domain;
  real->fd = std::move(fd);
  real->protocol = protocol;
  real->address = address;
  real->v6only = v6only;
  real->inode = inode;
  domain.reals.push_back(std::move(real));
  return domain.reals.back().get();
}

Group* Registry::AddGroup(PortDomain& domain, RealSocket* real, const rp_address& address, bool v6only, uid_t uid) {
  auto g = std::make_unique<Group>();
  g->id = NextId();
  g->domain = &domain;
  g->address = address;
  g->v6only = EffectiveV6only(address, v6only);
  g->protocol = domain.key.protocol;
  g->owner_uid = uid;
  g->real = real;
  ++real->groups;
  ++usage_[uid].groups;
  groups_by_owner_[uid].push_back(g.get());
  domain.groups.push_back(std::move(g));
  return domain.groups.back().get();
}

std::vector<std::unique_ptr<RealSocket>> Registry::RemoveGroup(Group* group) {
  PortDomain* domain = group->domain;
  RealSocket* sockets[2] = {group->real, group->also};
  auto it = std::find_if(domain->groups.begin(), domain->groups.end(), [&](auto& g) { return g.get() == group; });
  if (it != domain->groups.end()) {
    uid_t owner = group->owner_uid;
    UidUsage& usage = usage_[owner];
    if (--usage.groups <= 0) usage.waiting = usage.in_channels = 0;  // no group, no connection held for it
    DropUsageIfIdle(owner);
    auto owned = groups_by_owner_.find(owner);
    if (owned != groups_by_owner_.end()) {
      auto& v = owned->second;
      v.erase(std::remove(v.begin(), v.end(), group), v.end());
      if (v.empty()) groups_by_owner_.erase(owned);
    }
    domain->groups.erase(it);  // `group` is gone from here on
  }
  std::vector<std::unique_ptr<RealSocket>> released;
  for (RealSocket* real : sockets) {
    if (real == nullptr || --real->groups > 0) continue;
    auto rit = std::find_if(domain->reals.begin(), domain->reals.end(), [&](auto& r) { return r.get() == real; });
    if (rit != domain->reals.end()) {
      released.push_back(std::move(*rit));
      domain->reals.erase(rit);
    }
  }
  DomainKey key = domain->key;
  DropDomainIfEmpty(key);
  return released;
}

void Registry::MemberAdded(const Member& m) {
  UidUsage& u = usage_[m.creds.uid];
  ++u.members;
  u.udp_channel_bytes += m.udp_channel_bytes;
}

void Registry::MemberRemoved(const Member& m) {
  UidUsage& u = usage_[m.creds.uid];
  --u.members;
  u.udp_channel_bytes -= m.udp_channel_bytes;
  DropUsageIfIdle(m.creds.uid);
}

const UidUsage& Registry::UsageOf(uid_t uid) const {
  static const UidUsage kNone;
  auto it = usage_.find(uid);
  return it == usage_.end() ? kNone : it->second;
}

const std::vector<Group*>& Registry::GroupsOwnedBy(uid_t uid) const {
  static const std::vector<Group*> kNone;
  auto it = groups_by_owner_.find(uid);
  return it == groups_by_owner_.end() ? kNone : it->second;
}

void Registry::DropUsageIfIdle(uid_t uid) {
  auto it = usage_.find(uid);
  if (it == usage_.end()) return;
  const UidUsage& u = it->second;
  if (u.members <= 0 && u.groups <= 0 && u.udp_channel_bytes <= 0 && u.waiting <= 0 && u.in_channels <= 0) usage_.erase(it);
}

std::unique_ptr<RealSocket> Registry::Rehome(RealSocket* from, RealSocket* to) {
  PortDomain* domain = from->domain;
  for (auto& g : domain->groups) {
    for (RealSocket** slot : {&g->real, &g->also}) {
      if (*slot != from) continue;
      *slot = to;
      --from->groups;
      ++to->groups;
    }
  }
  if (from->groups > 0) return nullptr;
  auto rit = std::find_if(domain->reals.begin(), domain->reals.end(), [&](auto& r) { return r.get() == from; });
  if (rit == domain->reals.end()) return nullptr;
  std::unique_ptr<RealSocket> released = std::move(*rit);
  domain->reals.erase(rit);
  return released;
}

bool Registry::NeedsLocalAddress(const RealSocket& real) const { return real.domain->groups.size() > 1; }

Group* Registry::Route(RealSocket& real, const rp_address* local) {
  Group* best = nullptr;
  int best_score = 0;
  for (auto& g : real.domain->groups) {
    if (g->active.empty()) continue;
    if (local == nullptr) {
      if (g->real == &real || g->also == &real) return g.get();
      continue;
    }
    int score = MatchScore(g->address, g->v6only, *local);
    if (score > best_score) {  // ties: the group that came first, as the kernel's older socket
      best_score = score;
      best = g.get();
    }
  }
  return best;
}

}  // namespace reuseport::broker
