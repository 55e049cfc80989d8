#include "control_server.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_format.h"
#include "channel_proof.h"
#include "log.h"
#include "reuseport/address_codec.h"
#include "socket_facts.h"
#include "status_report.h"

namespace reuseport::broker {

namespace {

constexpr size_t kMaxLinks = 65536;
constexpr size_t kStatusChunk = 32u << 10;
// The kernel's share of what a link may hold for a client that does not
// read: replies with fds must go out at once (they are never queued here),
// so this only needs to hold a few of them.
constexpr int kLinkSendBuffer = 64 << 10;

const char* ProtocolName(int protocol) { return protocol == RP_PROTO_UDP ? "udp" : "tcp"; }

// What every admission (BIND, ATTACH, REJOIN) tells the member about the group it joined.
rp_member_reply MemberReply(const Group& group, uint64_t member_id, bool listening, bool ring = false) {
  rp_member_reply reply{};
  reply.flags = ring ? RP_MEMBER_RING : 0;
  reply.bound = group.address;
  reply.protocol = static_cast<uint8_t>(group.protocol);
  reply.v6only = group.v6only;
  reply.listening = listening ? 1 : 0;
  reply.group_id = group.id;
  reply.member_id = member_id;
  return reply;
}

uint64_t InodeOf(int fd) {
  struct stat st {};
  return fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_ino) : 0;
}

std::string Describe(const Link& link) {
  return absl::StrFormat("link %d (pid %d uid %d %s)", link.id, link.identity.creds.pid, link.identity.creds.uid,
                         link.command);
}

}  // namespace

ControlServer::ControlServer(EventLoop& loop, Registry& registry, Dispatcher& dispatcher, const ControlOptions& options)
    : loop_(loop),
      registry_(registry),
      dispatcher_(dispatcher),
      options_(options),
      membership_(registry, dispatcher),
      reply_budget_(options.reply_bytes_total) {
  admission_.udp_channel_bytes = options.udp_channel_bytes;
}

ControlServer::~ControlServer() { Shutdown(); }

absl::Status ControlServer::Start() {
  absl::StatusOr<UniqueFd> listener =
      control_socket_.Publish(options_.socket_path, options_.socket_mode, options_.takeover);
  if (!listener.ok()) return listener.status();
  listener_ = std::move(*listener);
  if (options_.udp_rings) membership_.SetRingDirectory(control_socket_.directory_fd());
  listener_watch_ = loop_.Add(listener_.get(), EPOLLIN, [this](uint32_t) { OnAcceptable(); });
  if (listener_watch_ == nullptr) return absl::InternalError("cannot watch the control socket");
  buffer_.resize(RP_MAX_RECORD);
  return absl::OkStatus();
}

void ControlServer::Shutdown() {
  if (!listener_) return;
  loop_.Remove(listener_watch_);
  listener_watch_ = nullptr;
  control_socket_.Unpublish();
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
    // Everything a decision will ask about the peer is read now, while the
    // process that connected is the one /proc describes.
    absl::StatusOr<PeerIdentity> identity = ReadPeerIdentity(fd);
    if (!identity.ok()) continue;
    uid_t uid = identity->creds.uid;
    int& uid_links = links_by_uid_[uid];
    if (uid_links >= options_.policy.LimitsFor(uid).links) {
      ++totals_.refusals;
      ++totals_.refusals_by_reason["limit-links"];
      LogLimited("limit-links", Severity::kWarning, "refusing a link from uid %d: it has %d open (limit)", uid, uid_links);
      continue;
    }
    int buffer = kLinkSendBuffer;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof(buffer));
    auto link = std::make_unique<Link>();
    link->id = ++last_link_id_;
    link->fd = std::move(owned);
    link->identity = std::move(*identity);
    link->command = CommandName(link->identity.creds.pid);
    Link* raw = link.get();
    link->watch = loop_.Add(fd, EPOLLIN | EPOLLRDHUP, [this, raw](uint32_t events) { OnLinkEvents(raw, events); });
    if (link->watch == nullptr) continue;
    ++uid_links;
    ++silent_links_by_uid_[uid];
    links_[link->id] = std::move(link);
    ++totals_.links_accepted;
  }
}

