// Fuzzes the broker's control server end to end: one real Broker runs in a
// thread for the whole fuzzing session (LLVMFuzzerInitialize), and each input
// is a short conversation with it over real links, with real fds attached
// (including bound TCP and UDP sockets, so that BIND creates groups, and the
// channels and group sockets the broker hands out, so that ATTACH and REJOIN
// work). control_input.h documents how an input becomes records.
//
// A TAKEOVER the broker obeys stops it, by design (a successor has taken its
// socket): the conversation ends there and a new broker is started in its
// place, which also runs the old one's destructors (a leak there was found this
// way and fixed). REUSEPORT_FUZZ_TAKEOVER=0 skips such records.
//
// The two links are two local users: the second connects, and makes the fds
// its steps attach, as uid kSecondPeerUid (a per-thread effective uid, set
// with the raw system call so the broker's thread keeps root). So REJOIN and
// ATTACH run with channels, group sockets and bound sockets of either user,
// and of one user presented by the other.
//
// Invariants, each a trap when broken:
//   - every record gets its reply (checked against the request,
//     reply_check.h), or the broker closes the link; a client that waits for
//     each reply before sending more is never disconnected;
//   - no group is ever served by a socket of another uid than its owner's
//     (the REJOIN hijack of issue 10), checked in the status after each step;
//   - after the links close, the broker is alive (a STATUS on a fresh link is
//     answered within 2 s) and the process's fd count returns to what it was
//     before the input: groups a BIND made live as long as its links, so by
//     then they and their sockets are gone. The count may lag the close by a
//     loop iteration; it is probed at least 3 times over up to 2 s (a loaded host).
//
// Set REUSEPORT_FUZZ_LOG=info (or debug) to see the broker's log; the default,
// error, keeps the fuzzer fast.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "broker_in_thread.h"  // tests/support
#include "control_input.h"
#include "fd_kinds.h"
#include "fuzz_check.h"
#include "link_client.h"
#include "log.h"
#include "open_fds.h"
#include "policy.h"
#include "reuseport/address_codec.h"
#include "reuseport/protocol.h"
#include "wire.h"

using reuseport::broker::Record;
using reuseport::broker::UniqueFd;
using namespace reuseport::fuzz;

