// The traffic phases: short and persistent TCP connections, idle first-byte
// latency, UDP at the maximum and at a fixed rate; native SO_REUSEPORT, a
// shared socket and this project on the emulated old kernel, interleaved.
#include <stdio.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench_clients.h"
#include "bench_suite.h"

namespace reuseport::bench {

namespace {

constexpr ShareMode kModes[] = {ShareMode::kNative, ShareMode::kShared, ShareMode::kEmulated};

const char* ModeTitle(ShareMode mode) {
  switch (mode) {
    case ShareMode::kNative: return "native SO_REUSEPORT";
    case ShareMode::kShared: return "shared socket, N workers";
    case ShareMode::kEmulated: return "reuseport (emulated)";
    case ShareMode::kNativeShim: return "native, shim preloaded";
  }
  return "?";
}

template <typename T>
std::vector<double> Field(const std::vector<T>& trials, double T::*field) {
  std::vector<double> v;
  for (const T& t : trials) v.push_back(t.*field);
  return v;
}

std::vector<double> Deltas(const std::vector<uint64_t>& after, const std::vector<uint64_t>& before) {
  std::vector<double> d;
  for (size_t i = 0; i < after.size(); ++i) d.push_back(static_cast<double>(after[i] - (i < before.size() ? before[i] : 0)));
  return d;
}

// Datagrams the kernel dropped on the UDP sockets bound to `port` in this
// network namespace (the "drops" column of /proc/net/udp): the workers' own
// sockets natively, the group's real socket in the broker when emulated.
uint64_t UdpSocketDrops(uint16_t port) {
  std::ifstream in("/proc/net/udp");
  std::string line;
  std::getline(in, line);
  uint64_t drops = 0;
  std::string want = absl::StrFormat(":%04X", port);
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 13 || f[1].size() < 5 || f[1].substr(f[1].size() - 5) != want) continue;
    uint64_t d = 0;
    if (absl::SimpleAtoi(f.back(), &d)) drops += d;
  }
  return drops;
}

// The broker's view of a group: its member queue drops and its real socket's
// kernel drops.
void BrokerGroupDrops(const Broker& broker, uint16_t port, double* member_drops, double* kernel_drops) {
  *member_drops = *kernel_drops = 0;
  absl::StatusOr<ctl::JsonValue> status = broker.Status();
  if (!status.ok()) return;
  for (const ctl::JsonValue& g : (*status)["groups"].array) {
    if (static_cast<int>(g["port"].AsNumber()) != port) continue;
    *kernel_drops += g["kernel_drops"].AsNumber();
    for (const ctl::JsonValue& m : g["members"].array) *member_drops += m["dropped"].AsNumber();
  }
}

// Waits until the workers' counts stop moving for 100 ms (at most 2 s): what is
// still queued is received, not counted as lost.
void WaitForDrain(const WorkerSet& ws) {
  uint64_t last = ws.Total();
  double quiet_since = Now(), limit = Now() + 2;
  while (Now() < limit) {
    usleep(20 * 1000);
    uint64_t t = ws.Total();
    if (t != last) {
      last = t;
      quiet_since = Now();
    } else if (Now() - quiet_since >= 0.1) {
      break;
    }
  }
}

}  // namespace

