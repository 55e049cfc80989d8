// The benchmark suite: every phase, its options, and the progress line.
//
// Phases (each may be chosen with --phases):
//   tcp       short TCP connections: native, shared listener, emulated; rate,
//             fairness, server and broker CPU per connection
//   latency   idle first-byte latency, the three modes alternating sample by sample
//   tcp-long  persistent connections doing 64-byte request/reply round trips
//   udp       64- and 1,472-byte datagrams at the maximum send rate, then 64-byte
//             ones at half of native's maximum: received rate, loss, CPU
//   overhead  what the shim costs where it does nothing: read() loops on a pipe
//             and a file, and a native-mode TCP server, with and without it
//   broker    the broker's memory with 1,000 groups and 4,000 members, join
//             latency, CPU per connection from 1 to 1,000 groups and 2 to 64 members
//   churn     UDP flows moved when a member leaves or joins, against the kernel's
//
// Modes of one phase run interleaved (the order rotates each repetition), so
// drift of the machine (CPU frequency, neighbours on a VM) hits all of them.
#ifndef REUSEPORT_TESTS_BENCH_BENCH_SUITE_H_
#define REUSEPORT_TESTS_BENCH_BENCH_SUITE_H_

#include <optional>
#include <string>
#include <vector>

#include "bench_processes.h"
#include "bench_report.h"
#include "temp_dir.h"
#include "worker_counters.h"

namespace reuseport::bench {

inline const std::vector<std::string> kAllPhases = {"tcp", "latency", "tcp-long", "udp", "overhead", "broker", "churn"};

struct Options {
  bool quick = false;
  int workers = 4;
  double seconds = 1.5;           // one measured trial
  double warmup = 0.3;            // before each trial
  int repetitions = 5;            // interleaved repetitions of each trial
  int concurrency = 32;           // TCP short connections in flight
  int latency_samples = 2000;     // idle first-byte samples per mode and repetition
  int long_connections = 64;      // persistent TCP connections
  int udp_flows = 64;
  std::vector<std::string> broker_flags;  // extra flags of the measured broker (before/after comparisons)
  double udp_paced_fraction = 0.5;  // of native's maximum received rate
  long read_count = 1000000;      // read() calls per loop
  int read_loops = 2;             // loops per process (the fastest counts)
  int overhead_repetitions = 7;   // processes per read() variant
  bool overhead_runner = true;    // also measure the read() loops under the legacy-kernel runner
  int overhead_slices = 40;       // alternating slices of the native-mode TCP comparison
  double slice_seconds = 0.25;
  int groups = 1000;              // broker memory: groups ...
  int members_per_group = 4;      // ... and members in each
  int join_samples = 1000;
  std::vector<int> scale_groups = {1, 100, 1000};
  std::vector<int> scale_members = {2, 8, 64};
  int scale_slices = 8;
  int churn_flows = 2000;
  std::vector<std::string> phases = kAllPhases;
  std::string kernel = "3.2";
  std::string json_path;
  std::string svg_path;
  bool own_netns = true;
  bool strict = false;            // exit 1 when a target is missed
  double time_limit = 540;        // the whole run, seconds: a watchdog ends it beyond
};

// The progress line on stderr: "[ 42%  63s] udp: 64 B max rate, emulated, repetition 3/5".
// Percentages come from each phase's planned duration.
class Progress {
 public:
  void Plan(const std::string& phase, double seconds);
  void BeginPhase(const std::string& phase);
  void Step(const std::string& text);
  void Done();
  double elapsed() const;
  double planned_total() const;

 private:
  std::vector<std::pair<std::string, double>> plan_;
  size_t current_ = 0;
  double phase_started_ = 0;
  double started_ = -1;
  std::string phase_;
  bool tty_ = false;
};

class BenchSuite {
 public:
  explicit BenchSuite(Options options) : o_(std::move(options)) {}
  // Runs the chosen phases and writes the results. Returns the exit status.
  int Run();

 private:
  bool Wanted(const std::string& phase) const;
  WorkerSetOptions Workers(ServerKind kind, ShareMode mode, int count, const Broker* broker = nullptr);
  double PlannedSeconds(const std::string& phase) const;
  void Fail(const std::string& phase, const std::string& why);

  // One function per phase (suite_traffic.cc, suite_overhead.cc, suite_broker.cc, suite_churn.cc).
  bool TcpShort();
  bool IdleLatency();
  bool TcpPersistent();
  bool Udp();
  bool Overhead();
  bool BrokerScale();
  bool Churn();

  Options o_;
  std::optional<testing::TempDir> dir_;
  Broker broker_;
  WorkerCounters counters_;
  Report report_;
  Progress progress_;
  std::vector<std::string> failures_;
  // Carried from the traffic phases to the broker's figures.
  double broker_us_per_connection_ = -1;
  double broker_us_per_datagram_max_ = -1;
  double broker_us_per_datagram_paced_ = -1;
};

}  // namespace reuseport::bench

#endif  // REUSEPORT_TESTS_BENCH_BENCH_SUITE_H_
