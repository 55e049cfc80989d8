#include "control_server.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_format.h"
#include "reuseport/address_codec.h"
#include "log.h"
#include "service_notify.h"
#include "socket_facts.h"
#include "status_report.h"

namespace reuseport::broker {

namespace {

constexpr size_t kMaxLinks = 65536;
constexpr size_t kMaxOutboxBytes = 16u << 20;
constexpr size_t kStatusChunk = 32u << 10;
// How long a join may wait for a group that another link of its uid may be
// creating: that link's kernel bind and its BIND message are microseconds
// apart, more on a loaded host. Well inside the shim's 3 s reply timeout.
constexpr int64_t kParkedBindMs = 500;

const char* ProtocolName(int protocol) { return protocol == RP_PROTO_UDP ? "udp" : "tcp"; }

// What every admission (BIND, ATTACH, REJOIN) tells the member about the group it joined.
rp_member_reply MemberReply(const Group& group, uint64_t member_id, bool listening) {
  rp_member_reply reply{};
  reply.bound = group.address;
  reply.protocol = static_cast<uint8_t>(group.protocol);
  reply.v6only = group.v6only;
  reply.listening = listening ? 1 : 0;
  reply.group_id = group.id;
  reply.member_id = member_id;
  return reply;
}

absl::Status MakeParentDirectory(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return absl::OkStatus();
  std::string dir = path.substr(0, slash);
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') {
      std::string part = dir.substr(0, i);
      if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) {
        return absl::ErrnoToStatus(errno, absl::StrFormat("mkdir %s", part));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

ControlServer::ControlServer(EventLoop& loop, Registry& registry, Dispatcher& dispatcher, const ControlOptions& options)
    : loop_(loop), registry_(registry), dispatcher_(dispatcher), options_(options) {}

ControlServer::~ControlServer() { Shutdown(); }

absl::Status ControlServer::Start() {
  struct sockaddr_un addr {};
  if (options_.socket_path.empty() || options_.socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("socket path '%s' must be 1 to %d bytes", options_.socket_path, sizeof(addr.sun_path) - 1));
  }
  if (absl::Status s = MakeParentDirectory(options_.socket_path); !s.ok()) return s;
  addr.sun_family = AF_UNIX;
  strcpy(addr.sun_path, options_.socket_path.c_str());

  // A socket file left by a broker that died is removed; one that answers
  // belongs to a running broker and is taken over only when asked.
  UniqueFd probe(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  bool running = probe && connect(probe.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) == 0;
  probe.reset();
  if (running && !options_.takeover) {
    return absl::AlreadyExistsError(
        absl::StrFormat("another reuseportd is serving %s (use --takeover to replace it)", options_.socket_path));
  }
  if (!running) unlink(options_.socket_path.c_str());
  // Listen at a temporary path, then rename it into place: the path appears
  // only once connect() can succeed (members waiting for us watch it).
  if (absl::Status s = ListenAndPublish(addr, running); !s.ok()) return s;
  return StartAccepting();
}

absl::Status ControlServer::StartAccepting() {
  listener_watch_ = loop_.Add(listener_.get(), EPOLLIN, [this](uint32_t) { OnAcceptable(); });
  if (listener_watch_ == nullptr) return absl::InternalError("cannot watch the control socket");
  buffer_.resize(RP_MAX_RECORD);
  return absl::OkStatus();
}

absl::Status ControlServer::ListenAndPublish(const struct sockaddr_un& addr, bool from_running) {
  // Listen at a temporary path first, then rename it over the path (a running
  // broker's, when taking over): connect() never finds the path empty or not
  // yet listening, so no member or client is refused during the switch.
  // Members of the old broker see their links close when it exits and join us.
  std::string temporary = absl::StrFormat("%s.%d.new", options_.socket_path, getpid());
  struct sockaddr_un temp_addr {};
  if (temporary.size() >= sizeof(temp_addr.sun_path)) return absl::InvalidArgumentError("socket path too long for takeover");
  temp_addr.sun_family = AF_UNIX;
  strcpy(temp_addr.sun_path, temporary.c_str());
  unlink(temporary.c_str());
  listener_.reset(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener_) return absl::ErrnoToStatus(errno, "socket(AF_UNIX)");
  if (bind(listener_.get(), reinterpret_cast<const struct sockaddr*>(&temp_addr), sizeof(temp_addr)) != 0 ||
      chmod(temporary.c_str(), options_.socket_mode) != 0 || listen(listener_.get(), 1024) != 0) {
    int err = errno;
    unlink(temporary.c_str());
    return absl::ErrnoToStatus(err, absl::StrFormat("listen on %s", temporary));
  }
  UniqueFd old;
  if (from_running) {
    old.reset(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (connect(old.get(), reinterpret_cast<const struct sockaddr*>(&addr), sizeof(addr)) != 0) old.reset();
  }
  if (rename(temporary.c_str(), options_.socket_path.c_str()) != 0) {
    int err = errno;
    unlink(temporary.c_str());
    return absl::ErrnoToStatus(err, absl::StrFormat("rename %s over %s", temporary, options_.socket_path));
  }
  struct stat st {};
  if (stat(options_.socket_path.c_str(), &st) == 0) path_inode_ = st.st_ino;
  if (old) {
    // A service manager must follow us as the main process before the old one
    // leaves (systemd: NotifyAccess=all), or it would take the exit for the
    // service stopping.
    NotifyServiceManager(absl::StrFormat("MAINPID=%d\nSTATUS=taking over %s", getpid(), options_.socket_path));
    rp_header h = MakeHeader(RP_OP_TAKEOVER, 0, 1);
    struct timeval tv = {5, 0};
    setsockopt(old.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    rp_header reply{};
    if (SendRecord(old.get(), h, nullptr, 0, nullptr, 0, {}, 0) != 0 ||
        recv(old.get(), &reply, sizeof(reply), 0) != static_cast<ssize_t>(sizeof(reply)) || reply.status != 0) {
      Log(Severity::kWarning, "the previous broker did not agree to hand over (status %d); it keeps its members until it exits",
          reply.status);
    } else {
      Log(Severity::kInfo, "took over %s from the previous broker", options_.socket_path);
    }
  }
  return absl::OkStatus();
}

void ControlServer::Shutdown() {
  if (!listener_) return;
  loop_.Remove(listener_watch_);
  listener_watch_ = nullptr;
  // Remove the path only if it is still the file we made (a successor may
  // have renamed its own over it).
  struct stat on_disk {};
  if (path_inode_ != 0 && stat(options_.socket_path.c_str(), &on_disk) == 0 && on_disk.st_ino == path_inode_) {
    unlink(options_.socket_path.c_str());
  }
  listener_.reset();
}

void ControlServer::OnAcceptable() {
  for (int i = 0; i < 64; ++i) {
    int fd = accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        LogLimited("control-accept", Severity::kWarning, "accept on the control socket: %s", strerror(errno));
      }
      return;
    }
    UniqueFd owned(fd);
    if (links_.size() >= kMaxLinks) {
      LogLimited("too-many-links", Severity::kWarning, "refusing a link: %d links open", links_.size());
      continue;
    }
    absl::StatusOr<PeerCredentials> creds = ReadPeerCredentials(fd);
    if (!creds.ok()) continue;
    int& uid_links = links_by_uid_[creds->uid];
    if (uid_links >= options_.policy.LimitsFor(creds->uid).links) {
      ++totals_.refusals;
      ++totals_.refusals_by_reason["limit-links"];
      LogLimited("limit-links", Severity::kWarning, "refusing a link from uid %d: it has %d open (limit)", creds->uid,
                 uid_links);
      continue;
    }
    ++uid_links;
    auto link = std::make_unique<Link>();
    link->id = ++last_link_id_;
    link->fd = std::move(owned);
    link->creds = *creds;
    link->command = CommandName(creds->pid);
    Link* raw = link.get();
    link->watch = loop_.Add(fd, EPOLLIN | EPOLLRDHUP, [this, raw](uint32_t events) { OnLinkEvents(raw, events); });
    if (link->watch == nullptr) continue;
    links_[link->id] = std::move(link);
    ++totals_.links_accepted;
  }
}

void ControlServer::OnLinkEvents(Link* link, uint32_t events) {
  uint64_t id = link->id;
  if (events & EPOLLOUT) {
    FlushOutbox(link);
    if (!links_.contains(id)) return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    // A bounded number of records per wakeup, so one chatty client cannot
    // starve the others.
    for (int i = 0; i < 32; ++i) {
      ReceiveResult r = ReceiveRecord(link->fd.get(), buffer_);
      switch (r.status) {
        case ReceiveStatus::kRecord:
          ++totals_.requests;
          Handle(link, r.record);
          if (!links_.contains(id)) return;
          continue;
        case ReceiveStatus::kWouldBlock:
          return;
        case ReceiveStatus::kClosed:
        case ReceiveStatus::kFailed:
          CloseLink(link);
          return;
        case ReceiveStatus::kRejected: {
          ++totals_.rejected_messages;
          LogLimited("bad-message", Severity::kWarning, "link %d (pid %d uid %d %s): rejected message: %s", link->id,
                     link->creds.pid, link->creds.uid, link->command, r.error.reason);
          rp_header request = r.error.header_readable ? r.error.header : rp_header{};
          if (!r.error.header_readable) request.opcode = 0;
          Refuse(link, request, r.error.error, "bad-message", r.error.reason);
          if (!links_.contains(id)) return;
          continue;
        }
      }
    }
  }
}

void ControlServer::CloseLink(Link* link) {
  if (Member* m = link->member) {
    auto& links = m->links;
    links.erase(std::remove(links.begin(), links.end(), link), links.end());
    if (links.empty()) {
      Log(Severity::kInfo, "member %d (pid %d %s) left group %d", m->id, m->creds.pid, m->command, m->group->id);
      members_by_key_.erase(m->key);
      dispatcher_.RemoveMember(m);
    }
  }
  loop_.Remove(link->watch);
  if (--links_by_uid_[link->creds.uid] <= 0) links_by_uid_.erase(link->creds.uid);
  parked_links_.erase(link->id);
  links_.erase(link->id);
}

void ControlServer::Handle(Link* link, Record& record) {
  const rp_header& h = record.header;
  if (h.flags & RP_FLAG_REPLY) {
    Refuse(link, h, EBADMSG, "bad-message", "a reply sent as a request");
    return;
  }
  link->requested = true;
  if (link->parked_bind) {
    Refuse(link, h, EBUSY, "bad-request", "this link's BIND has not been answered yet");
    return;
  }
  switch (h.opcode) {
    case RP_OP_BIND:
      HandleBind(link, record);
      return;
    case RP_OP_LISTEN:
      HandleListen(link, record);
      return;
    case RP_OP_ATTACH:
      HandleAttach(link, record);
      return;
    case RP_OP_STATUS:
      HandleStatus(link, record);
      return;
    case RP_OP_REJOIN:
      HandleRejoin(link, record);
      return;
    case RP_OP_TAKEOVER:
      HandleTakeover(link, record);
      return;
    default:
      Refuse(link, h, EOPNOTSUPP, "unknown-opcode", absl::StrFormat("opcode %d is not a request this broker knows", h.opcode));
      return;
  }
}

// Uids the broker's user namespace does not map all look like the overflow
// uid: grouping by it would let different users share a port.
bool ControlServer::RefuseUnmappedUid(Link* link, const rp_header& h, uid_t owner_uid) {
  if (!UidMayBeUnmapped(owner_uid) && !UidMayBeUnmapped(link->creds.uid)) return false;
  Refuse(link, h, EACCES, "unmapped-uid",
         absl::StrFormat("uid %d is the overflow uid: the socket's owner is not mapped in the broker's user "
                         "namespace, so it cannot be told from other unmapped users; run a broker in the "
                         "members' user namespace",
                         owner_uid));
  return true;
}

bool ControlServer::ParkBind(Link* link, Record& record, const DomainKey& domain, int64_t parked_until_ms) {
  int64_t now = EventLoop::NowMs();
  if (parked_until_ms != 0 && now >= parked_until_ms) return false;
  bool creator_may_be_coming = false;
  for (const auto& [id, other] : links_) {
    // A shim opens its link before it binds and sends nothing until BIND;
    // reuseportctl and links whose own join was answered have spoken already.
    if (other.get() != link && !other->requested && other->creds.uid == link->creds.uid) {
      creator_may_be_coming = true;
      break;
    }
  }
  if (!creator_may_be_coming) return false;
  bool fresh = parked_until_ms == 0;
  link->parked_bind = std::move(record);
  link->parked_domain = domain;
  link->parked_until_ms = fresh ? now + kParkedBindMs : parked_until_ms;
  parked_links_.insert(link->id);
  if (fresh) {
    ++totals_.joins_waited;
    Log(Severity::kDebug, "link %d (pid %d %s): no group on port %d yet; waiting for one", link->id, link->creds.pid,
        link->command, domain.port);
    loop_.After(kParkedBindMs, [this, id = link->id] { RetryParkedBind(id, true); });
  }
  return true;
}

void ControlServer::RetryParkedBinds(const DomainKey& domain) {
  std::vector<uint64_t> ids;
  for (uint64_t id : parked_links_) {
    auto it = links_.find(id);
    if (it != links_.end() && it->second->parked_domain == domain) ids.push_back(id);
  }
  if (ids.empty()) return;
  // After this event: the request that made the group is still being answered.
  loop_.After(0, [this, ids = std::move(ids)] {
    for (uint64_t id : ids) RetryParkedBind(id, false);
  });
}

void ControlServer::RetryParkedBind(uint64_t link_id, bool final) {
  auto it = links_.find(link_id);
  if (it == links_.end() || !it->second->parked_bind) return;
  Link* link = it->second.get();
  Record record = std::move(*link->parked_bind);
  link->parked_bind.reset();
  parked_links_.erase(link_id);
  // A final retry passes a deadline already gone, so it cannot park again.
  HandleBind(link, record, final ? 1 : link->parked_until_ms);
}

void ControlServer::HandleBind(Link* link, Record& record, int64_t parked_until_ms) {
  const rp_header& h = record.header;
  if (link->member != nullptr) {
    Refuse(link, h, EISCONN, "bad-request", "this link already belongs to a member");
    return;
  }
  if (record.payload.size() != sizeof(rp_bind_request) || record.fds.size() != 1) {
    Refuse(link, h, EBADMSG, "bad-message",
           absl::StrFormat("BIND needs a %d-byte payload and one fd (got %d bytes, %d fds)", sizeof(rp_bind_request),
                           record.payload.size(), record.fds.size()));
    return;
  }
  rp_bind_request req;
  memcpy(&req, record.payload.data(), sizeof(req));
  if (req.protocol != RP_PROTO_TCP && req.protocol != RP_PROTO_UDP) {
    Refuse(link, h, EPROTONOSUPPORT, "bad-request", absl::StrFormat("protocol %d", req.protocol));
    return;
  }
  if (req.address.family != AF_INET && req.address.family != AF_INET6) {
    Refuse(link, h, EAFNOSUPPORT, "bad-request", absl::StrFormat("address family %d", req.address.family));
    return;
  }
  int fd = record.fds[0].get();
  absl::StatusOr<SocketFacts> facts = InspectSocket(fd);
  if (!facts.ok()) {
    Refuse(link, h, ENOTSOCK, "bad-socket", std::string(facts.status().message()));
    return;
  }
  if (facts->protocol != req.protocol || facts->family != req.address.family) {
    Refuse(link, h, EPROTOTYPE, "bad-socket", "the socket is not of the protocol and family asked for");
    return;
  }
  if (RefuseUnmappedUid(link, h, facts->owner_uid)) return;
  if (facts->connected || (facts->listening && !facts->bound)) {
    Refuse(link, h, EISCONN, "bad-socket", "the socket is connected");
    return;
  }
  std::optional<NamespaceId> netns_known = SocketNetworkNamespace(fd, link->creds.pid);
  if (!netns_known) {
    Refuse(link, h, EACCES, "unknown-netns",
           absl::StrFormat("cannot tell which network namespace pid %d's socket is in (no SIOCGSKNS, "
                           "/proc/%d/ns/net unreadable: is it in a PID namespace the broker cannot see?)",
                           link->creds.pid, link->creds.pid));
    return;
  }
  NamespaceId netns = *netns_known;

  if (facts->bound) {
    // The kernel bound it for the member: privilege and address are proven.
    rp_address a = facts->address;
    if ((req.address.port != 0 && req.address.port != a.port) || !SameAddress(req.address, a)) {
      Refuse(link, h, EINVAL, "bad-request", "the socket is bound to another address than the one asked for");
      return;
    }
    PortDomain& domain = registry_.DomainFor(DomainKey{netns, req.protocol, a.port});
    if (int err = registry_.CheckNewSocket(domain, a, facts->v6only, facts->owner_uid); err != 0) {
      Refuse(link, h, err, "other-uid", absl::StrFormat("%s is held by another uid", FormatAddress(a)));
      registry_.DropDomainIfEmpty(domain.key);
      return;
    }
    if (Group* g = registry_.FindExactGroup(domain, a, facts->v6only)) {
      if (int err = CheckLimits(link, g->owner_uid, false); err != 0) {
        Refuse(link, h, err, "limit", absl::StrFormat("uid %d is at its limits", link->creds.uid));
        return;
      }
      Admit(link, h, g, g->real->fd.get());  // its own socket is dropped: the group has one
      return;
    }
    CreateGroup(link, h, std::move(record.fds[0]), *facts, domain);
    return;
  }

  if (req.address.port == 0) {
    Refuse(link, h, EINVAL, "bad-request", "an unbound socket cannot join port 0");
    return;
  }
  if (!options_.policy.MayJoinPort(link->creds, req.protocol, req.address.port)) {
    Refuse(link, h, EACCES, "privileged-port",
           absl::StrFormat("pid %d uid %d may not bind port %d", link->creds.pid, link->creds.uid, req.address.port));
    return;
  }
  PortDomain* domain = registry_.FindDomain(DomainKey{netns, req.protocol, req.address.port});
  JoinDecision d;
  if (domain != nullptr) d = registry_.DecideJoin(*domain, req.address, facts->v6only, facts->owner_uid);
  if (d.kind == JoinDecision::kNoGroup && req.address.port < Policy::kFirstUnprivilegedPort &&
      options_.policy.AllowedByRule(link->creds, req.protocol, req.address.port)) {
    // authbind-style: the policy lets this uid have the port; we bind it for
    // the member, on its own socket, in its own network namespace.
    struct sockaddr_storage ss;
    socklen_t len = rp_address_to_sockaddr(&req.address, req.address.family, &ss);
    if (bind(fd, reinterpret_cast<struct sockaddr*>(&ss), len) != 0) {
      int err = errno;
      Refuse(link, h, err, "bind-failed", absl::StrFormat("bind %s: %s", FormatAddress(req.address), strerror(err)));
      return;
    }
    absl::StatusOr<SocketFacts> bound = InspectSocket(fd);
    if (!bound.ok()) {
      Refuse(link, h, EIO, "bind-failed", std::string(bound.status().message()));
      return;
    }
    PortDomain& d2 = registry_.DomainFor(DomainKey{netns, req.protocol, bound->address.port});
    Log(Severity::kInfo, "bound %s for pid %d uid %d (%s) as the policy allows", FormatAddress(bound->address),
        link->creds.pid, link->creds.uid, link->command);
    CreateGroup(link, h, std::move(record.fds[0]), *bound, d2);
    return;
  }
  const DomainKey key{netns, req.protocol, req.address.port};
  if (domain == nullptr) {
    if (ParkBind(link, record, key, parked_until_ms)) return;
    Refuse(link, h, ENOENT, "no-group", absl::StrFormat("no group holds %s", FormatAddress(req.address)));
    return;
  }
  switch (d.kind) {
    case JoinDecision::kRefused:
      Refuse(link, h, d.error, "other-uid",
             absl::StrFormat("%s is held by another uid than %d", FormatAddress(req.address), facts->owner_uid));
      return;
    case JoinDecision::kNoGroup:
      if (ParkBind(link, record, key, parked_until_ms)) return;
      Refuse(link, h, ENOENT, "no-group", absl::StrFormat("no group can serve %s", FormatAddress(req.address)));
      return;
    case JoinDecision::kJoinGroup:
      if (int err = CheckLimits(link, d.group->owner_uid, false); err != 0) {
        Refuse(link, h, err, "limit", absl::StrFormat("uid %d is at its limits", link->creds.uid));
        return;
      }
      Admit(link, h, d.group, d.group->real->fd.get());
      return;
    case JoinDecision::kNewGroupOnSocket: {
      if (int err = CheckLimits(link, facts->owner_uid, true); err != 0) {
        Refuse(link, h, err, "limit", absl::StrFormat("uid %d is at its limits", link->creds.uid));
        return;
      }
      Group* g = registry_.AddGroup(*domain, d.real, req.address, facts->v6only, facts->owner_uid);
      Log(Severity::kInfo, "group %d: %s %s uid %d created by pid %d (%s), served through %s", g->id,
          ProtocolName(req.protocol), FormatAddress(req.address), facts->owner_uid, link->creds.pid, link->command,
          FormatAddress(d.real->address));
      Admit(link, h, g, d.real->fd.get());
      RetryParkedBinds(key);
      return;
    }
  }
}

void ControlServer::CreateGroup(Link* link, const rp_header& h, UniqueFd socket, const SocketFacts& facts,
                                PortDomain& domain) {
  if (int err = CheckLimits(link, facts.owner_uid, true); err != 0) {
    Refuse(link, h, err, "limit", absl::StrFormat("uid %d is at its limits", link->creds.uid));
    registry_.DropDomainIfEmpty(domain.key);
    return;
  }
  int protocol = facts.protocol;
  RealSocket* real = registry_.AddRealSocket(domain, std::move(socket), protocol, facts.address, facts.v6only, facts.inode);
  Group* g = registry_.AddGroup(domain, real, facts.address, facts.v6only, facts.owner_uid);
  g->pending_limit = options_.policy.LimitsFor(facts.owner_uid).queued;
  if (protocol == RP_PROTO_UDP) {
    if (absl::Status s = dispatcher_.StartUdp(real); !s.ok()) Log(Severity::kError, "%s", s.ToString());
  }
  Log(Severity::kInfo, "group %d: %s %s uid %d created by pid %d (%s)", g->id, ProtocolName(protocol),
      FormatAddress(facts.address), facts.owner_uid, link->creds.pid, link->command);
  const DomainKey key = domain.key;
  Admit(link, h, g, real->fd.get());
  RetryParkedBinds(key);
}

int ControlServer::CheckLimits(const Link* link, uid_t owner_uid, bool new_group) const {
  UidLimits limits = options_.policy.LimitsFor(link->creds.uid);
  if (registry_.MembersOf(link->creds.uid) >= limits.members) return EDQUOT;
  if (new_group && registry_.GroupsOf(owner_uid) >= options_.policy.LimitsFor(owner_uid).groups) return EDQUOT;
  return 0;
}

void ControlServer::Admit(Link* link, const rp_header& request, Group* group, int real_fd) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    int err = errno;
    Refuse(link, request, err, "resources", absl::StrFormat("socketpair: %s", strerror(err)));
    if (group->members.empty()) {
      if (auto released = registry_.RemoveGroup(group)) dispatcher_.ForgetRealSocket(released.get());
    }
    return;
  }
  UniqueFd broker_end(sv[0]);
  UniqueFd member_end(sv[1]);
  dispatcher_.PrepareChannel(broker_end.get(), group->protocol);
  UniqueFd member_copy(fcntl(member_end.get(), F_DUPFD_CLOEXEC, 0));
  UniqueFd broker_copy(fcntl(broker_end.get(), F_DUPFD_CLOEXEC, 0));
  struct stat st {};
  if (!member_copy || !broker_copy || fstat(member_end.get(), &st) != 0) {
    int err = errno;
    Refuse(link, request, err, "resources", absl::StrFormat("dup: %s", strerror(err)));
    if (group->members.empty()) {
      if (auto released = registry_.RemoveGroup(group)) dispatcher_.ForgetRealSocket(released.get());
    }
    return;
  }
  auto member = std::make_unique<Member>();
  member->id = registry_.NextId();
  member->creds = link->creds;
  member->command = link->command;
  member->channel = std::move(broker_end);
  member->channel_member = std::move(member_copy);
  member->key = static_cast<uint64_t>(st.st_ino);

