#include "admission.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <algorithm>

#include "absl/strings/str_format.h"

namespace reuseport::broker {

namespace {

JoinPlan Refuse(int error, std::string reason, std::string detail) {
  JoinPlan plan;
  plan.action = JoinPlan::Action::kRefuse;
  plan.refusal = Refusal{error, std::move(reason), std::move(detail)};
  return plan;
}

Refusal LimitRefusal(const char* what, uid_t uid, int64_t limit) {
  return Refusal{EDQUOT, absl::StrFormat("limit-%s", what), absl::StrFormat("uid %d is at its %s limit (%d)", uid, what, limit)};
}

// Rule 7 for a new member: the peer's members, the owner's groups when a
// group is made, and the UDP channel bytes of the peer.
std::optional<Refusal> CheckLimits(const JoinFacts& facts, const Registry& registry, const Policy& policy,
                                   const AdmissionSettings& settings, uid_t owner_uid, bool new_group, int protocol,
                                   int64_t* udp_channel_bytes) {
  uid_t peer_uid = facts.peer.creds.uid;
  UidLimits peer = policy.LimitsFor(peer_uid);
  if (registry.MembersOf(peer_uid) >= peer.members) return LimitRefusal("members", peer_uid, peer.members);
  if (new_group) {
    UidLimits owner = policy.LimitsFor(owner_uid);
    if (registry.GroupsOf(owner_uid) >= owner.groups) return LimitRefusal("groups", owner_uid, owner.groups);
  }
  *udp_channel_bytes = 0;
  if (protocol == RP_PROTO_UDP) {
    int64_t left = peer.udp_bytes - registry.UsageOf(peer_uid).udp_channel_bytes;
    if (left < AdmissionSettings::kMinUdpChannelBytes) return LimitRefusal("udp_bytes", peer_uid, peer.udp_bytes);
    *udp_channel_bytes = std::min(settings.udp_channel_bytes, left);
  }
  return std::nullopt;
}

// Rules 2 and 3, common to BIND and REJOIN.
std::optional<Refusal> CheckSocketAndPeer(const JoinRequest& request, const JoinFacts& facts) {
  if (!facts.socket) return Refusal{ENOTSOCK, "bad-socket", facts.socket_problem};
  const SocketFacts& s = *facts.socket;
  if (request.kind == JoinRequest::Kind::kBind) {
    if (s.protocol != request.protocol || s.family != request.address.family) {
      return Refusal{EPROTOTYPE, "bad-socket", "the socket is not of the protocol and family asked for"};
    }
  } else if (!s.bound || s.protocol != request.protocol || s.connected) {
    return Refusal{EINVAL, "bad-socket", "REJOIN needs the group's bound socket"};
  }
  if (facts.uid_may_be_unmapped) {
    return Refusal{EACCES, "unmapped-uid",
                   absl::StrFormat("uid %d is the overflow uid: the socket's owner is not mapped in the broker's user "
                                   "namespace, so it cannot be told from other unmapped users; run a broker in the "
                                   "members' user namespace",
                                   s.owner_uid)};
  }
  if (s.connected || (s.listening && !s.bound)) return Refusal{EISCONN, "bad-socket", "the socket is connected"};
  if (!facts.netns) {
    return Refusal{EACCES, "unknown-netns",
                   absl::StrFormat("cannot tell which network namespace pid %d's socket is in (no SIOCGSKNS, "
                                   "/proc/%d/ns/net unreadable: is it in a PID namespace the broker cannot see?)",
                                   facts.peer.creds.pid, facts.peer.creds.pid)};
  }
  return std::nullopt;
}

// A member of a new group on a socket the kernel bound (BIND of a bound
// socket, REJOIN of a group the broker does not know yet), or of the group
// already at that exact address.
JoinPlan AdmitOnBoundSocket(const JoinRequest& request, const JoinFacts& facts, const Registry& registry,
                            const Policy& policy, const AdmissionSettings& settings, const rp_address& group_address,
                            bool group_v6only) {
  const SocketFacts& s = *facts.socket;
  JoinPlan plan;
  plan.domain = DomainKey{*facts.netns, request.protocol, s.address.port};
  plan.group_address = group_address;
  plan.group_v6only = EffectiveV6only(group_address, group_v6only);
  plan.owner_uid = s.owner_uid;
  const PortDomain* domain = registry.FindDomain(plan.domain);
  if (domain != nullptr) {
    // Rule 5 for both the socket's own address and the group's.
    if (registry.CheckNewSocket(*domain, s.address, s.v6only, s.owner_uid) != 0 ||
        registry.CheckNewSocket(*domain, group_address, plan.group_v6only, s.owner_uid) != 0) {
      return Refuse(EADDRINUSE, "other-uid", absl::StrFormat("%s is held by another uid", FormatAddress(group_address)));
    }
    if (request.kind == JoinRequest::Kind::kRejoin) {
      plan.real = registry.FindRealSocket(*domain, s.inode);
      if (plan.real == nullptr && registry.FindRealSocketAt(*domain, s.address, s.v6only) != nullptr) {
        return Refuse(EADDRINUSE, "other-socket", "another socket already serves that address");
      }
    }
    plan.group = registry.FindExactGroup(*domain, group_address, plan.group_v6only);
    if (plan.group != nullptr && request.kind == JoinRequest::Kind::kRejoin && plan.real != nullptr &&
        plan.group->real != plan.real) {
      return Refuse(EADDRINUSE, "other-socket", "the group is served by another socket");
    }
  }
  if (plan.group != nullptr) plan.real = nullptr;  // the member joins; its own socket is not needed
  bool new_group = plan.group == nullptr;
  if (auto refusal = CheckLimits(facts, registry, policy, settings, s.owner_uid, new_group, request.protocol,
                                 &plan.udp_channel_bytes)) {
    return Refuse(refusal->error, refusal->reason, refusal->detail);
  }
  plan.action = JoinPlan::Action::kAdmit;
  return plan;
}

JoinPlan DecideBind(const JoinRequest& request, const JoinFacts& facts, const Registry& registry, const Policy& policy,
                    const AdmissionSettings& settings) {
  const SocketFacts& s = *facts.socket;
  if (s.bound) {
    // The kernel bound it for the member: privilege and address are proven.
    if ((request.address.port != 0 && request.address.port != s.address.port) || !SameAddress(request.address, s.address)) {
      return Refuse(EINVAL, "bad-request", "the socket is bound to another address than the one asked for");
    }
    return AdmitOnBoundSocket(request, facts, registry, policy, settings, s.address, s.v6only);
  }

  if (request.address.port == 0) return Refuse(EINVAL, "bad-request", "an unbound socket cannot join port 0");
  if (!policy.MayJoinPort(facts.peer, request.protocol, request.address.port)) {
    return Refuse(EACCES, "privileged-port",
                  absl::StrFormat("pid %d uid %d may not bind port %d", facts.peer.creds.pid, facts.peer.creds.uid,
                                  request.address.port));
  }
  JoinPlan plan;
  plan.domain = DomainKey{*facts.netns, request.protocol, request.address.port};
  plan.group_address = request.address;
  plan.group_v6only = EffectiveV6only(request.address, s.v6only);
  plan.owner_uid = s.owner_uid;
  const PortDomain* domain = registry.FindDomain(plan.domain);
  JoinDecision d;
  if (domain != nullptr) d = registry.DecideJoin(*domain, request.address, s.v6only, s.owner_uid);
  switch (d.kind) {
    case JoinDecision::kRefused:
      return Refuse(d.error, "other-uid",
                    absl::StrFormat("%s is held by another uid than %d", FormatAddress(request.address), s.owner_uid));
    case JoinDecision::kJoinGroup:
      plan.group = d.group;
      break;
    case JoinDecision::kNewGroupOnSocket:
      plan.real = d.real;
      break;
    case JoinDecision::kWiden:
    case JoinDecision::kNewGroupWithCompanion:
      if (auto refusal = CheckLimits(facts, registry, policy, settings, s.owner_uid, true, request.protocol,
                                     &plan.udp_channel_bytes)) {
        return Refuse(refusal->error, refusal->reason, refusal->detail);
      }
      plan.action = JoinPlan::Action::kBindAndCreate;
      plan.also = d.real;
      plan.bind_address = d.companion;
      plan.bind_v6only = d.companion_v6only;
      plan.retire = d.retire;
      return plan;
    case JoinDecision::kNoGroup:
      if (request.address.port < Policy::kFirstUnprivilegedPort &&
          policy.AllowedByRule(facts.peer, request.protocol, request.address.port)) {
        // authbind-style: the policy lets this uid have the port; the broker
        // binds it for the member, on the member's own socket.
        if (auto refusal = CheckLimits(facts, registry, policy, settings, s.owner_uid, true, request.protocol,
                                       &plan.udp_channel_bytes)) {
          return Refuse(refusal->error, refusal->reason, refusal->detail);
        }
        plan.action = JoinPlan::Action::kBindAndCreate;
        plan.bind_address = request.address;
        plan.bind_v6only = s.v6only;
        return plan;
      }
      if (facts.creator_may_be_coming && !facts.wait_over) {
        plan.action = JoinPlan::Action::kWait;
        return plan;
      }
      return Refuse(ENOENT, "no-group", absl::StrFormat("no group can serve %s", FormatAddress(request.address)));
  }
  if (auto refusal = CheckLimits(facts, registry, policy, settings, s.owner_uid, plan.group == nullptr,
                                 request.protocol, &plan.udp_channel_bytes)) {
    return Refuse(refusal->error, refusal->reason, refusal->detail);
  }
  plan.action = JoinPlan::Action::kAdmit;
  return plan;
}

JoinPlan DecideRejoin(const JoinRequest& request, const JoinFacts& facts, const Registry& registry,
                      const Policy& policy, const AdmissionSettings& settings) {
  if (!facts.channel_proven) {
    return Refuse(EPERM, "bad-proof", "the channel ends passed are not the two ends of one channel");
  }
  if (facts.rejoined_member != nullptr) {
    JoinPlan plan;
    plan.action = JoinPlan::Action::kAddLink;
    plan.member = facts.rejoined_member;
    return plan;
  }
  const SocketFacts& s = *facts.socket;
  // The group socket carries the group's traffic, or part of it (a dual-stack
  // group's own half; the other half is another group's socket).
  if (request.address.port != s.address.port || !Overlaps(s.address, s.v6only, request.address, request.v6only)) {
    return Refuse(EINVAL, "bad-request", "the group socket does not serve the address given");
  }
  return AdmitOnBoundSocket(request, facts, registry, policy, settings, request.address, request.v6only);
}

}  // namespace

std::optional<Refusal> ParseJoinRequest(const Record& record, JoinRequest* out) {
  JoinRequest r;
  if (record.header.opcode == RP_OP_BIND) {
    if (record.payload.size() != sizeof(rp_bind_request) || record.fds.size() != 1) {
      return Refusal{EBADMSG, "bad-message",
                     absl::StrFormat("BIND needs a %d-byte payload and one fd (got %d bytes, %d fds)",
                                     sizeof(rp_bind_request), record.payload.size(), record.fds.size())};
    }
    rp_bind_request req;
    memcpy(&req, record.payload.data(), sizeof(req));
    r.kind = JoinRequest::Kind::kBind;
    r.protocol = req.protocol;
    r.address = req.address;
  } else {
    if (record.payload.size() != sizeof(rp_rejoin_request) || record.fds.size() < 3 || record.fds.size() > 4) {
      return Refusal{EBADMSG, "bad-message", "REJOIN needs a 48-byte payload and three fds (four with a datagram ring)"};
    }
    rp_rejoin_request req;
    memcpy(&req, record.payload.data(), sizeof(req));
    r.kind = JoinRequest::Kind::kRejoin;
    r.protocol = req.protocol;
    r.address = req.bound;
    r.v6only = req.v6only != 0;
    r.listening = req.listening != 0;
    r.backlog = req.backlog;
    r.previous_id = req.member_key;
  }
  if (r.protocol != RP_PROTO_TCP && r.protocol != RP_PROTO_UDP) {
    return Refusal{EPROTONOSUPPORT, "bad-request", absl::StrFormat("protocol %d", r.protocol)};
  }
  if (r.address.family != AF_INET && r.address.family != AF_INET6) {
    return Refusal{EAFNOSUPPORT, "bad-request", absl::StrFormat("address family %d", r.address.family)};
  }
  *out = r;
  return std::nullopt;
}

JoinPlan DecideJoin(const JoinRequest& request, const JoinFacts& facts, const Registry& registry,
                    const Policy& policy, const AdmissionSettings& settings) {
  if (facts.link_is_member) return Refuse(EISCONN, "bad-request", "this link already belongs to a member");
  if (auto refusal = CheckSocketAndPeer(request, facts)) return Refuse(refusal->error, refusal->reason, refusal->detail);
  if (request.kind == JoinRequest::Kind::kRejoin) return DecideRejoin(request, facts, registry, policy, settings);
  return DecideBind(request, facts, registry, policy, settings);
}

AttachPlan DecideAttach(const AttachFacts& facts) {
  AttachPlan plan;
  if (facts.link_is_member) {
    plan.refusal = Refusal{EISCONN, "bad-request", "this link already belongs to a member"};
  } else if (!facts.well_formed) {
    plan.refusal = Refusal{EBADMSG, "bad-message", "ATTACH needs no payload and one fd"};
  } else if (!facts.is_socket) {
    plan.refusal = Refusal{ENOTSOCK, "bad-socket", "ATTACH needs a channel"};
  } else if (facts.proven_member == nullptr) {
    plan.refusal = Refusal{ENOENT, "no-member", "no member owns that channel"};
  } else {
    plan.member = facts.proven_member;
  }
  return plan;
}

ListenPlan DecideListen(const Record& record, const Member* member) {
  ListenPlan plan;
  if (member == nullptr) {
    plan.refusal = Refusal{ENOTCONN, "bad-request", "LISTEN before BIND"};
  } else if (member->group->protocol != RP_PROTO_TCP) {
    plan.refusal = Refusal{EOPNOTSUPP, "bad-request", "LISTEN on a UDP member"};
  } else if (record.payload.size() != sizeof(rp_listen_request) || !record.fds.empty()) {
    plan.refusal = Refusal{EBADMSG, "bad-message", "LISTEN needs an 8-byte payload and no fds"};
  } else {
    rp_listen_request req;
    memcpy(&req, record.payload.data(), sizeof(req));
    plan.backlog = req.backlog <= 0 ? 128 : std::min(req.backlog, 65535);
  }
  return plan;
}

}  // namespace reuseport::broker
