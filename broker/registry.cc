#include "registry.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <algorithm>

namespace reuseport::broker {

namespace {

bool IsV4Mapped(const rp_address& a) {
  static const uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return a.family == AF_INET6 && memcmp(a.addr, kPrefix, 12) == 0;
}

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
  for (auto& g : domain.groups) {
    if (SameAddress(g->address, address) && (address.family != AF_INET6 || g->v6only == v6only)) return g.get();
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
  for (auto& r : domain.reals) {
    if (SameAddress(r->address, address) && r->v6only == v6only) return r.get();
  }
  return nullptr;
}

int Registry::CheckNewSocket(const PortDomain& domain, const rp_address& address, bool v6only, uid_t uid) const {
  for (const auto& g : domain.groups) {
    if (Overlaps(g->address, g->v6only, address, v6only) && g->owner_uid != uid) return EADDRINUSE;
  }
  return 0;
}

JoinDecision Registry::DecideJoin(const PortDomain& domain, const rp_address& address, bool v6only, uid_t uid) const {
  JoinDecision d;
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
  g->v6only = address.family == AF_INET6 && v6only;
  g->protocol = domain.key.protocol;
  g->owner_uid = uid;
  g->real = real;
  ++real->groups;
  ++usage_[uid].groups;
  groups_by_owner_[uid].push_back(g.get());
  domain.groups.push_back(std::move(g));
  return domain.groups.back().get();
}

std::unique_ptr<RealSocket> Registry::RemoveGroup(Group* group) {
  PortDomain* domain = group->domain;
  RealSocket* real = group->real;
  auto it = std::find_if(domain->groups.begin(), domain->groups.end(), [&](auto& g) { return g.get() == group; });
  if (it != domain->groups.end()) {
    UidUsage& usage = usage_[group->owner_uid];
    if (--usage.groups <= 0) usage.waiting = usage.in_channels = 0;  // no group, no connection held for it
    DropUsageIfIdle(group->owner_uid);
    auto owned = groups_by_owner_.find(group->owner_uid);
    if (owned != groups_by_owner_.end()) {
      auto& v = owned->second;
      v.erase(std::remove(v.begin(), v.end(), group), v.end());
      if (v.empty()) groups_by_owner_.erase(owned);
    }
    domain->groups.erase(it);
  }
  std::unique_ptr<RealSocket> released;
  if (real != nullptr && --real->groups == 0) {
    auto rit = std::find_if(domain->reals.begin(), domain->reals.end(), [&](auto& r) { return r.get() == real; });
    if (rit != domain->reals.end()) {
      released = std::move(*rit);
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

bool Registry::NeedsLocalAddress(const RealSocket& real) const { return real.groups > 1; }

Group* Registry::Route(RealSocket& real, const rp_address* local) {
  Group* best = nullptr;
  int best_score = 0;
  for (auto& g : real.domain->groups) {
    if (g->real != &real || g->active.empty()) continue;
    if (local == nullptr) return g.get();
    int score = MatchScore(g->address, g->v6only, *local);
    if (score > best_score) {
      best_score = score;
      best = g.get();
    }
  }
  return best;
}

}  // namespace reuseport::broker
