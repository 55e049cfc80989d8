// The container sidecar arrangement without a container engine: a broker in
// network namespace A (the "pod" it serves) with its control socket in a
// directory shared with every "container", members of two uids joining from
// A, and members in another namespace B using the same socket path and the
// same port number. Each namespace's traffic must reach only its own members,
// and the broker must show two groups with the same port and different netns.
//
// The namespaces are made by this process (unshare(CLONE_NEWNET) on the test's
// thread) and held by fds: they vanish when the test process exits, however it
// exits; nothing is mounted under /run/netns. Children are started in a
// namespace by entering it on the starting thread just for the fork (a child
// inherits the forking thread's namespace), and clients run there the same way.
// Everything runs under reuseport-legacy-kernel --kernel 3.2, like the other
// integration tests.
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "host_features.h"
#include "json_value.h"
#include "load_client.h"
#include "member_paths.h"
#include "reuseport_fixture.h"
#include "status_macros.h"

namespace reuseport::testing {
namespace {

// A network namespace of this test, with loopback up. Move-only; the
// namespace lives while this object (or a process inside it) does.
class NetworkNamespace {
 public:
  static absl::StatusOr<NetworkNamespace> Create() {
    int original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (original < 0) return absl::ErrnoToStatus(errno, "open /proc/thread-self/ns/net");
    if (unshare(CLONE_NEWNET) != 0) {
      int err = errno;
      close(original);
      return absl::ErrnoToStatus(err, "unshare(CLONE_NEWNET)");
    }
    NetworkNamespace ns(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    absl::Status up = ns.fd_ >= 0 ? BringLoopbackUp() : absl::ErrnoToStatus(errno, "open the new namespace");
    // Back to where the thread was, whatever happened.
    if (setns(original, CLONE_NEWNET) != 0) abort();
    close(original);
    if (!up.ok()) return up;
    return ns;
  }

  NetworkNamespace(NetworkNamespace&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  NetworkNamespace& operator=(NetworkNamespace&&) = delete;
  ~NetworkNamespace() {
    if (fd_ >= 0) close(fd_);
  }

  int fd() const { return fd_; }
  // As the broker reports it: "<st_dev>:<st_ino>" of the namespace file.
  std::string Id() const {
    struct stat st {};
    if (fstat(fd_, &st) != 0) return "?";
    return absl::StrFormat("%d:%d", static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino));
  }

 private:
  explicit NetworkNamespace(int fd) : fd_(fd) {}

  // `ip link set lo up`, by ioctl, in the calling thread's namespace.
  static absl::Status BringLoopbackUp() {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return absl::ErrnoToStatus(errno, "socket");
    struct ifreq ifr {};
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    absl::Status result = absl::OkStatus();
    if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) {
      result = absl::ErrnoToStatus(errno, "SIOCGIFFLAGS lo");
    } else {
      ifr.ifr_flags |= IFF_UP;
      if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) result = absl::ErrnoToStatus(errno, "SIOCSIFFLAGS lo");
    }
    close(s);
    return result;
  }

  int fd_ = -1;
};

// The calling thread is in `ns` while this lives: processes it starts and
// sockets it opens belong there.
class InNamespace {
 public:
  explicit InNamespace(const NetworkNamespace& ns) : original_(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
    if (original_ < 0 || setns(ns.fd(), CLONE_NEWNET) != 0) {
      fprintf(stderr, "cannot enter a network namespace: %s\n", strerror(errno));
      abort();
    }
  }
  ~InNamespace() {
    if (setns(original_, CLONE_NEWNET) != 0) abort();  // the rest of the test would run in the wrong place
    close(original_);
  }
  InNamespace(const InNamespace&) = delete;
  InNamespace& operator=(const InNamespace&) = delete;