  rp_member_reply reply = MemberReply(*group, member->id, false);
  uint64_t link_id = link->id;
  Reply(link, request, 0, &reply, sizeof(reply), {member_end.get(), broker_copy.get(), real_fd});
  if (!links_.contains(link_id)) {
    if (group->members.empty()) {
      if (auto released = registry_.RemoveGroup(group)) dispatcher_.ForgetRealSocket(released.get());
    }
    return;
  }
  Member* m = member.get();
  link->member = m;
  m->links.push_back(link);
  members_by_key_[m->key] = m;
  Log(Severity::kInfo, "member %d (pid %d uid %d %s) joined group %d (%s %s)", m->id, m->creds.pid, m->creds.uid,
      m->command, group->id, ProtocolName(group->protocol), FormatAddress(group->address));
  dispatcher_.AddMember(group, std::move(member));
}

void ControlServer::HandleListen(Link* link, Record& record) {
  const rp_header& h = record.header;
  Member* m = link->member;
  if (m == nullptr) {
    Refuse(link, h, ENOTCONN, "bad-request", "LISTEN before BIND");
    return;
  }
  if (m->group->protocol != RP_PROTO_TCP) {
    Refuse(link, h, EOPNOTSUPP, "bad-request", "LISTEN on a UDP member");
    return;
  }
  if (record.payload.size() != sizeof(rp_listen_request) || !record.fds.empty()) {
    Refuse(link, h, EBADMSG, "bad-message", "LISTEN needs an 8-byte payload and no fds");
    return;
  }
  rp_listen_request req;
  memcpy(&req, record.payload.data(), sizeof(req));
  int backlog = req.backlog <= 0 ? 128 : std::min(req.backlog, 65535);
  if (int err = dispatcher_.Listen(m->group->real, backlog); err != 0) {
    Refuse(link, h, err, "listen-failed",
           absl::StrFormat("listen on %s: %s", FormatAddress(m->group->real->address), strerror(err)));
    return;
  }
  dispatcher_.SetListening(m);
  Reply(link, h, 0, nullptr, 0);
}

void ControlServer::HandleAttach(Link* link, Record& record) {
  const rp_header& h = record.header;
  if (link->member != nullptr) {
    Refuse(link, h, EISCONN, "bad-request", "this link already belongs to a member");
    return;
  }
  if (!record.payload.empty() || record.fds.size() != 1) {
    Refuse(link, h, EBADMSG, "bad-message", "ATTACH needs no payload and one fd");
    return;
  }
  // Holding the member's end of the channel is the proof of membership.
  struct stat st {};
  if (fstat(record.fds[0].get(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
    Refuse(link, h, ENOTSOCK, "bad-socket", "ATTACH needs a channel");
    return;
  }
  auto it = members_by_key_.find(static_cast<uint64_t>(st.st_ino));
  struct stat mine {};
  if (it == members_by_key_.end() || fstat(it->second->channel_member.get(), &mine) != 0 || mine.st_dev != st.st_dev) {
    Refuse(link, h, ENOENT, "no-member", "no member owns that channel");
    return;
  }
  Member* m = it->second;
  UniqueFd broker_copy(fcntl(m->channel.get(), F_DUPFD_CLOEXEC, 0));
  if (!broker_copy) {
    Refuse(link, h, errno, "resources", "dup failed");
    return;
  }
  rp_member_reply reply = MemberReply(*m->group, m->id, m->listening);
  uint64_t link_id = link->id;
  Reply(link, h, 0, &reply, sizeof(reply), {broker_copy.get(), m->group->real->fd.get()});
  if (!links_.contains(link_id)) return;
  link->member = m;
  m->links.push_back(link);
}

void ControlServer::HandleTakeover(Link* link, Record& record) {
  const rp_header& h = record.header;
  if (link->creds.uid != 0 && link->creds.uid != geteuid()) {
    Refuse(link, h, EPERM, "bad-request", "only root or the broker's own uid may take over");
    return;
  }
  if (!record.payload.empty() || !record.fds.empty()) {
    Refuse(link, h, EBADMSG, "bad-message", "TAKEOVER takes no payload and no fds");
    return;
  }
  Log(Severity::kInfo, "pid %d (%s) takes over; leaving %d link(s) to it", link->creds.pid, link->command,
      links_.size() - 1);
  Reply(link, h, 0, nullptr, 0);
  handed_over_ = true;
  // Exit without touching members: their channels and group sockets stay
  // open in their own processes, and they rejoin the successor.
  loop_.Stop();
}

// Holding a member's channel (both ends) and its group's real socket is the
// proof of membership: after a broker restart every member presents them.
void ControlServer::HandleRejoin(Link* link, Record& record) {
  const rp_header& h = record.header;
  if (link->member != nullptr) {
    Refuse(link, h, EISCONN, "bad-request", "this link already belongs to a member");
    return;
  }
  if (record.payload.size() != sizeof(rp_rejoin_request) || record.fds.size() != 3) {
    Refuse(link, h, EBADMSG, "bad-message", "REJOIN needs a 48-byte payload and three fds");
    return;
  }
  rp_rejoin_request req;
  memcpy(&req, record.payload.data(), sizeof(req));
  if (req.bound.family != AF_INET && req.bound.family != AF_INET6) {
    Refuse(link, h, EAFNOSUPPORT, "bad-request", absl::StrFormat("address family %d", req.bound.family));
    return;
  }
  if (req.protocol != RP_PROTO_TCP && req.protocol != RP_PROTO_UDP) {
    Refuse(link, h, EPROTONOSUPPORT, "bad-request", absl::StrFormat("protocol %d", req.protocol));
    return;
  }
  for (int i = 0; i < 2; ++i) {
    int domain = 0, type = 0;
    socklen_t len = sizeof(int);
    getsockopt(record.fds[i].get(), SOL_SOCKET, SO_DOMAIN, &domain, &len);
    len = sizeof(int);
    getsockopt(record.fds[i].get(), SOL_SOCKET, SO_TYPE, &type, &len);
    if (domain != AF_UNIX || type != SOCK_SEQPACKET) {
      Refuse(link, h, ENOTSOCK, "bad-socket", "REJOIN needs the two ends of a channel");
      return;
    }
  }
  struct stat channel_st {};
  fstat(record.fds[0].get(), &channel_st);
  uint64_t key = static_cast<uint64_t>(channel_st.st_ino);
  if (auto it = members_by_key_.find(key); it != members_by_key_.end()) {
    // Another process of a member that already rejoined (fork).
    Member* m = it->second;
    rp_member_reply reply = MemberReply(*m->group, m->id, m->listening);
    uint64_t link_id = link->id;
    Reply(link, h, 0, &reply, sizeof(reply));
    if (!links_.contains(link_id)) return;
    link->member = m;
    m->links.push_back(link);
    return;
  }
  absl::StatusOr<SocketFacts> facts = InspectSocket(record.fds[2].get());
  if (!facts.ok() || !facts->bound || facts->protocol != req.protocol || facts->connected) {
    Refuse(link, h, EINVAL, "bad-socket", "REJOIN needs the group's bound socket");
    return;
  }
  if (RefuseUnmappedUid(link, h, facts->owner_uid)) return;
  if (req.bound.port != facts->address.port || !Serves(facts->address, facts->v6only, req.bound, req.v6only)) {
    Refuse(link, h, EINVAL, "bad-request", "the group socket does not serve the address given");
    return;
  }
  std::optional<NamespaceId> netns_known = SocketNetworkNamespace(record.fds[2].get(), link->creds.pid);
  if (!netns_known) {
    Refuse(link, h, EACCES, "unknown-netns", "cannot tell which network namespace the group socket is in");
    return;
  }
  NamespaceId netns = *netns_known;
  PortDomain& domain = registry_.DomainFor(DomainKey{netns, req.protocol, facts->address.port});
  RealSocket* real = nullptr;
  for (auto& r : domain.reals) {
    if (r->inode == facts->inode) real = r.get();
  }
  if (real == nullptr) {
    for (auto& r : domain.reals) {
      if (SameAddress(r->address, facts->address) && r->v6only == facts->v6only) {
        Refuse(link, h, EADDRINUSE, "other-socket", "another socket already serves that address");
        registry_.DropDomainIfEmpty(domain.key);
        return;
      }
    }
    real = registry_.AddRealSocket(domain, std::move(record.fds[2]), req.protocol, facts->address, facts->v6only,
                                   facts->inode);
    if (req.protocol == RP_PROTO_UDP) {
      if (absl::Status s = dispatcher_.StartUdp(real); !s.ok()) Log(Severity::kError, "%s", s.ToString());
    }
  }
  Group* group = registry_.FindExactGroup(domain, req.bound, req.v6only);
  if (group == nullptr) {
    group = registry_.AddGroup(domain, real, req.bound, req.v6only, facts->owner_uid);
    group->pending_limit = options_.policy.LimitsFor(facts->owner_uid).queued;
  } else if (group->owner_uid != facts->owner_uid) {
    Refuse(link, h, EADDRINUSE, "other-uid", "the group belongs to another uid");
    return;
  }
  auto member = std::make_unique<Member>();
  member->id = registry_.NextId();
  member->creds = link->creds;
  member->command = link->command;
  member->channel = std::move(record.fds[1]);
  member->channel_member = std::move(record.fds[0]);
  member->key = key;
  dispatcher_.PrepareChannel(member->channel.get(), group->protocol);
  rp_member_reply reply = MemberReply(*group, member->id, req.listening != 0);
  uint64_t link_id = link->id;
  Reply(link, h, 0, &reply, sizeof(reply));
  if (!links_.contains(link_id)) {
    if (group->members.empty()) {
      if (auto released = registry_.RemoveGroup(group)) dispatcher_.ForgetRealSocket(released.get());
    }
    return;
  }
  Member* m = member.get();
  link->member = m;
  m->links.push_back(link);
  members_by_key_[key] = m;
  Log(Severity::kInfo, "member %d (pid %d %s) rejoined group %d (%s %s), formerly member %d", m->id, m->creds.pid,
      m->command, group->id, ProtocolName(group->protocol), FormatAddress(group->address), req.member_key);
  dispatcher_.AddMember(group, std::move(member));
  if (group->protocol == RP_PROTO_TCP && req.listening) {
    if (int err = dispatcher_.Listen(group->real, req.backlog); err != 0) {
      Log(Severity::kWarning, "listen on %s: %s", FormatAddress(group->real->address), strerror(err));
    }
    dispatcher_.SetListening(m);
  }
  // A program that started while the members were coming back may be waiting.
  RetryParkedBinds(DomainKey{netns, req.protocol, facts->address.port});
}

void ControlServer::HandleStatus(Link* link, Record& record) {
  const rp_header& h = record.header;
  if (record.payload.size() != sizeof(rp_status_request) || !record.fds.empty()) {
    Refuse(link, h, EBADMSG, "bad-message", "STATUS needs an 8-byte payload and no fds");
    return;
  }
  rp_status_request req;
  memcpy(&req, record.payload.data(), sizeof(req));
  if (req.format > RP_STATUS_PROMETHEUS) {
    Refuse(link, h, EINVAL, "bad-request", absl::StrFormat("status format %d", req.format));
    return;
  }
  std::string text = RenderStatus(StatusSources{registry_, dispatcher_.totals(), totals_, links_.size()},
                                   static_cast<rp_status_format>(req.format));
  size_t offset = 0;
  do {
    size_t n = std::min(kStatusChunk, text.size() - offset);
    rp_header reply = MakeReply(h, 0, 0);
    if (offset + n < text.size()) reply.flags |= RP_FLAG_MORE;
    std::string bytes(reinterpret_cast<const char*>(&reply), sizeof(reply));
    bytes.append(text, offset, n);
    QueueRecord(link, std::move(bytes));
    offset += n;
  } while (offset < text.size());
  FlushOutbox(link);
}

void ControlServer::Reply(Link* link, const rp_header& request, int status, const void* payload, size_t payload_size,
                          const std::vector<int>& fds) {
  rp_header reply = MakeReply(request, status, static_cast<uint32_t>(payload_size));
  if (fds.empty()) {
    std::string bytes(reinterpret_cast<const char*>(&reply), sizeof(reply));
    if (payload_size > 0) bytes.append(static_cast<const char*>(payload), payload_size);
    QueueRecord(link, std::move(bytes));
    FlushOutbox(link);
    return;
  }
  int err = link->outbox.empty() ? SendRecord(link->fd.get(), reply, payload, payload_size, nullptr, 0, fds, MSG_DONTWAIT)
                                 : EAGAIN;
  if (err != 0) {
    // A member that does not read the reply to its own request is broken.
    LogLimited("reply-failed", Severity::kWarning, "link %d (pid %d %s): cannot reply: %s; closing it", link->id,
               link->creds.pid, link->command, strerror(err));
    CloseLink(link);
  }
}

void ControlServer::Refuse(Link* link, const rp_header& request, int status, const std::string& reason_key,
                           const std::string& detail) {
  ++totals_.refusals;
  ++totals_.refusals_by_reason[reason_key];
  LogLimited(reason_key, Severity::kInfo, "link %d (pid %d uid %d %s): %s: %s", link->id, link->creds.pid,
             link->creds.uid, link->command, strerror(status), detail);
  Reply(link, request, status, nullptr, 0);
}

void ControlServer::QueueRecord(Link* link, std::string bytes) {
  link->outbox_bytes += bytes.size();
  link->outbox.push_back(std::move(bytes));
}

void ControlServer::FlushOutbox(Link* link) {
  while (!link->outbox.empty()) {
    const std::string& bytes = link->outbox.front();
    ssize_t n = send(link->fd.get(), bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      CloseLink(link);
      return;
    }
    link->outbox_bytes -= bytes.size();
    link->outbox.pop_front();
  }
  if (link->outbox_bytes > kMaxOutboxBytes) {
    LogLimited("slow-reader", Severity::kWarning, "link %d (pid %d %s) does not read its replies; closing it", link->id,
               link->creds.pid, link->command);
    CloseLink(link);
    return;
  }
  uint32_t want = EPOLLIN | EPOLLRDHUP | (link->outbox.empty() ? 0u : static_cast<uint32_t>(EPOLLOUT));
  loop_.Modify(link->watch, want);
}

}  // namespace reuseport::broker