void ControlServer::OnLinkEvents(Link* link, uint32_t events) {
  if (link->closing) return;
  if (events & EPOLLOUT) {
    FlushOutbox(link);
    if (link->closing) return;
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
          if (link->closing) return;
          continue;
        case ReceiveStatus::kWouldBlock:
          return;
        case ReceiveStatus::kClosed:
        case ReceiveStatus::kFailed:
          CloseLink(link);
          return;
        case ReceiveStatus::kRejected: {
          ++totals_.rejected_messages;
          rp_header request = r.error.header_readable ? r.error.header : rp_header{};
          if (!r.error.header_readable) request.opcode = 0;
          Refuse(link, request, Refusal{r.error.error, "bad-message", "rejected message: " + r.error.reason});
          if (link->closing) return;
          continue;
        }
      }
    }
  }
}

void ControlServer::CloseLink(Link* link) {
  if (link->closing) return;
  link->closing = true;
  membership_.RemoveLink(link);
  loop_.Remove(link->watch);
  link->watch = nullptr;
  reply_budget_.Release(link->identity.creds.uid, link->outbox_bytes);
  link->outbox.clear();
  link->outbox_bytes = 0;
  uid_t uid = link->identity.creds.uid;
  if (--links_by_uid_[uid] <= 0) links_by_uid_.erase(uid);
  if (!link->requested && --silent_links_by_uid_[uid] <= 0) silent_links_by_uid_.erase(uid);
  parked_links_.erase(link->id);
  link->parked_join.reset();  // closes the fds it carried
  link->fd.reset();
  if (closed_links_.empty()) loop_.After(0, [this] { SweepClosedLinks(); });
  closed_links_.push_back(link->id);
}

void ControlServer::SweepClosedLinks() {
  for (uint64_t id : closed_links_) links_.erase(id);
  closed_links_.clear();
}

void ControlServer::Handle(Link* link, Record& record) {
  const rp_header& h = record.header;
  if (h.flags & RP_FLAG_REPLY) {
    Refuse(link, h, Refusal{EBADMSG, "bad-message", "a reply sent as a request"});
    return;
  }
  if (!link->requested) {
    link->requested = true;
    uid_t uid = link->identity.creds.uid;
    if (--silent_links_by_uid_[uid] <= 0) silent_links_by_uid_.erase(uid);
  }
  if (link->parked_join) {
    Refuse(link, h, Refusal{EBUSY, "bad-request", "this link's BIND has not been answered yet"});
    return;
  }
  switch (h.opcode) {
    case RP_OP_BIND:
    case RP_OP_REJOIN:
      HandleJoin(link, record);
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
    case RP_OP_TAKEOVER:
      HandleTakeover(link, record);
      return;
    default:
      Refuse(link, h,
             Refusal{EOPNOTSUPP, "unknown-opcode", absl::StrFormat("opcode %d is not a request this broker knows", h.opcode)});
      return;
  }
}

Member* ControlServer::ProvenMember(int claimed_member_end) const {
  const std::vector<Member*>* candidates = membership_.WithKey(InodeOf(claimed_member_end));
  if (candidates == nullptr) return nullptr;
  for (Member* m : *candidates) {
    if (ProvesChannel(claimed_member_end, m->channel.get())) return m;
  }
  return nullptr;
}

JoinFacts ControlServer::GatherJoinFacts(const Link& link, const JoinRequest& request, const Record& record,
                                         int64_t wait_deadline_ms) const {
  JoinFacts facts;
  facts.link_is_member = link.member != nullptr;
  facts.peer = link.identity;
  bool rejoin = request.kind == JoinRequest::Kind::kRejoin;
  int socket_fd = record.fds[rejoin ? 2 : 0].get();
  absl::StatusOr<SocketFacts> socket = InspectSocket(socket_fd);
  if (socket.ok()) {
    facts.socket = *socket;
    facts.uid_may_be_unmapped = UidMayBeUnmapped(socket->owner_uid) || UidMayBeUnmapped(link.identity.creds.uid);
    facts.netns = SocketNetworkNamespace(socket_fd, link.identity.creds.pid);
  } else {
    facts.socket_problem = std::string(socket.status().message());
  }
  if (rejoin) {
    int member_end = record.fds[0].get(), broker_end = record.fds[1].get();
    if (IsChannelSocket(member_end) && IsChannelSocket(broker_end)) {
      facts.rejoined_member = ProvenMember(member_end);
      facts.channel_proven = facts.rejoined_member != nullptr || ProvesChannel(member_end, broker_end);
    }
  }
  auto silent = silent_links_by_uid_.find(link.identity.creds.uid);
  facts.creator_may_be_coming = silent != silent_links_by_uid_.end() && silent->second > 0;
  facts.wait_over = wait_deadline_ms != 0 && EventLoop::NowMs() >= wait_deadline_ms;
  return facts;
}