namespace {

// The port of the bound fd kinds. Fixed so that seeds can name it in BIND
// requests, and below the usual ephemeral range (32768-60999). If another
// process holds it the kinds fall back to a port the kernel picks.
constexpr uint16_t kGroupPort = 29311;
// Ports the policy lets this uid have bound by the broker (authbind-style), so
// that path runs too; unassigned, and below 1024 as that path requires.
constexpr char kAllowedPorts[] = "1021-1023";

using reuseport::testing::BrokerInThread;

BrokerInThread* g_broker = nullptr;  // replaced after a TAKEOVER; lives until exit
bool g_send_takeovers = true;        // REUSEPORT_FUZZ_TAKEOVER=0 turns off

BrokerInThread* StartBroker() {
  auto policy = reuseport::broker::Policy::Parse(absl::StrFormat("allow uid=%d port=%s\n", getuid(), kAllowedPorts));
  if (!policy.ok()) {
    fprintf(stderr, "control_fuzzer: policy: %s\n", policy.status().ToString().c_str());
    abort();
  }
  auto* broker = new BrokerInThread(std::move(*policy));
  if (!broker->status().ok()) {
    fprintf(stderr, "control_fuzzer: cannot start the broker: %s\n", broker->status().ToString().c_str());
    abort();
  }
  return broker;
}

int64_t NowMs() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string StatusRequest(uint32_t format) {
  rp_status_request req{format, 0};
  rp_header h = reuseport::broker::MakeHeader(RP_OP_STATUS, sizeof(req), 0x57A7);
  std::string bytes(reinterpret_cast<const char*>(&h), sizeof(h));
  bytes.append(reinterpret_cast<const char*>(&req), sizeof(req));
  return bytes;
}

// Asks for STATUS on a fresh link (a trap if unanswered within 2 s) and
// returns the number of open fds other than the probe link's two ends.
int ProbeOpenFds() {
  LinkClient probe;
  FUZZ_CHECK(probe.Connect(g_broker->socket_path()), absl::StrFormat("connect: %s", strerror(errno)));
  FUZZ_CHECK(probe.Send(StatusRequest(RP_STATUS_TEXT), {}), "the broker closed a fresh link");
  bool answered = false;
  probe.AwaitReplies([&answered](Record& reply) { answered = !(reply.header.flags & RP_FLAG_MORE); });
  FUZZ_CHECK(answered, "STATUS on a fresh link was not answered");
  // Our end and the broker's (open: it answered, and has not seen a close).
  return CountOpenFds() - 2;
}

// Traps unless the open-fd count comes back to `before` (taken the same way
// at the start of the input). Compared per input, not with a count from
// start-up, because the sanitizer runtime opens fds of its own between inputs
// (pipes to llvm-symbolizer when libFuzzer prints NEW_FUNC).
void CheckBrokerSettles(int before) {
  int64_t start = NowMs();
  int count = -1;
  for (int probes = 1;; ++probes) {
    count = ProbeOpenFds();
    if (count == before) return;
    if (probes >= 3 && NowMs() - start >= 2000) break;  // ends as soon as the count matches
    usleep(1000);
  }
  FUZZ_CHECK(count == before, absl::StrFormat("%d fds open before the input, %d after, with every link closed:\n%s",
                                              before, count, DescribeOpenFds()));
}

// What one input's conversation holds: its links, the fds the broker handed
// out, and the latest member reply (for traffic and the channel fd kinds).
struct Conversation {
  LinkClient links[2];
  std::vector<UniqueFd> held;
  int latest_channel = -1;        // in `held`
  int latest_channel_peer = -1;   // in `held`
  int latest_group_socket = -1;   // in `held`
  UniqueFd new_pair_other_end;    // of the latest kFdKindNewPair
  std::optional<rp_member_reply> latest_member;
  bool taken_over = false;        // the broker obeyed a TAKEOVER and stopped

  void OnReply(Record& reply) {
    if (reply.header.status != 0) return;
    uint16_t op = reply.header.opcode;
    if (op == RP_OP_TAKEOVER) taken_over = true;
    if (op != RP_OP_BIND && op != RP_OP_ATTACH && op != RP_OP_REJOIN) return;
    rp_member_reply m;
    memcpy(&m, reply.payload.data(), sizeof(m));  // size checked by CheckReply
    latest_member = m;
    // BIND: [channel, channel_peer, group socket]; ATTACH: [channel_peer,
    // group socket]; REJOIN: none. A UDP member's ring (RP_MEMBER_RING)
    // comes last.
    if (op == RP_OP_BIND) latest_channel = reply.fds[0].get();
    if (op != RP_OP_REJOIN) {
      size_t end = reply.fds.size() - ((m.flags & RP_MEMBER_RING) ? 1 : 0);
      latest_channel_peer = reply.fds[end - 2].get();
      latest_group_socket = reply.fds[end - 1].get();
    }
    for (UniqueFd& fd : reply.fds) held.push_back(std::move(fd));
  }

  UniqueFd Make(uint8_t kind) {
    auto dup_of = [](int fd) { return UniqueFd(fcntl(fd, F_DUPFD_CLOEXEC, 0)); };
    if (kind == kFdKindLatestChannel && latest_channel >= 0) return dup_of(latest_channel);
    if (kind == kFdKindLatestGroupSocket && latest_group_socket >= 0) return dup_of(latest_group_socket);
    if (kind == kFdKindLatestChannelPeer && latest_channel_peer >= 0) return dup_of(latest_channel_peer);
    if (kind == kFdKindNewPairOtherEnd && new_pair_other_end) return dup_of(new_pair_other_end.get());
    if (kind == kFdKindNewPair) {
      int sv[2];
      if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return UniqueFd();
      new_pair_other_end.reset(sv[1]);
      return UniqueFd(sv[0]);
    }
    if (kind >= kFdKindCount) return MakeFd(FdKind::kDevNull, 0);
    return MakeFd(FdKindFromByte(kind), kGroupPort);
  }