 private:
  int original_;
};

class NetnsSidecarTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REUSEPORT_SKIP_IF_UNAVAILABLE(RootUnavailable("makes network namespaces and runs members as nobody"));
    // A container's seccomp profile or a kernel without CONFIG_NET_NS says no.
    REUSEPORT_SKIP_IF_UNAVAILABLE(NetworkNamespacesUnavailable());
    absl::StatusOr<NetworkNamespace> a = NetworkNamespace::Create();
    ASSERT_TRUE(a.ok()) << a.status();
    pod_a_.emplace(std::move(*a));
    absl::StatusOr<NetworkNamespace> b = NetworkNamespace::Create();
    ASSERT_TRUE(b.ok()) << b.status();
    pod_b_.emplace(std::move(*b));
    ASSERT_NE(pod_a_->Id(), pod_b_->Id());

    // The sidecar: the broker runs inside A; its socket is in the shared dir.
    InNamespace in_a(*pod_a_);
    // Telling namespaces apart needs /proc/PID/ns inodes that name them
    // (Linux 3.8): the broker finds its kernel's release with uname(2), which
    // the runner answers, so this broker runs as on 3.8. On 3.2 it takes
    // every member for one of its own namespace (README, Limits).
    BrokerOptions options;
    options.kernel = "3.8";
    absl::StatusOr<BrokerProcess> broker = BrokerProcess::Start(dir_.path(), options);
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_.emplace(std::move(*broker));
  }

  // A tcp_member (or udp_member) in `ns`, as `uid`, through the shared socket.
  MemberOptions Member(const std::string& program, const std::string& id, uint16_t port, uid_t uid = 0) {
    MemberOptions m = ShimmedMember({program, "--host", "127.0.0.1", "--port", absl::StrCat(port)}, id, dir_.path(), *broker_);
    if (uid != 0) {
      m.process.uid = uid;
      m.process.gid = uid;
    }
    return m;
  }

  std::vector<MemberProcess> StartIn(const NetworkNamespace& ns, std::vector<MemberOptions> options) {
    InNamespace in(ns);
    std::vector<MemberProcess> started;
    for (MemberOptions& o : options) {
      absl::StatusOr<MemberProcess> m = StartMember(std::move(o));
      if (!m.ok()) {
        ADD_FAILURE() << m.status() << "\nbroker log:\n" << broker_->process().ReadStdout();
        return {};
      }
      started.push_back(std::move(*m));
    }
    return started;
  }

  // `reuseportctl status --json`, run by the build's reuseportctl from the
  // test's own namespace: only the socket path connects it to the broker.
  absl::StatusOr<ctl::JsonValue> CtlStatus() {
    SubprocessOptions p;
    p.argv = {CtlPath(), "--socket", broker_->socket_path(), "status", "--json"};
    absl::StatusOr<Subprocess> ctl = Subprocess::Start(p);
    if (!ctl.ok()) return ctl.status();
    absl::StatusOr<int> status = ctl->Wait(absl::Seconds(10));
    if (!status.ok()) return status.status();
    if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
      return absl::InternalError(absl::StrCat("reuseportctl: ", DescribeWaitStatus(*status), ": ", ctl->ReadStderr()));
    }
    return ctl::ParseJson(ctl->ReadStdout());
  }

  static std::set<std::string> Ids(const std::vector<MemberProcess>& members) {
    std::set<std::string> ids;
    for (const MemberProcess& m : members) ids.insert(m.id);
    return ids;
  }

  static std::set<std::string> Responders(const std::map<std::string, int>& per_member) {
    std::set<std::string> ids;
    for (const auto& [id, n] : per_member) ids.insert(id);
    return ids;
  }

  // The groups of the status document by "<protocol> <port> <netns>".
  static std::map<std::string, const ctl::JsonValue*> GroupsByKey(const ctl::JsonValue& doc) {
    std::map<std::string, const ctl::JsonValue*> groups;
    for (const ctl::JsonValue& g : doc["groups"].array) {
      groups[absl::StrCat(g["protocol"].AsString(), " ", static_cast<int>(g["port"].AsNumber()), " ", g["netns"].AsString())] = &g;
    }
    return groups;
  }

  TempDir dir_ = MakeTestDir();  // shared by every "container": the emptyDir volume
  std::optional<NetworkNamespace> pod_a_;
  std::optional<NetworkNamespace> pod_b_;
  std::optional<BrokerProcess> broker_;
};