void ControlServer::HandleJoin(Link* link, Record& record, int64_t wait_deadline_ms) {
  const rp_header h = record.header;
  JoinRequest request;
  if (std::optional<Refusal> malformed = ParseJoinRequest(record, &request)) {
    Refuse(link, h, *malformed);
    return;
  }
  JoinFacts facts = GatherJoinFacts(*link, request, record, wait_deadline_ms);
  JoinPlan plan = DecideJoin(request, facts, registry_, options_.policy, admission_);
  switch (plan.action) {
    case JoinPlan::Action::kRefuse:
      Refuse(link, h, plan.refusal);
      return;
    case JoinPlan::Action::kWait:
      Park(link, record, plan.domain, wait_deadline_ms);
      return;
    case JoinPlan::Action::kAddLink: {
      // Another process of a member that already rejoined (fork).
      Member* m = plan.member;
      rp_member_reply reply = MemberReply(*m->group, m->id, m->listening, m->ring != nullptr);
      Reply(link, h, 0, &reply, sizeof(reply));
      if (!link->closing) membership_.AddLink(m, link);
      return;
    }
    case JoinPlan::Action::kBindAndCreate:
      BindAndCreate(link, h, plan, request, std::move(record.fds[0]));
      return;
    case JoinPlan::Action::kAdmit:
      if (request.kind == JoinRequest::Kind::kRejoin) {
        AdmitRejoin(link, request, h, plan, record);
      } else {
        AdmitNew(link, h, plan, std::move(record.fds[0]), *facts.socket);
      }
      return;
  }
}

Group* ControlServer::AdmitNew(Link* link, const rp_header& request, const JoinPlan& plan, UniqueFd socket,
                             const SocketFacts& facts) {
  absl::StatusOr<Membership::NewMember> made = membership_.MakeMember(*link, plan.domain.protocol, plan.udp_channel_bytes);
  if (!made.ok()) {
    Refuse(link, request, Refusal{ENOMEM, "resources", std::string(made.status().message())});
    return nullptr;
  }
  bool new_group = plan.group == nullptr;
  Group* group = membership_.GroupFor(plan, std::move(socket), facts, Describe(*link).c_str());
  const MemberRing* ring = made->member->ring.get();
  rp_member_reply reply = MemberReply(*group, made->member->id, false, ring != nullptr);
  std::vector<int> fds = {made->member_end.get(), made->broker_copy.get(), group->real->fd.get()};
  if (ring != nullptr) fds.push_back(ring->fd());
  Reply(link, request, 0, &reply, sizeof(reply), fds);
  if (link->closing) {
    membership_.DropIfEmpty(group);
    return nullptr;
  }
  Member* m = membership_.Commit(group, std::move(made->member), link);
  Log(Severity::kInfo, "member %d (pid %d uid %d %s) joined group %d (%s %s)", m->id, m->creds.pid, m->creds.uid,
      m->command, group->id, ProtocolName(group->protocol), FormatAddress(group->address));
  if (new_group) RetryParkedJoins(plan.domain);
  return group;
}

