// reuseport_bench: this project against the kernel's own SO_REUSEPORT, in the
// same run, on the same machine. Run the whole suite with scripts/bench.sh;
// bench_suite.h lists the phases.
//
// The same binary is also every worker the orchestrator starts
// (`reuseport_bench serve ...`, `reuseport_bench read-loop ...`), so natively,
// under the shim and under the legacy-kernel runner the very same code serves;
// `tcp-load`, `udp-load` and `udp-flood` drive such a server by hand (for
// profiling and before/after runs of one change).
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench_clients.h"
#include "bench_servers.h"
#include "bench_suite.h"

namespace reuseport::bench {
namespace {

int Usage() {
  fputs(
      "usage: reuseport_bench [--quick] [--phases tcp,latency,tcp-long,udp,overhead,broker,churn]\n"
      "         [--json PATH] [--svg PATH] [--strict] [--no-netns] [--kernel X.Y] [--time-limit S]\n"
      "         [--workers N] [--seconds S] [--warmup S] [--repetitions R] [--concurrency C]\n"
      "         [--latency-samples N] [--long-connections N] [--udp-flows F] [--udp-paced-fraction X]\n"
      "         [--read-count N] [--overhead-repetitions R] [--no-runner-overhead] [--overhead-slices K]\n"
      "         [--slice-seconds S] [--groups G] [--members-per-group M] [--join-samples N]\n"
      "         [--scale-groups 1,100,1000] [--scale-members 2,8,64] [--scale-slices K] [--churn-flows F]\n"
      "         [--broker-flag FLAG]...\n"
      "  --quick   a CI-sized run (about a minute): shorter trials, fewer repetitions and points\n"
      "  --strict  exit 1 when a target is missed (always 1 when a phase could not run)\n"
      "  --broker-flag  passed to the measured reuseportd, e.g. --broker-flag --udp_rings=false (before/after)\n",
      stderr);
  return 2;
}

void ApplyQuick(Options* o) {
  o->quick = true;
  o->seconds = 0.5;
  o->warmup = 0.2;
  o->repetitions = 3;
  o->latency_samples = 500;
  o->overhead_repetitions = 5;
  o->overhead_runner = false;
  o->overhead_slices = 16;
  o->slice_seconds = 0.2;
  o->join_samples = 300;
  o->scale_groups = {1, 1000};
  o->scale_members = {2, 64};
  o->scale_slices = 4;
  o->time_limit = 200;
}

bool IntList(const std::string& s, std::vector<int>* out) {
  out->clear();
  for (absl::string_view p : absl::StrSplit(s, ',', absl::SkipEmpty())) {
    int v = 0;
    if (!absl::SimpleAtoi(p, &v) || v < 1) return false;
    out->push_back(v);
  }
  return !out->empty();
}

int RunRole(int argc, char** argv) {
  std::string role = argv[1];
  ServerOptions s;
  long count = 1000000;
  int loops = 3;
  int concurrency = 32, payload = 64;
  double seconds = 3, rate = 0;
  std::string dir = "/tmp";
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    int v = 0;
    if (flag == "--kind") {
      if (value == "tcp-short") s.kind = ServerKind::kTcpShort;
      else if (value == "tcp-long") s.kind = ServerKind::kTcpLong;
      else if (value == "udp-count") s.kind = ServerKind::kUdpCount;
      else if (value == "udp-ident") s.kind = ServerKind::kUdpIdent;
      else return Usage();
    } else if (flag == "--port" && absl::SimpleAtoi(value, &v)) {
      s.port = static_cast<uint16_t>(v);
    } else if (flag == "--slot" && absl::SimpleAtoi(value, &v)) {
      s.slot = v;
    } else if (flag == "--id" && absl::SimpleAtoi(value, &v)) {
      s.id = v;
    } else if (flag == "--shared" && absl::SimpleAtoi(value, &v)) {
      s.shared_workers = v;
    } else if (flag == "--reuseport" && absl::SimpleAtoi(value, &v)) {
      s.reuseport = v != 0;
    } else if (flag == "--counters") {
      s.counters_path = value;
    } else if (flag == "--count" && absl::SimpleAtoi(value, &count)) {
    } else if (flag == "--loops" && absl::SimpleAtoi(value, &loops)) {
    } else if (flag == "--concurrency" && absl::SimpleAtoi(value, &concurrency)) {
    } else if (flag == "--payload" && absl::SimpleAtoi(value, &payload)) {
    } else if (flag == "--seconds" && absl::SimpleAtod(value, &seconds)) {
    } else if (flag == "--rate" && absl::SimpleAtod(value, &rate)) {
    } else if (flag == "--dir") {
      dir = value;
    } else {
      return Usage();
    }
  }
  if (role == "serve") return RunServer(s);
  // Load generators by hand, e.g. to profile a setup with perf.
  if (role == "tcp-load") {
    TcpRun run = RunTcpClosedLoop(Endpoint::Loopback(s.port), concurrency, seconds);
    printf("%.0f connections/s, %llu failed\n", static_cast<double>(run.completed) / run.seconds,
           static_cast<unsigned long long>(run.failed));
    return 0;
  }
  if (role == "udp-load") {
    UdpRun run = BlastUdp(Endpoint::Loopback(s.port), 64, payload, seconds, rate);
    printf("%.0f datagrams/s sent\n", run.sent_rate());
    return 0;
  }
  if (role == "udp-flood") {
    bool gso = false;
    UdpRun run = FloodUdp(Endpoint::Loopback(s.port), 64, payload, seconds, &gso);
    printf("%.0f datagrams/s sent%s\n", run.sent_rate(), gso ? " (GSO)" : "");
    return 0;
  }
  if (role == "read-loop") {
    int status = RunReadLoop("pipe", count, loops, dir);
    return status != 0 ? status : RunReadLoop("file", count, loops, dir);
  }
  return Usage();
}

}  // namespace
}  // namespace reuseport::bench