bool BenchSuite::TcpShort() {
  struct Trial {
    double rate = 0, fairness = 0, cpu_us = 0, broker_us = 0, failed = 0;
    std::vector<double> per_worker;
  };
  std::map<ShareMode, std::vector<Trial>> trials;
  for (int rep = 0; rep < o_.repetitions; ++rep) {
    for (int j = 0; j < 3; ++j) {
      ShareMode mode = kModes[(j + rep) % 3];
      bool emulated = mode == ShareMode::kEmulated;
      progress_.Step(absl::StrFormat("%s, repetition %d/%d", ShareModeName(mode), rep + 1, o_.repetitions));
      WorkerSet ws;
      if (!ws.Start(Workers(ServerKind::kTcpShort, mode, o_.workers))) return false;
      Endpoint ep = Endpoint::Loopback(ws.port());
      RunTcpClosedLoop(ep, o_.concurrency, o_.warmup);
      std::vector<uint64_t> c0 = ws.Counts();
      int64_t w0 = ws.CpuNanoseconds(), b0 = emulated ? CpuNanoseconds(broker_.pid(), false) : 0;
      TcpRun run = RunTcpClosedLoop(ep, o_.concurrency, o_.seconds);
      int64_t w1 = ws.CpuNanoseconds(), b1 = emulated ? CpuNanoseconds(broker_.pid(), false) : 0;
      std::vector<uint64_t> c1 = ws.Counts();
      ws.Stop();
      Trial t;
      double n = static_cast<double>(std::max<uint64_t>(run.completed, 1));
      t.rate = static_cast<double>(run.completed) / run.seconds;
      t.per_worker = Deltas(c1, c0);
      t.fairness = MaxOverMin(t.per_worker);
      t.cpu_us = static_cast<double>(w1 - w0 + b1 - b0) / 1e3 / n;
      t.broker_us = static_cast<double>(b1 - b0) / 1e3 / n;
      t.failed = static_cast<double>(run.failed);
      trials[mode].push_back(t);
    }
  }
  const std::vector<double> native = Field(trials[ShareMode::kNative], &Trial::rate);
  printf("\n== TCP short connections (connect, %d-byte request, reply, close), %d in flight, %d workers\n",
         kMessageBytes, o_.concurrency, o_.workers);
  printf("%-26s %-28s %-18s %-18s %-22s %-14s %s\n", "mode", "connections/s", "ratio", "fairness max/min",
         "server CPU us/conn", "of it broker", "failed");
  JsonObject section;
  for (ShareMode mode : kModes) {
    const std::vector<Trial>& t = trials[mode];
    Spread rate = Summarize(Field(t, &Trial::rate));
    Spread ratio = PairedRatio(rate.values, native);
    Spread fair = Summarize(Field(t, &Trial::fairness));
    Spread cpu = Summarize(Field(t, &Trial::cpu_us));
    Spread broker = Summarize(Field(t, &Trial::broker_us));
    double failed = 0;
    for (const Trial& x : t) failed += x.failed;
    printf("%-26s %-28s %-18s %-18s %-22s %-14s %.0f\n", ModeTitle(mode), FormatSpread(rate, 0).c_str(),
           FormatSpread(ratio, 2).c_str(), FormatSpread(fair, 2).c_str(), FormatSpread(cpu, 1).c_str(),
           mode == ShareMode::kEmulated ? FormatSpread(broker, 1).c_str() : "-", failed);
    std::vector<std::string> workers;
    for (const Trial& x : t) workers.push_back(JsonObject().Numbers("accepted", x.per_worker).str());
    JsonObject m;
    m.SpreadOf("connections_per_second", rate).SpreadOf("ratio_to_native", ratio).SpreadOf("fairness_max_over_min", fair)
        .SpreadOf("server_cpu_us_per_connection", cpu).SpreadOf("broker_cpu_us_per_connection", broker)
        .Number("failed", failed).Raw("per_worker", JsonArray(workers));
    section.Raw(ShareModeName(mode), m.str());
    if (mode == ShareMode::kEmulated) {
      report_.AtLeast("tcp_short.rate_ratio", "TCP short connections/s, emulated / native", ratio, 0.90, 2);
      report_.AtMost("tcp_short.fairness", "TCP short: fairness, max/min accepted per worker (emulated)", fair, 1.10, 2);
      report_.Info("tcp_short.cpu_us", "TCP short: server CPU per connection, emulated (incl. broker)",
                   absl::StrCat(FormatSpread(cpu, 1), " us vs native ",
                                FormatNumber(Median(Field(trials[ShareMode::kNative], &Trial::cpu_us)), 1), " us"),
                   cpu.median);
      broker_us_per_connection_ = broker.median;
    }
    if (mode != ShareMode::kNative) {
      report_.AddBar({"TCP", absl::StrCat("short connections/s, ", ShareModeName(mode)), ratio,
                      mode == ShareMode::kEmulated ? 0.90 : 0, true, ShareModeName(mode)});
    }
  }
  report_.AddSection("tcp_short", section);
  return true;
}