TEST_F(NetnsSidecarTest, TcpGroupsOnTheSamePortInTwoNamespacesStaySeparate) {
  // A: root's group on a port of the kernel's choosing, nobody's group on
  // another (same-uid sharing is the rule, so two uids need two ports).
  std::vector<MemberProcess> a_root = StartIn(*pod_a_, {Member(TcpMemberPath(), "a-root0", 0)});
  ASSERT_EQ(a_root.size(), 1u);
  const uint16_t port = a_root[0].port;
  std::vector<MemberProcess> more = StartIn(*pod_a_, {Member(TcpMemberPath(), "a-root1", port)});
  ASSERT_EQ(more.size(), 1u);
  a_root.push_back(std::move(more[0]));
  std::vector<MemberProcess> a_nobody = StartIn(*pod_a_, {Member(TcpMemberPath(), "a-nobody0", 0, 65534)});
  ASSERT_EQ(a_nobody.size(), 1u);
  const uint16_t nobody_port = a_nobody[0].port;
  ASSERT_NE(nobody_port, port);
  more = StartIn(*pod_a_, {Member(TcpMemberPath(), "a-nobody1", nobody_port, 65534)});
  ASSERT_EQ(more.size(), 1u);
  a_nobody.push_back(std::move(more[0]));
  // B: the same socket path, the same port number.
  std::vector<MemberProcess> b_root =
      StartIn(*pod_b_, {Member(TcpMemberPath(), "b-root0", port), Member(TcpMemberPath(), "b-root1", port)});
  ASSERT_EQ(b_root.size(), 2u);
  ASSERT_OK(broker_->WaitForMembers(6)) << broker_->process().ReadStdout();

  // The broker's view, through reuseportctl: two groups on one port, told
  // apart by their namespaces, and nobody's group in A.
  absl::StatusOr<ctl::JsonValue> status = CtlStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  std::map<std::string, const ctl::JsonValue*> groups = GroupsByKey(*status);
  ASSERT_EQ(groups.size(), 3u) << "groups: " << [&] {
    std::string keys;
    for (const auto& [k, g] : groups) absl::StrAppend(&keys, "[", k, "] ");
    return keys;
  }();
  const std::string key_a = absl::StrCat("tcp ", port, " ", pod_a_->Id());
  const std::string key_b = absl::StrCat("tcp ", port, " ", pod_b_->Id());
  const std::string key_nobody = absl::StrCat("tcp ", nobody_port, " ", pod_a_->Id());
  ASSERT_TRUE(groups.contains(key_a)) << key_a;
  ASSERT_TRUE(groups.contains(key_b)) << key_b;
  ASSERT_TRUE(groups.contains(key_nobody)) << key_nobody;
  EXPECT_NE((*groups[key_a])["netns"].AsString(), (*groups[key_b])["netns"].AsString());
  EXPECT_EQ((*groups[key_a])["members"].array.size(), 2u);
  EXPECT_EQ((*groups[key_b])["members"].array.size(), 2u);
  EXPECT_EQ((*groups[key_nobody])["owner_uid"].AsNumber(), 65534);
  for (const ctl::JsonValue& m : (*groups[key_nobody])["members"].array) EXPECT_EQ(m["uid"].AsNumber(), 65534);

  // Load inside each namespace reaches only that namespace's members.
  auto load_in = [&](const NetworkNamespace& ns, uint16_t p, int connections) {
    InNamespace in(ns);
    TcpLoadOptions load;
    load.port = p;
    load.connections = connections;
    load.connection_timeout = absl::Seconds(5);
    return RunTcpLoad(load);
  };
  TcpLoadResult in_a = load_in(*pod_a_, port, 400);
  TcpLoadResult in_a_nobody = load_in(*pod_a_, nobody_port, 200);
  TcpLoadResult in_b = load_in(*pod_b_, port, 300);
  EXPECT_EQ(in_a.successes, 400) << in_a.Summary();
  EXPECT_EQ(in_a_nobody.successes, 200) << in_a_nobody.Summary();
  EXPECT_EQ(in_b.successes, 300) << in_b.Summary();
  EXPECT_EQ(Responders(in_a.per_member), Ids(a_root)) << DescribeShares(in_a.per_member, in_a.successes);
  EXPECT_EQ(Responders(in_a_nobody.per_member), Ids(a_nobody)) << DescribeShares(in_a_nobody.per_member, in_a_nobody.successes);
  EXPECT_EQ(Responders(in_b.per_member), Ids(b_root)) << DescribeShares(in_b.per_member, in_b.successes);
  // nobody's port exists only in A: in B nothing listens there.
  TcpLoadResult b_nobody_port = load_in(*pod_b_, nobody_port, 20);
  EXPECT_EQ(b_nobody_port.successes, 0);
  EXPECT_EQ(b_nobody_port.refused, 20) << b_nobody_port.Summary();

  // Every connection was served exactly once, by the group of its namespace.
  std::vector<MemberProcess> all;
  for (auto* group : {&a_root, &a_nobody, &b_root}) {
    for (MemberProcess& m : *group) all.push_back(std::move(m));
  }
  absl::StatusOr<std::map<std::string, std::vector<std::string>>> logs = ReadMemberLogs(all);
  ASSERT_TRUE(logs.ok());
  for (const TcpLoadResult* r : {&in_a, &in_a_nobody, &in_b}) EXPECT_EQ(CheckServedExactlyOnce(r->tokens, *logs), "");

  absl::StatusOr<ctl::JsonValue> after = CtlStatus();
  ASSERT_TRUE(after.ok()) << after.status();
  groups = GroupsByKey(*after);
  EXPECT_EQ((*groups[key_a])["accepted"].AsNumber(), 400);
  EXPECT_EQ((*groups[key_b])["accepted"].AsNumber(), 300);
  EXPECT_EQ((*groups[key_nobody])["accepted"].AsNumber(), 200);
}