void ControlServer::BindAndCreate(Link* link, const rp_header& request, JoinPlan plan, const JoinRequest& join,
                                  UniqueFd socket) {
  (void)join;
  if (plan.bind_address.family == AF_INET6 && !IsV4Mapped(plan.bind_address)) {
    int v6only = plan.bind_v6only ? 1 : 0;
    setsockopt(socket.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
  }
  bool widen = !plan.retire.empty();
  if (widen) {
    dispatcher_.ReleaseForWiderSocket(plan.retire);
    int one = 1;
    setsockopt(socket.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  }
  struct sockaddr_storage ss;
  socklen_t len = rp_address_to_sockaddr(&plan.bind_address, plan.bind_address.family, &ss);
  if (bind(socket.get(), reinterpret_cast<struct sockaddr*>(&ss), len) != 0) {
    int err = errno;
    if (widen) dispatcher_.RestoreNarrowerSockets(plan.retire);
    Refuse(link, request,
           Refusal{err, "bind-failed", absl::StrFormat("bind %s: %s", FormatAddress(plan.bind_address), strerror(err))});
    return;
  }
  absl::StatusOr<SocketFacts> bound = InspectSocket(socket.get());
  if (!bound.ok()) {
    socket.reset();
    if (widen) dispatcher_.RestoreNarrowerSockets(plan.retire);
    Refuse(link, request, Refusal{EIO, "bind-failed", std::string(bound.status().message())});
    return;
  }
  const char* why = widen ? ", taking over from the narrower socket(s) of its port"
                    : plan.also != nullptr ? " beside the socket of the port's other half"
                                           : " as the policy allows";
  Log(Severity::kInfo, "bound %s for %s%s", FormatAddress(bound->address), Describe(*link), why);
  if (plan.also == nullptr && !widen) {  // a policy bind: the group is at the address bound
    plan.group_address = bound->address;
    plan.group_v6only = bound->v6only;
  }
  Group* group = AdmitNew(link, request, plan, std::move(socket), *bound);
  if (!widen) return;
  if (group == nullptr) {
    dispatcher_.RestoreNarrowerSockets(plan.retire);  // the wider socket is closed already
    return;
  }
  dispatcher_.Supersede(plan.retire, group->real);
}

void ControlServer::AdmitRejoin(Link* link, const JoinRequest& request, const rp_header& header, const JoinPlan& plan,
                                Record& record) {
  absl::StatusOr<SocketFacts> facts = InspectSocket(record.fds[2].get());
  if (!facts.ok()) {  // inspected a moment ago; only a broken kernel gets here
    Refuse(link, header, Refusal{EIO, "bad-socket", std::string(facts.status().message())});
    return;
  }
  UniqueFd ring = record.fds.size() > 3 ? std::move(record.fds[3]) : UniqueFd();
  std::unique_ptr<Member> member = membership_.RejoiningMember(*link, request.protocol, std::move(record.fds[0]),
                                                              std::move(record.fds[1]), std::move(ring),
                                                              plan.udp_channel_bytes);
  bool new_group = plan.group == nullptr;
  Group* group = membership_.GroupFor(plan, std::move(record.fds[2]), *facts, Describe(*link).c_str());
  rp_member_reply reply = MemberReply(*group, member->id, request.listening, member->ring != nullptr);
  Reply(link, header, 0, &reply, sizeof(reply));
  if (link->closing) {
    membership_.DropIfEmpty(group);
    return;
  }
  Member* m = membership_.Commit(group, std::move(member), link);
  Log(Severity::kInfo, "member %d (pid %d %s) rejoined group %d (%s %s), formerly member %d", m->id, m->creds.pid,
      m->command, group->id, ProtocolName(group->protocol), FormatAddress(group->address), request.previous_id);
  if (group->protocol == RP_PROTO_TCP && request.listening) {
    for (RealSocket* real : {group->real, group->also}) {
      if (real == nullptr) continue;
      if (int err = dispatcher_.Listen(real, request.backlog); err != 0) {
        Log(Severity::kWarning, "listen on %s: %s", FormatAddress(real->address), strerror(err));
      }
    }
    dispatcher_.SetListening(m);
  }
  // A program that started while the members were coming back may be waiting.
  if (new_group) RetryParkedJoins(plan.domain);
}

void ControlServer::Park(Link* link, Record& record, const DomainKey& domain, int64_t wait_deadline_ms) {
  bool fresh = wait_deadline_ms == 0;
  link->parked_join = std::move(record);
  link->parked_domain = domain;
  link->parked_until_ms = fresh ? EventLoop::NowMs() + options_.join_wait_ms : wait_deadline_ms;
  parked_links_.insert(link->id);
  if (!fresh) return;
  ++totals_.joins_waited;
  Log(Severity::kDebug, "%s: no group on port %d yet; waiting for one", Describe(*link), domain.port);
  loop_.After(options_.join_wait_ms, [this, id = link->id] { RetryParkedJoin(id, true); });
}

void ControlServer::RetryParkedJoins(const DomainKey& domain) {
  std::vector<uint64_t> ids;
  for (uint64_t id : parked_links_) {
    auto it = links_.find(id);
    if (it != links_.end() && it->second->parked_domain == domain) ids.push_back(id);
  }
  if (ids.empty()) return;
  // After this event: the request that made the group is still being answered.
  loop_.After(0, [this, ids = std::move(ids)] {
    for (uint64_t id : ids) RetryParkedJoin(id, false);
  });
}

void ControlServer::RetryParkedJoin(uint64_t link_id, bool final) {
  auto it = links_.find(link_id);
  if (it == links_.end() || it->second->closing || !it->second->parked_join) return;
  Link* link = it->second.get();
  Record record = std::move(*link->parked_join);
  link->parked_join.reset();
  parked_links_.erase(link_id);
  // A final retry passes a deadline already gone, so it cannot wait again.
  HandleJoin(link, record, final ? 1 : link->parked_until_ms);
}

void ControlServer::HandleListen(Link* link, Record& record) {
  const rp_header& h = record.header;
  ListenPlan plan = DecideListen(record, link->member);
  if (plan.refusal) {
    Refuse(link, h, *plan.refusal);
    return;
  }
  Member* m = link->member;
  for (RealSocket* real : {m->group->real, m->group->also}) {
    if (real == nullptr) continue;
    if (int err = dispatcher_.Listen(real, plan.backlog); err != 0) {
      Refuse(link, h,
             Refusal{err, "listen-failed", absl::StrFormat("listen on %s: %s", FormatAddress(real->address), strerror(err))});
      return;
    }
  }
  dispatcher_.SetListening(m);
  Reply(link, h, 0, nullptr, 0);
}

void ControlServer::HandleAttach(Link* link, Record& record) {
  const rp_header& h = record.header;
  AttachFacts facts;
  facts.link_is_member = link->member != nullptr;
  facts.well_formed = record.payload.empty() && record.fds.size() == 1;
  if (facts.well_formed) {
    facts.is_socket = IsChannelSocket(record.fds[0].get());
    if (facts.is_socket) facts.proven_member = ProvenMember(record.fds[0].get());
  }
  AttachPlan plan = DecideAttach(facts);
  if (plan.refusal) {
    Refuse(link, h, *plan.refusal);
    return;
  }
  Member* m = plan.member;
  UniqueFd broker_copy(fcntl(m->channel.get(), F_DUPFD_CLOEXEC, 0));
  if (!broker_copy) {
    Refuse(link, h, Refusal{errno, "resources", "dup failed"});
    return;
  }
  rp_member_reply reply = MemberReply(*m->group, m->id, m->listening, m->ring != nullptr);
  std::vector<int> fds = {broker_copy.get(), m->group->real->fd.get()};
  if (m->ring != nullptr) fds.push_back(m->ring->fd());
  Reply(link, h, 0, &reply, sizeof(reply), fds);
  if (!link->closing) membership_.AddLink(m, link);
}

void ControlServer::HandleTakeover(Link* link, Record& record) {
  const rp_header& h = record.header;
  uid_t uid = link->identity.creds.uid;
  if (uid != 0 && uid != geteuid()) {
    Refuse(link, h, Refusal{EPERM, "bad-request", "only root or the broker's own uid may take over"});
    return;
  }
  if (!record.payload.empty() || !record.fds.empty()) {
    Refuse(link, h, Refusal{EBADMSG, "bad-message", "TAKEOVER takes no payload and no fds"});
    return;
  }
  Log(Severity::kInfo, "pid %d (%s) takes over; leaving %d link(s) to it", link->identity.creds.pid, link->command,
      links_.size() - 1);
  Reply(link, h, 0, nullptr, 0);
  handed_over_ = true;
  // Exit without touching members: their channels and group sockets stay
  // open in their own processes, and they rejoin the successor.
  loop_.Stop();
}

void ControlServer::HandleStatus(Link* link, Record& record) {
  const rp_header& h = record.header;
  if (record.payload.size() != sizeof(rp_status_request) || !record.fds.empty()) {
    Refuse(link, h, Refusal{EBADMSG, "bad-message", "STATUS needs an 8-byte payload and no fds"});
    return;
  }
  rp_status_request req;
  memcpy(&req, record.payload.data(), sizeof(req));
  if (req.format > RP_STATUS_PROMETHEUS) {
    Refuse(link, h, Refusal{EINVAL, "bad-request", absl::StrFormat("status format %d", req.format)});
    return;
  }
  if (link->status_records > 0) {
    Refuse(link, h, Refusal{EBUSY, "status-busy", "the previous status document has not been read yet"});
    return;
  }
  uid_t uid = link->identity.creds.uid;
  StatusViewer viewer{uid, uid == 0 || uid == geteuid()};
  std::string text = RenderStatus(StatusSources{registry_, dispatcher_.totals(), totals_, links_.size(), &reply_budget_},
                                  static_cast<rp_status_format>(req.format), viewer);
  size_t offset = 0;
  do {
    size_t n = std::min(kStatusChunk, text.size() - offset);
    rp_header reply = MakeReply(h, 0, 0);
    if (offset + n < text.size()) reply.flags |= RP_FLAG_MORE;
    std::string bytes(reinterpret_cast<const char*>(&reply), sizeof(reply));
    bytes.append(text, offset, n);
    if (!QueueRecord(link, std::move(bytes), true)) return;
    offset += n;
  } while (offset < text.size());
  FlushOutbox(link);
}

void ControlServer::Reply(Link* link, const rp_header& request, int status, const void* payload, size_t payload_size,
                          const std::vector<int>& fds) {
  if (link->closing) return;
  rp_header reply = MakeReply(request, status, static_cast<uint32_t>(payload_size));
  if (fds.empty()) {
    std::string bytes(reinterpret_cast<const char*>(&reply), sizeof(reply));
    if (payload_size > 0) bytes.append(static_cast<const char*>(payload), payload_size);
    if (QueueRecord(link, std::move(bytes), false)) FlushOutbox(link);
    return;
  }
  int err = link->outbox.empty() ? SendRecord(link->fd.get(), reply, payload, payload_size, nullptr, 0, fds, MSG_DONTWAIT)
                                 : EAGAIN;
  if (err != 0) {
    // A member that does not read the reply to its own request is broken.
    LogLimited("reply-failed", Severity::kWarning, "%s: cannot reply: %s; closing it", Describe(*link), strerror(err));
    CloseLink(link);
  }
}

void ControlServer::Refuse(Link* link, const rp_header& request, const Refusal& refusal) {
  ++totals_.refusals;
  ++totals_.refusals_by_reason[refusal.reason];
  LogLimited(refusal.reason, Severity::kInfo, "%s: %s: %s", Describe(*link), strerror(refusal.error), refusal.detail);
  Reply(link, request, refusal.error, nullptr, 0);
}

bool ControlServer::QueueRecord(Link* link, std::string bytes, bool status) {
  if (link->closing) return false;
  uid_t uid = link->identity.creds.uid;
  int64_t size = static_cast<int64_t>(bytes.size());
  if (!reply_budget_.Charge(uid, size, options_.policy.LimitsFor(uid).reply_bytes)) {
    ++totals_.links_closed_unread;
    LogLimited("reply-budget", Severity::kWarning,
               "%s holds %d bytes of unread replies (uid %d: %d, all links: %d); closing it", Describe(*link),
               link->outbox_bytes, uid, reply_budget_.HeldBy(uid), reply_budget_.total());
    CloseLink(link);
    return false;
  }
  link->outbox_bytes += size;
  if (status) ++link->status_records;
  link->outbox.push_back(Link::Outgoing{std::move(bytes), status});
  return true;
}

void ControlServer::FlushOutbox(Link* link) {
  if (link->closing) return;
  while (!link->outbox.empty()) {
    const Link::Outgoing& next = link->outbox.front();
    ssize_t n = send(link->fd.get(), next.bytes.data(), next.bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      CloseLink(link);
      return;
    }
    int64_t size = static_cast<int64_t>(next.bytes.size());
    link->outbox_bytes -= size;
    reply_budget_.Release(link->identity.creds.uid, size);
    if (next.status) --link->status_records;
    link->outbox.pop_front();
  }
  uint32_t want = EPOLLIN | EPOLLRDHUP | (link->outbox.empty() ? 0u : static_cast<uint32_t>(EPOLLOUT));
  loop_.Modify(link->watch, want);
}

}  // namespace reuseport::broker