bool BenchSuite::IdleLatency() {
  WorkerSet sets[3];
  for (int j = 0; j < 3; ++j) {
    progress_.Step(absl::StrCat("starting ", ShareModeName(kModes[j]), " workers"));
    if (!sets[j].Start(Workers(ServerKind::kTcpShort, kModes[j], o_.workers))) return false;
  }
  Endpoint eps[3];
  for (int j = 0; j < 3; ++j) {
    eps[j] = Endpoint::Loopback(sets[j].port());
    for (int i = 0; i < 50; ++i) TcpFirstByte(eps[j]);  // warm up
  }
  struct Rep {
    double p50[3], p99[3];
  };
  std::vector<Rep> reps;
  std::vector<double> pooled[3];
  int failed = 0;
  for (int rep = 0; rep < o_.repetitions; ++rep) {
    progress_.Step(absl::StrFormat("%d samples per mode, alternating, repetition %d/%d", o_.latency_samples, rep + 1,
                                   o_.repetitions));
    std::vector<double> samples[3];
    for (int i = 0; i < o_.latency_samples; ++i) {
      for (int j = 0; j < 3; ++j) {
        int m = (i + j + rep) % 3;
        double us = TcpFirstByte(eps[m]);
        if (us < 0) {
          ++failed;
          continue;
        }
        samples[m].push_back(us);
      }
    }
    Rep r;
    for (int m = 0; m < 3; ++m) {
      r.p50[m] = Percentile(samples[m], 0.5);
      r.p99[m] = Percentile(samples[m], 0.99);
      pooled[m].insert(pooled[m].end(), samples[m].begin(), samples[m].end());
    }
    reps.push_back(r);
  }
  for (WorkerSet& s : sets) s.Stop();
  printf("\n== Idle first-byte latency (one connection at a time: connect, 64-byte request, first byte of the reply)\n");
  printf("   %d samples per mode and repetition, the modes alternating sample by sample; %d failed\n",
         o_.latency_samples, failed);
  printf("%-26s %-24s %-24s %-24s %-24s\n", "mode", "p50 us", "p99 us", "added p50 us", "added p99 us");
  JsonObject section;
  section.Integer("samples_per_repetition", o_.latency_samples).Integer("failed", failed);
  for (int m = 0; m < 3; ++m) {
    std::vector<double> p50, p99, a50, a99;
    for (const Rep& r : reps) {
      p50.push_back(r.p50[m]);
      p99.push_back(r.p99[m]);
      a50.push_back(r.p50[m] - r.p50[0]);
      a99.push_back(r.p99[m] - r.p99[0]);
    }
    Spread s50 = Summarize(p50), s99 = Summarize(p99), sa50 = Summarize(a50), sa99 = Summarize(a99);
    printf("%-26s %-24s %-24s %-24s %-24s\n", ModeTitle(kModes[m]), FormatSpread(s50, 0).c_str(),
           FormatSpread(s99, 0).c_str(), m ? FormatSpread(sa50, 0).c_str() : "-", m ? FormatSpread(sa99, 0).c_str() : "-");
    JsonObject j;
    j.SpreadOf("p50_us", s50).SpreadOf("p99_us", s99).Number("pooled_p50_us", Percentile(pooled[m], 0.5))
        .Number("pooled_p99_us", Percentile(pooled[m], 0.99)).Number("pooled_p999_us", Percentile(pooled[m], 0.999));
    if (m > 0) j.SpreadOf("added_p50_us", sa50).SpreadOf("added_p99_us", sa99);
    section.Raw(ShareModeName(kModes[m]), j.str());
    if (kModes[m] == ShareMode::kEmulated) {
      report_.AtMost("latency.added_p50_us", "TCP idle first byte: added p50 (emulated - native)", sa50, 20, 1, "us");
      report_.AtMost("latency.added_p99_us", "TCP idle first byte: added p99 (emulated - native)", sa99, 50, 1, "us");
    }
  }
  {
    std::vector<double> n50, n99, e50, e99;
    for (const Rep& r : reps) {
      n50.push_back(r.p50[0]);
      n99.push_back(r.p99[0]);
      e50.push_back(r.p50[2]);
      e99.push_back(r.p99[2]);
    }
    report_.Info("latency.p50_p99", "TCP idle first byte p50 / p99",
                 absl::StrFormat("native %s / %s us, emulated %s / %s us", FormatNumber(Median(n50), 0),
                                 FormatNumber(Median(n99), 0), FormatNumber(Median(e50), 0), FormatNumber(Median(e99), 0)),
                 Median(e50));
  }
  report_.AddSection("idle_first_byte_latency", section);
  return true;
}