TEST_F(NetnsSidecarTest, UdpGroupsOnTheSamePortInTwoNamespacesStaySeparate) {
  std::vector<MemberProcess> a = StartIn(*pod_a_, {Member(UdpMemberPath(), "a-udp0", 0)});
  ASSERT_EQ(a.size(), 1u);
  const uint16_t port = a[0].port;
  std::vector<MemberProcess> more = StartIn(*pod_a_, {Member(UdpMemberPath(), "a-udp1", port)});
  ASSERT_EQ(more.size(), 1u);
  a.push_back(std::move(more[0]));
  std::vector<MemberProcess> b =
      StartIn(*pod_b_, {Member(UdpMemberPath(), "b-udp0", port), Member(UdpMemberPath(), "b-udp1", port)});
  ASSERT_EQ(b.size(), 2u);
  ASSERT_OK(broker_->WaitForMembers(4)) << broker_->process().ReadStdout();

  auto flows_in = [&](const NetworkNamespace& ns) {
    InNamespace in(ns);
    UdpFlowOptions flows;
    flows.port = port;
    flows.flows = 60;
    flows.datagrams_per_flow = 4;
    flows.retries = 3;
    return RunUdpFlows(flows);
  };
  UdpFlowResult in_a = flows_in(*pod_a_);
  UdpFlowResult in_b = flows_in(*pod_b_);
  EXPECT_EQ(in_a.lost, 0) << in_a.Summary();
  EXPECT_EQ(in_b.lost, 0) << in_b.Summary();
  EXPECT_EQ(in_a.source_mismatches + in_b.source_mismatches, 0) << "replies leave from the group's own socket";
  EXPECT_EQ(Responders(in_a.per_member), Ids(a)) << in_a.Summary();
  EXPECT_EQ(Responders(in_b.per_member), Ids(b)) << in_b.Summary();
  EXPECT_EQ(in_a.flows_with_several_responders() + in_b.flows_with_several_responders(), 0);

  absl::StatusOr<ctl::JsonValue> status = CtlStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  std::map<std::string, const ctl::JsonValue*> groups = GroupsByKey(*status);
  ASSERT_EQ(groups.size(), 2u);
  const std::string key_a = absl::StrCat("udp ", port, " ", pod_a_->Id());
  const std::string key_b = absl::StrCat("udp ", port, " ", pod_b_->Id());
  ASSERT_TRUE(groups.contains(key_a)) << key_a;
  ASSERT_TRUE(groups.contains(key_b)) << key_b;
  EXPECT_EQ((*groups[key_a])["datagrams"].AsNumber(), in_a.datagrams_sent);
  EXPECT_EQ((*groups[key_b])["datagrams"].AsNumber(), in_b.datagrams_sent);
}