  // Connects to (TCP) or sends a datagram to (UDP) the latest member's group,
  // so the dispatcher hands something over and a leaving member has something
  // to give back.
  void SendTraffic(const std::string& datagram) {
    if (!latest_member) return;
    rp_address a = latest_member->bound;
    static const uint8_t kLoopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    bool wildcard = true;
    for (int i = 0; i < (a.family == AF_INET ? 4 : 16); ++i) wildcard = wildcard && a.addr[i] == 0;
    if (wildcard && a.family == AF_INET) {
      uint32_t lo = htonl(INADDR_LOOPBACK);
      memcpy(a.addr, &lo, 4);
    } else if (wildcard) {
      memcpy(a.addr, kLoopback6, 16);
    }
    struct sockaddr_storage ss;
    socklen_t len = rp_address_to_sockaddr(&a, a.family, &ss);
    if (len == 0) return;
    if (latest_member->protocol == RP_PROTO_TCP) {
      UniqueFd c(socket(a.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
      if (!c) return;
      // Closed with a reset: thousands of inputs a second must not fill the
      // host's ephemeral ports with TIME_WAIT.
      struct linger reset = {1, 0};
      setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
      connect(c.get(), reinterpret_cast<struct sockaddr*>(&ss), len);
      held.push_back(std::move(c));
    } else {
      UniqueFd c(socket(a.family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
      if (c) sendto(c.get(), datagram.data(), std::min<size_t>(datagram.size(), 512), MSG_DONTWAIT,
                    reinterpret_cast<struct sockaddr*>(&ss), len);
    }
  }
};

// For one step of the second link: this thread's effective uid and gid are
// the second user's, and so are the sockets it creates and the peer
// credentials of the link it connects. Raw system calls: glibc's setresuid
// would change every thread's, the broker's too.
class AsPeer {
 public:
  explicit AsPeer(int link) : active_(link == 1 && geteuid() == 0) {
    if (!active_) return;
    FUZZ_CHECK(syscall(SYS_setresgid, -1, kSecondPeerUid, -1) == 0 && syscall(SYS_setresuid, -1, kSecondPeerUid, -1) == 0,
               absl::StrFormat("cannot become uid %d: %s", kSecondPeerUid, strerror(errno)));
  }
  ~AsPeer() {
    if (!active_) return;
    FUZZ_CHECK(syscall(SYS_setresuid, -1, 0, -1) == 0 && syscall(SYS_setresgid, -1, 0, -1) == 0,
               absl::StrFormat("cannot become root again: %s", strerror(errno)));
  }
  AsPeer(const AsPeer&) = delete;
  AsPeer& operator=(const AsPeer&) = delete;

 private:
  bool active_;
};

// Traps if a group is served by a socket of another uid than its owner's.
void CheckGroupsServedByTheirOwners() {
  LinkClient probe;
  FUZZ_CHECK(probe.Connect(g_broker->socket_path()), absl::StrFormat("connect: %s", strerror(errno)));
  FUZZ_CHECK(probe.Send(StatusRequest(RP_STATUS_JSON), {}), "the broker closed a fresh link");
  std::string json;
  probe.AwaitReplies([&json](Record& reply) { json += reply.trailing; });
  for (size_t at = json.find("\"owner_uid\":"); at != std::string::npos; at = json.find("\"owner_uid\":", at + 1)) {
    size_t socket_at = json.find("\"socket_owner_uid\":", at);
    FUZZ_CHECK(socket_at != std::string::npos, "a group without socket_owner_uid in the status");
    long owner = strtol(json.c_str() + at + strlen("\"owner_uid\":"), nullptr, 10);
    long socket_owner = strtol(json.c_str() + socket_at + strlen("\"socket_owner_uid\":"), nullptr, 10);
    FUZZ_CHECK(owner == socket_owner,
               absl::StrFormat("a group of uid %d is served by a socket of uid %d:\n%s", owner, socket_owner, json));
  }
}

void RunStep(Conversation& c, const ControlStep& step) {
  AsPeer peer(step.link);
  LinkClient& link = c.links[step.link];
  auto on_reply = [&c](Record& reply) { c.OnReply(reply); };
  if (step.close_link) {
    link.AwaitReplies(on_reply);
    link.ExpectNoUnansweredReplies();
    link = LinkClient();
    return;
  }
  if (!link.connected()) {
    FUZZ_CHECK(link.Connect(g_broker->socket_path()), absl::StrFormat("connect: %s", strerror(errno)));
  }
  std::string bytes = step.record;
  if (step.oversize && bytes.size() <= RP_MAX_RECORD) bytes.resize(RP_MAX_RECORD + 1, '\0');
  for (int i = 0; i < step.repeat && !link.closed_by_broker(); ++i) {
    std::vector<UniqueFd> fds;
    for (uint8_t kind : step.fd_kinds) {
      UniqueFd fd = c.Make(kind);
      if (fd) fds.push_back(std::move(fd));
    }
    std::vector<int> raw;
    for (const UniqueFd& fd : fds) raw.push_back(fd.get());
    bool takeover = IsObeyedTakeover(DescribeRequest(bytes, raw.size()));
    if (takeover && !g_send_takeovers) continue;
    bool sent = link.Send(bytes, raw);
    // After a TAKEOVER it obeys the broker answers nothing more, so its reply
    // is read now, pipelined or not, and the conversation ends.
    if (!step.pipeline || (sent && takeover)) link.AwaitReplies(on_reply);
    if (c.taken_over) return;
    if (step.traffic) c.SendTraffic(step.record);
  }  // our copies of the attached fds close here; the broker has its own
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  signal(SIGPIPE, SIG_IGN);
  reuseport::broker::Severity severity = reuseport::broker::Severity::kError;
  if (const char* level = getenv("REUSEPORT_FUZZ_LOG")) reuseport::broker::ParseSeverity(level, &severity);
  reuseport::broker::SetLogSeverity(severity);

  const char* takeovers = getenv("REUSEPORT_FUZZ_TAKEOVER");
  g_send_takeovers = takeovers == nullptr || strcmp(takeovers, "0") != 0;
  g_broker = StartBroker();
  // On a normal exit (libFuzzer's -max_total_time, -runs) stop the broker
  // before static destructors run under its thread.
  atexit([] { delete g_broker; });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<ControlStep> steps = ParseControlInput(data, size);
  // The previous input's last probe link is already closed in the broker:
  // its close was queued before this probe's connect.
  const int before = ProbeOpenFds();
  bool taken_over = false;
  {
    Conversation c;
    for (const ControlStep& step : steps) {
      RunStep(c, step);
      if (c.taken_over) break;
      CheckGroupsServedByTheirOwners();
    }
    auto on_reply = [&c](Record& reply) { c.OnReply(reply); };
    for (LinkClient& link : c.links) {
      if (c.taken_over) break;  // unanswered requests stay so
      link.AwaitReplies(on_reply);
      link.ExpectNoUnansweredReplies();
    }
    taken_over = c.taken_over;
  }  // links and every fd the broker handed out close here
  if (taken_over) {
    // The successor: the stopped broker is destroyed (closing everything it
    // held) and a fresh one, with the same fds at rest, takes its place.
    delete g_broker;
    g_broker = StartBroker();
  }
  CheckBrokerSettles(before);
  return 0;
}