bool BenchSuite::TcpPersistent() {
  struct Trial {
    double rate = 0, p50 = 0, p99 = 0, cpu_us = 0, broker_us = 0, connections = 0, failed = 0, fairness = 0;
  };
  std::map<ShareMode, std::vector<Trial>> trials;
  for (int rep = 0; rep < o_.repetitions; ++rep) {
    for (int j = 0; j < 3; ++j) {
      ShareMode mode = kModes[(j + rep) % 3];
      bool emulated = mode == ShareMode::kEmulated;
      progress_.Step(absl::StrFormat("%s, repetition %d/%d", ShareModeName(mode), rep + 1, o_.repetitions));
      WorkerSet ws;
      if (!ws.Start(Workers(ServerKind::kTcpLong, mode, o_.workers))) return false;
      Endpoint ep = Endpoint::Loopback(ws.port());
      std::vector<uint64_t> c0 = ws.Counts();
      int64_t w0 = ws.CpuNanoseconds(), b0 = emulated ? CpuNanoseconds(broker_.pid(), false) : 0;
      TcpPersistentRun run = RunTcpPersistent(ep, o_.long_connections, o_.warmup, o_.seconds);
      int64_t w1 = ws.CpuNanoseconds(), b1 = emulated ? CpuNanoseconds(broker_.pid(), false) : 0;
      std::vector<uint64_t> c1 = ws.Counts();
      ws.Stop();
      Trial t;
      std::vector<double> per_worker = Deltas(c1, c0);
      double served = 0;
      for (double d : per_worker) served += d;
      served = std::max(served, 1.0);
      t.fairness = MaxOverMin(per_worker);
      t.rate = run.seconds > 0 ? static_cast<double>(run.round_trips) / run.seconds : 0;
      std::vector<double> lat(run.latency_us.begin(), run.latency_us.end());
      t.p50 = Percentile(lat, 0.5);
      t.p99 = Percentile(lat, 0.99);
      t.cpu_us = static_cast<double>(w1 - w0 + b1 - b0) / 1e3 / served;
      t.broker_us = static_cast<double>(b1 - b0) / 1e3 / served;
      t.connections = run.connections;
      t.failed = static_cast<double>(run.failed);
      trials[mode].push_back(t);
    }
  }
  const std::vector<double> native_rate = Field(trials[ShareMode::kNative], &Trial::rate);
  const std::vector<double> native_p50 = Field(trials[ShareMode::kNative], &Trial::p50);
  const std::vector<double> native_p99 = Field(trials[ShareMode::kNative], &Trial::p99);
  printf("\n== TCP persistent connections: %d connections, each one 64-byte request/reply at a time\n",
         o_.long_connections);
  printf("%-26s %-28s %-18s %-22s %-22s %-20s %-18s %s\n", "mode", "round trips/s", "ratio", "latency p50 us",
         "latency p99 us", "server CPU us/req", "requests max/min", "failed");
  JsonObject section;
  for (ShareMode mode : kModes) {
    const std::vector<Trial>& t = trials[mode];
    Spread rate = Summarize(Field(t, &Trial::rate));
    Spread ratio = PairedRatio(rate.values, native_rate);
    Spread p50 = Summarize(Field(t, &Trial::p50)), p99 = Summarize(Field(t, &Trial::p99));
    Spread p50_ratio = PairedRatio(p50.values, native_p50), p99_ratio = PairedRatio(p99.values, native_p99);
    Spread cpu = Summarize(Field(t, &Trial::cpu_us)), broker = Summarize(Field(t, &Trial::broker_us));
    Spread fair = Summarize(Field(t, &Trial::fairness));
    double failed = 0;
    for (const Trial& x : t) failed += x.failed;
    printf("%-26s %-28s %-18s %-22s %-22s %-20s %-18s %.0f\n", ModeTitle(mode), FormatSpread(rate, 0).c_str(),
           FormatSpread(ratio, 3).c_str(), FormatSpread(p50, 0).c_str(), FormatSpread(p99, 0).c_str(),
           FormatSpread(cpu, 2).c_str(), FormatSpread(fair, 2).c_str(), failed);
    JsonObject m;
    m.SpreadOf("round_trips_per_second", rate).SpreadOf("ratio_to_native", ratio).SpreadOf("latency_p50_us", p50)
        .SpreadOf("latency_p99_us", p99).SpreadOf("p50_ratio_to_native", p50_ratio)
        .SpreadOf("p99_ratio_to_native", p99_ratio).SpreadOf("server_cpu_us_per_request", cpu)
        .SpreadOf("broker_cpu_us_per_request", broker).SpreadOf("requests_per_worker_max_over_min", fair)
        .Number("failed", failed);
    section.Raw(ShareModeName(mode), m.str());
    if (mode == ShareMode::kEmulated) {
      report_.AtLeast("tcp_long.rate_ratio", "TCP persistent: round trips/s, emulated / native (as native: >= 0.95)",
                      ratio, 0.95, 3);
      report_.AtMost("tcp_long.p50_ratio", "TCP persistent: request latency p50, emulated / native (<= 1.05)",
                     p50_ratio, 1.05, 3);
      report_.Info("tcp_long.p99_ratio", "TCP persistent: request latency p99, emulated / native",
                   FormatSpread(p99_ratio, 3), p99_ratio.median);
    }
    if (mode != ShareMode::kNative) {
      report_.AddBar({"TCP", absl::StrCat("persistent round trips/s, ", ShareModeName(mode)), ratio,
                      mode == ShareMode::kEmulated ? 0.95 : 0, true, ShareModeName(mode)});
    }
  }
  report_.AddSection("tcp_persistent", section);
  return true;
}