// A broker in a user namespace of its own (a rootless container's, which maps
// only its root) sees every host uid it does not map as the overflow uid. Two
// different users would then look alike and could share a port; the broker
// must refuse them instead. The broker gets a network namespace too, so that
// it can tell which namespace a socket is in (SIOCGSKNS wants CAP_NET_ADMIN
// there); the members enter that namespace.
TEST(UnmappedUidTest, UsersTheBrokersNamespaceDoesNotMapAreRefusedNotMerged) {
  REUSEPORT_SKIP_IF_UNAVAILABLE(RootUnavailable("runs members as uids 1000 and 1001"));
  // user.max_user_namespaces=0, a seccomp profile or a kernel without
  // CONFIG_USER_NS says no.
  REUSEPORT_SKIP_IF_UNAVAILABLE(UserNamespacesUnavailable());
  // The members enter the broker's network namespace from ours (setns), which
  // takes what making one does.
  REUSEPORT_SKIP_IF_UNAVAILABLE(NetworkNamespacesUnavailable());
  REUSEPORT_REQUIRE_PROGRAM("unshare", "util-linux");
  REUSEPORT_REQUIRE_PROGRAM("ip", "iproute2");
  TempDir dir = MakeTestDir();
  BrokerOptions options;
  // Not under the 3.2 runner: user namespaces that can hold a broker came with
  // 3.8, and without SIOCGSKNS (4.9) a broker in one cannot read host
  // processes' /proc/PID/ns/net, so it refuses them as "unknown-netns" before
  // the uid rule is reached.
  options.legacy_kernel = false;
  options.wrapper = {"unshare", "--user", "--net", "--map-root-user", "--", "sh", "-c",
                     "ip link set lo up && exec \"$0\" \"$@\""};
  absl::StatusOr<BrokerProcess> broker = BrokerProcess::Start(dir.path(), options);
  ASSERT_TRUE(broker.ok()) << broker.status();
  int broker_netns = open(absl::StrCat("/proc/", broker->process().pid(), "/ns/net").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(broker_netns, 0);
  int own_netns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(own_netns, 0);

  // Two users, neither mapped in the broker's namespace, on one port (any
  // port: the namespace is new). Shared through REUSEPORT_PORTS rather than
  // SO_REUSEPORT, so that the first, refused by the broker, keeps serving
  // unshared as on an old kernel and holds the port for the second to try.
  const uint16_t port = 18080;
  std::vector<absl::StatusOr<MemberProcess>> members;
  ASSERT_EQ(setns(broker_netns, CLONE_NEWNET), 0) << strerror(errno);
  for (uid_t uid : {1000u, 1001u}) {
    MemberOptions m = ShimmedMember({TcpMemberPath(), "--host", "127.0.0.1", "--port", absl::StrCat(port),
                                     "--no-reuseport"},
                                    absl::StrCat("uid", uid), dir.path(), *broker, "emulate");
    m.process.env.push_back({"REUSEPORT_PORTS", absl::StrCat(port)});
    m.process.uid = uid;
    m.process.gid = uid;
    m.ready_timeout = absl::Seconds(5);
    members.push_back(StartMember(std::move(m)));
  }
  ASSERT_EQ(setns(own_netns, CLONE_NEWNET), 0);
  close(own_netns);
  close(broker_netns);

  // The first user's bind was the kernel's (the port was free); the broker
  // refused to take its socket, so it serves alone, unshared. The second user
  // is refused: it must not join the first one's port.
  ASSERT_TRUE(members[0].ok()) << members[0].status();
  EXPECT_FALSE(members[1].ok()) << "a second unmapped user was let onto the port";
  absl::StatusOr<ctl::JsonValue> status = broker->Status();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ((*status)["groups"].array.size(), 0u) << broker->process().ReadStdout();
  std::string log = broker->process().ReadStdout();
  EXPECT_NE(log.find("is the overflow uid"), std::string::npos) << log;
}

}  // namespace
}  // namespace reuseport::testing