int main(int argc, char** argv) {
  using namespace reuseport::bench;
  signal(SIGPIPE, SIG_IGN);
  if (argc >= 2 && argv[1][0] != '-') return RunRole(argc, argv);
  Options o;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--quick") == 0) ApplyQuick(&o);
  }
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    bool has_value = i + 1 < argc;
    std::string v = has_value ? argv[i + 1] : "";
    bool ok = true;
    auto take = [&] { ++i; };
    if (a == "--quick") continue;
    if (a == "--no-netns") { o.own_netns = false; continue; }
    if (a == "--strict") { o.strict = true; continue; }
    if (a == "--no-runner-overhead") { o.overhead_runner = false; continue; }
    if (!has_value) return Usage();
    take();
    if (a == "--workers") ok = absl::SimpleAtoi(v, &o.workers) && o.workers >= 2;
    else if (a == "--seconds") ok = absl::SimpleAtod(v, &o.seconds) && o.seconds > 0;
    else if (a == "--warmup") ok = absl::SimpleAtod(v, &o.warmup) && o.warmup >= 0;
    else if (a == "--repetitions") ok = absl::SimpleAtoi(v, &o.repetitions) && o.repetitions >= 1;
    else if (a == "--concurrency") ok = absl::SimpleAtoi(v, &o.concurrency) && o.concurrency >= 1;
    else if (a == "--latency-samples") ok = absl::SimpleAtoi(v, &o.latency_samples) && o.latency_samples >= 1;
    else if (a == "--long-connections") ok = absl::SimpleAtoi(v, &o.long_connections) && o.long_connections >= 1;
    else if (a == "--udp-flows") ok = absl::SimpleAtoi(v, &o.udp_flows) && o.udp_flows >= 1;
    else if (a == "--udp-paced-fraction") ok = absl::SimpleAtod(v, &o.udp_paced_fraction) && o.udp_paced_fraction > 0;
    else if (a == "--read-count") ok = absl::SimpleAtoi(v, &o.read_count) && o.read_count >= 1000;
    else if (a == "--overhead-repetitions") ok = absl::SimpleAtoi(v, &o.overhead_repetitions) && o.overhead_repetitions >= 1;
    else if (a == "--overhead-slices") ok = absl::SimpleAtoi(v, &o.overhead_slices) && o.overhead_slices >= 1;
    else if (a == "--slice-seconds") ok = absl::SimpleAtod(v, &o.slice_seconds) && o.slice_seconds > 0;
    else if (a == "--groups") ok = absl::SimpleAtoi(v, &o.groups) && o.groups >= 1;
    else if (a == "--members-per-group") ok = absl::SimpleAtoi(v, &o.members_per_group) && o.members_per_group >= 1;
    else if (a == "--join-samples") ok = absl::SimpleAtoi(v, &o.join_samples) && o.join_samples >= 1;
    else if (a == "--scale-groups") ok = IntList(v, &o.scale_groups);
    else if (a == "--scale-members") ok = IntList(v, &o.scale_members);
    else if (a == "--scale-slices") ok = absl::SimpleAtoi(v, &o.scale_slices) && o.scale_slices >= 1;
    else if (a == "--churn-flows") ok = absl::SimpleAtoi(v, &o.churn_flows) && o.churn_flows >= 1;
    else if (a == "--kernel") o.kernel = v;
    else if (a == "--broker-flag") o.broker_flags.push_back(v);
    else if (a == "--json") o.json_path = v;
    else if (a == "--svg") o.svg_path = v;
    else if (a == "--time-limit") ok = absl::SimpleAtod(v, &o.time_limit) && o.time_limit > 0;
    else if (a == "--phases") {
      o.phases.clear();
      for (absl::string_view p : absl::StrSplit(v, ',', absl::SkipEmpty())) {
        bool known = false;
        for (const std::string& k : kAllPhases) known = known || k == p;
        if (!known) return Usage();
      }
      // Always in the suite's order, whatever order they were asked in.
      for (const std::string& k : kAllPhases) {
        for (absl::string_view p : absl::StrSplit(v, ',', absl::SkipEmpty())) {
          if (p == k) o.phases.push_back(k);
        }
      }
      ok = !o.phases.empty();
    } else {
      return Usage();
    }
    if (!ok) {
      fprintf(stderr, "reuseport_bench: bad value for %s: %s\n", a.c_str(), v.c_str());
      return Usage();
    }
  }
  return BenchSuite(std::move(o)).Run();
}