bool BenchSuite::Udp() {
  struct Trial {
    double target = 0, sent_rate = 0, rate = 0, loss = 0, fairness = 0, cpu_us = 0, broker_us = 0;
    double socket_drops = 0, member_drops = 0, sent = 0, received = 0;
  };
  // Series: "64" and "1472" at the maximum rate, "64-paced" at a fixed rate.
  std::map<std::string, std::map<ShareMode, std::vector<Trial>>> series;
  bool flood_gso = false;
  // rate < 0: the flood (FloodUdp); 0: as fast as BlastUdp's one thread can.
  auto run_trial = [&](ShareMode mode, int payload, double rate, Trial* t) {
    bool emulated = mode == ShareMode::kEmulated;
    WorkerSet ws;
    if (!ws.Start(Workers(ServerKind::kUdpCount, mode, o_.workers))) return false;
    Endpoint ep = Endpoint::Loopback(ws.port());
    std::vector<uint64_t> c0 = ws.Counts();
    int64_t w0 = ws.CpuNanoseconds(), b0 = emulated ? CpuNanoseconds(broker_.pid(), false) : 0;
    UdpRun run = rate < 0 ? FloodUdp(ep, o_.udp_flows, payload, o_.seconds, &flood_gso)
                          : BlastUdp(ep, o_.udp_flows, payload, o_.seconds, rate);
    rate = std::max(rate, 0.0);
    WaitForDrain(ws);
    int64_t w1 = ws.CpuNanoseconds(), b1 = emulated ? CpuNanoseconds(broker_.pid(), false) : 0;
    std::vector<uint64_t> c1 = ws.Counts();
    t->socket_drops = static_cast<double>(UdpSocketDrops(ws.port()));
    double kernel_drops = 0;
    if (emulated) BrokerGroupDrops(broker_, ws.port(), &t->member_drops, &kernel_drops);
    ws.Stop();
    std::vector<double> per_worker = Deltas(c1, c0);
    double received = 0;
    for (double d : per_worker) received += d;
    t->target = rate;
    t->sent = static_cast<double>(run.sent);
    t->received = received;
    t->sent_rate = run.sent_rate();
    t->rate = received / run.seconds;
    t->loss = run.sent ? std::max(0.0, 1.0 - received / static_cast<double>(run.sent)) : 0;
    t->fairness = MaxOverMin(per_worker);
    double n = std::max(received, 1.0);
    t->cpu_us = static_cast<double>(w1 - w0 + b1 - b0) / 1e3 / n;
    t->broker_us = static_cast<double>(b1 - b0) / 1e3 / n;
    return true;
  };
  for (int rep = 0; rep < o_.repetitions; ++rep) {
    for (int payload : {64, 1472}) {
      for (int j = 0; j < 3; ++j) {
        ShareMode mode = kModes[(j + rep) % 3];
        progress_.Step(absl::StrFormat("%d-byte datagrams at the maximum rate, %s, repetition %d/%d", payload,
                                       ShareModeName(mode), rep + 1, o_.repetitions));
        Trial t;
        if (!run_trial(mode, payload, 0, &t)) return false;
        series[absl::StrCat(payload)][mode].push_back(t);
      }
    }
  }
  for (int rep = 0; rep < o_.repetitions; ++rep) {
    for (int j = 0; j < 3; ++j) {
      ShareMode mode = kModes[(j + rep) % 3];
      progress_.Step(absl::StrFormat("a flood of 64-byte datagrams, %s, repetition %d/%d", ShareModeName(mode), rep + 1,
                                     o_.repetitions));
      Trial t;
      if (!run_trial(mode, 64, -1, &t)) return false;
      series["flood"][mode].push_back(t);
    }
  }
  double native_max = Median(Field(series["64"][ShareMode::kNative], &Trial::rate));
  double paced = native_max * o_.udp_paced_fraction;
  for (int rep = 0; rep < o_.repetitions; ++rep) {
    for (int j = 0; j < 3; ++j) {
      ShareMode mode = kModes[(j + rep) % 3];
      progress_.Step(absl::StrFormat("64-byte datagrams at %s/s, %s, repetition %d/%d", FormatNumber(paced, 0),
                                     ShareModeName(mode), rep + 1, o_.repetitions));
      Trial t;
      if (!run_trial(mode, 64, paced, &t)) return false;
      series["64-paced"][mode].push_back(t);
    }
  }
  JsonObject section;
  section.Integer("flows", o_.udp_flows).Number("native_max_rate_64", native_max).Number("paced_rate", paced);
  section.Raw("flood_sender", flood_gso ? "\"udp-gso\"" : "\"sendmmsg\"");
  for (const char* key : {"64", "1472", "64-paced", "flood"}) {
    bool is_paced = std::string(key) == "64-paced";
    bool is_flood = std::string(key) == "flood";
    auto& s = series[key];
    const std::vector<double> native = Field(s[ShareMode::kNative], &Trial::rate);
    if (is_paced) {
      printf("\n== UDP 64-byte datagrams from %d flows at a fixed %s/s (%.0f%% of native's maximum in this run)\n",
             o_.udp_flows, FormatNumber(paced, 0).c_str(), 100 * o_.udp_paced_fraction);
    } else if (is_flood) {
      printf("\n== UDP flood: 64-byte datagrams from %d flows, 64 per system call (%s)\n", o_.udp_flows,
             flood_gso ? "UDP GSO" : "sendmmsg");
    } else {
      printf("\n== UDP %s-byte datagrams from %d flows, sent as fast as one thread can\n", key, o_.udp_flows);
    }
    printf("%-26s %-26s %-26s %-18s %-20s %-18s %-14s %s\n", "mode", "sent/s", "received/s", "ratio", "loss %",
           "server CPU us/dgram", "of it broker", "drops: socket / member queue");
    JsonObject js;
    for (ShareMode mode : kModes) {
      const std::vector<Trial>& t = s[mode];
      Spread sent = Summarize(Field(t, &Trial::sent_rate));
      Spread rate = Summarize(Field(t, &Trial::rate));
      Spread ratio = PairedRatio(rate.values, native);
      std::vector<double> loss_pct;
      for (double l : Field(t, &Trial::loss)) loss_pct.push_back(100 * l);
      Spread loss = Summarize(loss_pct);
      Spread cpu = Summarize(Field(t, &Trial::cpu_us)), broker = Summarize(Field(t, &Trial::broker_us));
      Spread fair = Summarize(Field(t, &Trial::fairness));
      Spread socket_drops = Summarize(Field(t, &Trial::socket_drops));
      Spread member_drops = Summarize(Field(t, &Trial::member_drops));
      std::vector<double> accuracy;
      for (const Trial& x : t) {
        if (x.target > 0) accuracy.push_back(x.sent_rate / x.target);
      }
      Spread acc = Summarize(accuracy);
      printf("%-26s %-26s %-26s %-18s %-20s %-18s %-14s %s / %s\n", ModeTitle(mode), FormatSpread(sent, 0).c_str(),
             FormatSpread(rate, 0).c_str(), FormatSpread(ratio, 2).c_str(), FormatSpread(loss, 3).c_str(),
             FormatSpread(cpu, 2).c_str(), mode == ShareMode::kEmulated ? FormatSpread(broker, 2).c_str() : "-",
             FormatNumber(socket_drops.median, 0).c_str(),
             mode == ShareMode::kEmulated ? FormatNumber(member_drops.median, 0).c_str() : "-");
      JsonObject m;
      m.SpreadOf("sent_per_second", sent).SpreadOf("received_per_second", rate).SpreadOf("ratio_to_native", ratio)
          .SpreadOf("loss_percent", loss).SpreadOf("fairness_max_over_min", fair)
          .SpreadOf("server_cpu_us_per_datagram", cpu).SpreadOf("broker_cpu_us_per_datagram", broker)
          .SpreadOf("socket_drops", socket_drops).SpreadOf("member_queue_drops", member_drops);
      if (is_paced) m.Number("target_rate", paced).SpreadOf("sent_over_target", acc);
      js.Raw(ShareModeName(mode), m.str());
      bool emulated = mode == ShareMode::kEmulated;
      if (emulated && std::string(key) == "64") {
        report_.AtLeast("udp.64.rate_ratio", "UDP 64 B datagrams/s received, emulated / native", ratio, 0.6, 2);
        report_.Info("udp.64.loss_max_rate", "UDP 64 B at the maximum send rate: loss, emulated (native)",
                     absl::StrFormat("%s %% (%s %%)", FormatSpread(loss, 1),
                                     FormatNumber(100 * Median(Field(s[ShareMode::kNative], &Trial::loss)), 1)),
                     loss.median);
        report_.Info("udp.64.cpu_us", "UDP 64 B: server CPU per datagram received, emulated (incl. broker)",
                     absl::StrCat(FormatSpread(cpu, 2), " us vs native ",
                                  FormatNumber(Median(Field(s[ShareMode::kNative], &Trial::cpu_us)), 2), " us"),
                     cpu.median);
        broker_us_per_datagram_max_ = broker.median;
      }
      if (emulated && is_flood) {
        report_.AtLeast("udp.flood.rate_ratio", "UDP flood (64 B, 64 flows): datagrams/s received, emulated / native",
                        ratio, 1.0, 2);
        report_.Info("udp.flood.loss", "UDP flood: loss, emulated (native)",
                     absl::StrFormat("%s %% (%s %%)", FormatSpread(loss, 1),
                                     FormatNumber(100 * Median(Field(s[ShareMode::kNative], &Trial::loss)), 1)),
                     loss.median);
        report_.Info("udp.flood.cpu_us", "UDP flood: server CPU per datagram received, emulated (incl. broker)",
                     absl::StrCat(FormatSpread(cpu, 2), " us vs native ",
                                  FormatNumber(Median(Field(s[ShareMode::kNative], &Trial::cpu_us)), 2), " us"),
                     cpu.median);
      }
      if (emulated && std::string(key) == "1472") {
        report_.AtLeast("udp.1472.rate_ratio", "UDP 1,472 B datagrams/s received, emulated / native", ratio, 0.8, 2);
      }
      if (emulated && is_paced) {
        report_.AtMost("udp.64.paced_loss_percent",
                       absl::StrFormat("UDP 64 B at %s/s (half native max): loss, emulated", FormatNumber(paced, 0)),
                       loss, 0, 3, "%");
        broker_us_per_datagram_paced_ = broker.median;
      }
      if (is_paced && mode == ShareMode::kNative) {
        report_.Info("udp.64.paced_loss_native", "UDP 64 B at half native max: loss, native", FormatSpread(loss, 3) + " %",
                     loss.median);
      }
      if (is_paced) {
        std::vector<double> all;
        for (auto& [mm, tt] : s) {
          for (const Trial& x : tt) all.push_back(x.sent_rate / x.target);
        }
        if (mode == ShareMode::kEmulated) {
          report_.Info("udp.paced_sender_accuracy", "UDP paced sender: actual sent rate / target (all trials)",
                       FormatSpread(Summarize(all), 4), Median(all));
        }
      }
      if (!is_paced && mode != ShareMode::kNative) {
        std::string label = is_flood ? absl::StrCat("flood datagrams/s, ", ShareModeName(mode))
                                     : absl::StrFormat("%s B datagrams/s, %s", key, ShareModeName(mode));
        double goal = !emulated ? 0 : is_flood ? 1.0 : std::string(key) == "64" ? 0.6 : 0.8;
        report_.AddBar({"UDP", label, ratio, goal, true, ShareModeName(mode)});
      }
    }
    section.Raw(key, js.str());
    if (!is_paced && Median(Field(s[ShareMode::kNative], &Trial::loss)) < 0.001) {
      printf("   (native lost nothing at the maximum send rate: one sending thread, not its receivers, set its rate;"
             " the CPU per datagram compares capacity)\n");
    }
  }
  report_.AddSection("udp", section);
  return true;
}

}  // namespace reuseport::bench
