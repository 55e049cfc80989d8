// The broker's own costs: memory with many groups and members, how long a
// member takes to join, and CPU per connection as groups and members grow.
#include <stdio.h>
#include <unistd.h>

#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench_clients.h"
#include "bench_suite.h"
#include "raw_member.h"

namespace reuseport::bench {

namespace {

// Groups and members of a broker, from its status.
bool CountGroups(const Broker& broker, int* groups, int* members) {
  absl::StatusOr<ctl::JsonValue> st = broker.Status();
  if (!st.ok()) return false;
  *groups = static_cast<int>((*st)["groups"].array.size());
  *members = 0;
  for (const ctl::JsonValue& g : (*st)["groups"].array) *members += static_cast<int>(g["members"].array.size());
  return true;
}

// Idle groups with one listening member each, held by raw links.
bool AddIdleGroups(const Broker& broker, int count, std::vector<RawMember>* holders, int* failures) {
  for (int i = 0; i < count; ++i) {
    RawMember m;
    uint16_t port = 0;
    if (!m.Connect(broker.socket()) || m.CreateTcpGroup(&port) != 0 || m.Listen(128) != 0) {
      if (++*failures > 20) return false;
      continue;
    }
    holders->push_back(std::move(m));
  }
  return true;
}

}  // namespace

bool BenchSuite::BrokerScale() {
  // A broker of its own, with limits raised for the test (the defaults allow
  // 256 groups and 1,024 members per uid).
  std::string policy = dir_->File("bench-policy.conf");
  std::ofstream(policy) << "limit groups=20000 members=40000 links=40000 queued=65536\n";
  Broker broker;
  progress_.Step("starting a broker");
  if (!broker.Start(*dir_, "scale", o_.kernel, {"--policy", policy})) {
    fprintf(stderr, "\nbench: the scale broker did not start (see %s)\n", broker.log_path().c_str());
    return false;
  }
  JsonObject section;

  // 1. Memory: G groups of M members, every member listening.
  long rss_idle = ResidentKiB(broker.pid());
  std::vector<RawMember> members;
  members.reserve(static_cast<size_t>(o_.groups * o_.members_per_group));
  std::vector<uint16_t> ports;
  int failures = 0;
  double t0 = Now();
  for (int g = 0; g < o_.groups; ++g) {
    if (g % 100 == 0) {
      progress_.Step(absl::StrFormat("memory: creating group %d of %d with %d members each", g + 1, o_.groups,
                                     o_.members_per_group));
    }
    RawMember creator;
    uint16_t port = 0;
    int st = creator.Connect(broker.socket()) ? creator.CreateTcpGroup(&port) : -1;
    if (st == 0) st = creator.Listen(128);
    if (st != 0) {
      fprintf(stderr, "\nbench: creating group %d: status %d\n", g, st);
      if (++failures > 20) return false;
      continue;
    }
    members.push_back(std::move(creator));
    ports.push_back(port);
    for (int m = 1; m < o_.members_per_group; ++m) {
      RawMember joiner;
      st = joiner.Connect(broker.socket()) ? joiner.JoinTcpGroup(port) : -1;
      if (st == 0) st = joiner.Listen(128);
      if (st != 0) {
        fprintf(stderr, "\nbench: joining group %d: status %d\n", g, st);
        if (++failures > 20) return false;
        continue;
      }
      members.push_back(std::move(joiner));
    }
  }
  double setup_seconds = Now() - t0;
  usleep(200 * 1000);
  long rss_full = ResidentKiB(broker.pid());
  int groups_seen = 0, members_seen = 0;
  CountGroups(broker, &groups_seen, &members_seen);
  // Building a status document of 1,000 groups takes the broker some memory
  // of its own (kept by its allocator): measured apart from the joins.
  long rss_after_status = ResidentKiB(broker.pid());

  // 2. Join latency with all those groups present: a member's BIND and LISTEN
  // round trips (what bind() + listen() cost a program), then it leaves.
  std::vector<double> join_us, connect_us;
  int join_failures = 0;
  for (int i = 0; i < o_.join_samples && !ports.empty(); ++i) {
    if (i % 100 == 0) progress_.Step(absl::StrFormat("join latency with %d groups: %d of %d", groups_seen, i,
                                                     o_.join_samples));
    RawMember m;
    double a = Now();
    if (!m.Connect(broker.socket())) {
      ++join_failures;
      continue;
    }
    double b = Now();
    int st = m.JoinTcpGroup(ports[static_cast<size_t>(i) % ports.size()]);
    if (st == 0) st = m.Listen(128);
    double c = Now();
    if (st != 0) {
      ++join_failures;
      continue;
    }
    connect_us.push_back((b - a) * 1e6);
    join_us.push_back((c - b) * 1e6);
  }
  usleep(100 * 1000);
  long rss_after_joins = ResidentKiB(broker.pid());
  Spread join = Summarize(join_us);
  double p50 = Percentile(join_us, 0.5), p99 = Percentile(join_us, 0.99), worst = Percentile(join_us, 1.0);

  printf("\n== Broker memory and joins (a broker under the legacy-kernel runner, members made over the protocol)\n");
  printf("   VmRSS idle %s KiB; with %d groups and %d members (all listening) %s KiB (%.1f MiB), %.2f KiB per member;"
         " set up in %.1f s\n",
         FormatNumber(rss_idle, 0).c_str(), groups_seen, members_seen, FormatNumber(rss_full, 0).c_str(),
         rss_full / 1024.0, members_seen ? (rss_full - rss_idle) / static_cast<double>(members_seen) : 0.0,
         setup_seconds);
  printf("   join (BIND + LISTEN round trips) with %d groups: p50 %.0f us, p99 %.0f us, worst %.0f us over %zu joins"
         " (%d failed); connect %.0f us p50\n   VmRSS after a status request %s KiB, after the joins and leaves %s KiB\n",
         groups_seen, p50, p99, worst, join_us.size(), join_failures, Percentile(connect_us, 0.5),
         FormatNumber(rss_after_status, 0).c_str(), FormatNumber(rss_after_joins, 0).c_str());
  JsonObject mem;
  mem.Integer("rss_idle_kib", rss_idle).Integer("rss_kib", rss_full).Integer("groups", groups_seen)
      .Integer("members", members_seen).Number("setup_seconds", setup_seconds).Integer("failures", failures)
      .Integer("rss_after_status_kib", rss_after_status).Integer("rss_after_joins_kib", rss_after_joins);
  section.Raw("memory", mem.str());
  JsonObject jl;
  jl.Integer("samples", static_cast<int64_t>(join_us.size())).Integer("failed", join_failures).Number("p50_us", p50)
      .Number("p99_us", p99).Number("max_us", worst).Number("mean_us", join.n ? [&] {
        double s = 0;
        for (double v : join_us) s += v;
        return s / join.n;
      }() : 0).Number("connect_p50_us", Percentile(connect_us, 0.5));
  section.Raw("join_latency", jl.str());
  Spread rss_spread;
  rss_spread.n = 1;
  rss_spread.median = rss_spread.min = rss_spread.max = rss_full / 1024.0;
  report_.AtMost("broker.rss_mib",
                 absl::StrFormat("Broker VmRSS with %d groups and %d members", groups_seen, members_seen), rss_spread,
                 16, 1, "MiB");
  Spread p99_spread;
  p99_spread.n = 1;
  p99_spread.median = p99_spread.min = p99_spread.max = p99 / 1000;
  report_.AtMost("broker.join_p99_ms", absl::StrFormat("Join (BIND+LISTEN) p99 with %d groups", groups_seen),
                 p99_spread, 1, 3, "ms");
  report_.Info("broker.join_p50_us", "Join (BIND+LISTEN) p50", absl::StrFormat("%.0f us", p50), p50);

  members.clear();
  broker.Stop();

  // 3. Broker CPU per connection as the groups and members grow. One broker
  // per number of groups (the measured group has real members, the others are
  // idle, held by raw links) and one with a group per number of members; all
  // run at once and the load alternates between them slice by slice, so drift
  // of the machine hits every point alike. The figure of each point is its
  // cheapest slice (noise from elsewhere only ever adds CPU time), with the
  // median beside it.
  struct Point {
    std::string label;
    int value = 0;
    Broker* broker = nullptr;
    std::unique_ptr<WorkerSet> workers;
    std::vector<double> slices;
  };
  std::vector<std::unique_ptr<Broker>> brokers;
  std::vector<RawMember> idle;
  std::vector<Point> by_groups, by_members;
  int idle_failures = 0;
  for (int g : o_.scale_groups) {
    progress_.Step(absl::StrFormat("CPU per connection: a broker with %d groups", g));
    brokers.push_back(std::make_unique<Broker>());
    if (!brokers.back()->Start(*dir_, absl::StrCat("groups-", g), o_.kernel, {"--policy", policy})) return false;
    if (!AddIdleGroups(*brokers.back(), g - 1, &idle, &idle_failures)) return false;
    Point p;
    p.label = absl::StrCat(g, " groups");
    p.value = g;
    p.broker = brokers.back().get();
    p.workers = std::make_unique<WorkerSet>();
    if (!p.workers->Start(Workers(ServerKind::kTcpShort, ShareMode::kEmulated, o_.workers, p.broker))) return false;
    by_groups.push_back(std::move(p));
  }
  brokers.push_back(std::make_unique<Broker>());
  if (!brokers.back()->Start(*dir_, "members", o_.kernel, {"--policy", policy})) return false;
  for (int m : o_.scale_members) {
    progress_.Step(absl::StrFormat("CPU per connection: starting a group of %d emulated members", m));
    Point p;
    p.label = absl::StrCat(m, " members");
    p.value = m;
    p.broker = brokers.back().get();
    p.workers = std::make_unique<WorkerSet>();
    if (!p.workers->Start(Workers(ServerKind::kTcpShort, ShareMode::kEmulated, m, p.broker))) return false;
    by_members.push_back(std::move(p));
  }
  std::vector<Point*> points;
  for (Point& p : by_groups) points.push_back(&p);
  for (Point& p : by_members) points.push_back(&p);
  for (Point* p : points) RunTcpClosedLoop(Endpoint::Loopback(p->workers->port()), o_.concurrency, 0.1);
  for (int k = 0; k < o_.scale_slices; ++k) {
    progress_.Step(absl::StrFormat("CPU per connection by groups and members, alternating, slice %d/%d", k + 1,
                                   o_.scale_slices));
    for (size_t j = 0; j < points.size(); ++j) {
      Point* p = points[(j + static_cast<size_t>(k)) % points.size()];
      int64_t b0 = CpuNanoseconds(p->broker->pid(), false);
      TcpRun run = RunTcpClosedLoop(Endpoint::Loopback(p->workers->port()), o_.concurrency, o_.slice_seconds);
      int64_t b1 = CpuNanoseconds(p->broker->pid(), false);
      p->slices.push_back(static_cast<double>(b1 - b0) / 1e3 / static_cast<double>(std::max<uint64_t>(run.completed, 1)));
    }
  }
  auto report_points = [&](const std::vector<Point>& pts, const std::string& key, const std::string& what) {
    JsonObject j;
    std::vector<double> best, median;
    std::string listing;
    for (const Point& p : pts) {
      Spread s = Summarize(p.slices);
      std::vector<uint64_t> counts = p.workers->Counts();
      std::vector<double> c(counts.begin(), counts.end());
      JsonObject one;
      one.SpreadOf("broker_cpu_us_per_connection", s).Number("fairness_max_over_min", MaxOverMin(c));
      j.Raw(absl::StrCat(p.value), one.str());
      best.push_back(s.min);
      median.push_back(s.median);
      absl::StrAppend(&listing, listing.empty() ? "" : ", ", p.value, ": ", FormatNumber(s.min, 2));
      printf("   broker CPU per connection with %-12s best %s us, median %s (%s..%s) us; fairness max/min %.2f\n",
             p.label.c_str(), FormatNumber(s.min, 2).c_str(), FormatNumber(s.median, 2).c_str(),
             FormatNumber(s.min, 2).c_str(), FormatNumber(s.max, 2).c_str(), MaxOverMin(c));
    }
    section.Raw(key, j.str());
    Spread b = Summarize(best), m = Summarize(median);
    double flat = b.min > 0 ? b.max / b.min : 0;
    double flat_median = m.min > 0 ? m.max / m.min : 0;
    report_.Judged(absl::StrCat("broker.cpu_flat_", key), absl::StrCat("Broker CPU/conn flat ", what),
                   absl::StrFormat("%.2f (best us: %s; medians give %.2f)", flat, listing, flat_median), flat,
                   "max/min <= 1.25", flat > 0 && flat <= 1.25, absl::StrFormat("%.2f", flat));
  };
  printf("\n   broker CPU per connection (%d slices of %.2g s per point, alternating between points)\n",
         o_.scale_slices, o_.slice_seconds);
  report_points(by_groups, "groups",
                absl::StrFormat("from %d to %d groups", o_.scale_groups.front(), o_.scale_groups.back()));
  report_points(by_members, "members",
                absl::StrFormat("from %d to %d members", o_.scale_members.front(), o_.scale_members.back()));
  by_groups.clear();
  by_members.clear();
  idle.clear();
  for (auto& b : brokers) b->Stop();

  if (broker_us_per_connection_ >= 0) {
    report_.Info("broker.cpu_per_1000_connections", "Broker CPU per 1,000 TCP connections (short, max rate)",
                 absl::StrFormat("%.1f ms", broker_us_per_connection_), broker_us_per_connection_);
  }
  if (broker_us_per_datagram_max_ >= 0) {
    report_.Info("broker.cpu_per_100000_datagrams", "Broker CPU per 100,000 UDP 64 B datagrams (max / half rate)",
                 absl::StrFormat("%.0f / %.0f ms", broker_us_per_datagram_max_ * 100,
                                 broker_us_per_datagram_paced_ * 100),
                 broker_us_per_datagram_max_ * 100);
  }
  // From the traffic phases (absent when they did not run).
  if (broker_us_per_connection_ >= 0) section.Number("broker_cpu_ms_per_1000_connections", broker_us_per_connection_);
  if (broker_us_per_datagram_max_ >= 0) {
    section.Number("broker_cpu_ms_per_100000_datagrams_max_rate", broker_us_per_datagram_max_ * 100)
        .Number("broker_cpu_ms_per_100000_datagrams_paced", broker_us_per_datagram_paced_ * 100);
  }
  report_.AddSection("broker", section);
  return true;
}

}  // namespace reuseport::bench
