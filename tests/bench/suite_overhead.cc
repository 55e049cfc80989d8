// What the shim costs where it has nothing to do: read() on fds it does not
// manage, and a server whose SO_REUSEPORT the kernel provides (REUSEPORT_MODE=
// auto on this kernel: the shim must step aside).
#include <stdio.h>

#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench_clients.h"
#include "bench_suite.h"

namespace reuseport::bench {

namespace {

struct ReadVariant {
  const char* name;
  bool runner;
  bool shim;
};

struct ReadResult {
  double wall_ns = 0, cpu_ns = 0;       // the fastest whole loop
  double paired_percent = 0;            // read() over libc's read, alternating chunks
};

Spread PercentOver(const Spread& ratio) {
  Spread p = ratio;
  p.median = 100 * (ratio.median - 1);
  p.min = 100 * (ratio.min - 1);
  p.max = 100 * (ratio.max - 1);
  for (double& v : p.values) v = 100 * (v - 1);
  return p;
}

Spread PercentUnder(const Spread& ratio) {
  Spread p = ratio;
  p.median = 100 * (1 - ratio.median);
  p.min = 100 * (1 - ratio.max);
  p.max = 100 * (1 - ratio.min);
  for (double& v : p.values) v = 100 * (1 - v);
  return p;
}

}  // namespace

bool BenchSuite::Overhead() {
  // 1. read() loops in a fresh process per run, the variants interleaved.
  std::vector<ReadVariant> variants = {{"plain", false, false}, {"shim", false, true}};
  if (o_.overhead_runner) {
    variants.push_back({"runner", true, false});
    variants.push_back({"runner+shim", true, true});
  }
  const char* kinds[] = {"pipe", "file"};
  // results[kind][variant] = one per repetition
  std::map<std::string, std::map<std::string, std::vector<ReadResult>>> results;
  for (int rep = 0; rep < o_.overhead_repetitions; ++rep) {
    for (size_t j = 0; j < variants.size(); ++j) {
      const ReadVariant& v = variants[(j + static_cast<size_t>(rep)) % variants.size()];
      progress_.Step(absl::StrFormat("%s read() loops (%s calls), %s, repetition %d/%d", "pipe and file",
                                     FormatNumber(static_cast<double>(o_.read_count), 0), v.name, rep + 1,
                                     o_.overhead_repetitions));
      testing::SubprocessOptions p;
      p.argv = {SelfPath(), "read-loop", "--count", absl::StrCat(o_.read_count), "--loops", absl::StrCat(o_.read_loops),
                "--dir", dir_->path()};
      if (v.runner) p.argv.insert(p.argv.begin(), {REUSEPORT_BENCH_LEGACY_KERNEL, "--kernel", o_.kernel, "--"});
      p.unset_env = {"LD_PRELOAD", "REUSEPORT_MODE"};
      if (v.shim) {
        p.env = {{"LD_PRELOAD", REUSEPORT_BENCH_SHIM}, {"REUSEPORT_SOCKET", broker_.socket()}, {"REUSEPORT_MODE", "auto"}};
      }
      p.stdout_path = dir_->File("read-loop.out");
      p.stderr_path = dir_->File("read-loop.err");
      auto s = testing::Subprocess::Start(p);
      if (!s.ok()) return false;
      absl::StatusOr<int> status = s->Wait(absl::Seconds(60));
      if (!status.ok() || *status != 0) {
        fprintf(stderr, "\nbench: the read() loop failed (%s): %s\n", v.name, s->ReadStderr().c_str());
        return false;
      }
      for (absl::string_view line : absl::StrSplit(s->ReadStdout(), '\n', absl::SkipEmpty())) {
        std::vector<std::string> f = absl::StrSplit(line, ' ');
        ReadResult r;
        if (f.size() == 11 && absl::SimpleAtod(f[2], &r.wall_ns) && absl::SimpleAtod(f[4], &r.cpu_ns) &&
            absl::SimpleAtod(f[10], &r.paired_percent)) {
          results[f[0]][v.name].push_back(r);
        }
      }
    }
  }

  // 2. A native-mode TCP server with the shim preloaded against one without,
  // both running, measured in alternating slices.
  WorkerSet plain, shimmed;
  progress_.Step("starting native TCP workers with and without the shim");
  if (!plain.Start(Workers(ServerKind::kTcpShort, ShareMode::kNative, o_.workers)) ||
      !shimmed.Start(Workers(ServerKind::kTcpShort, ShareMode::kNativeShim, o_.workers))) {
    return false;
  }
  bool stepped_aside = true;
  if (absl::StatusOr<ctl::JsonValue> st = broker_.Status(); st.ok()) {
    for (const ctl::JsonValue& g : (*st)["groups"].array) {
      if (static_cast<int>(g["port"].AsNumber()) == shimmed.port()) stepped_aside = false;
    }
  }
  WorkerSet* sets[2] = {&plain, &shimmed};
  std::vector<double> rate[2], cpu[2];
  for (WorkerSet* s : sets) RunTcpClosedLoop(Endpoint::Loopback(s->port()), o_.concurrency, o_.warmup);
  for (int k = 0; k < o_.overhead_slices; ++k) {
    progress_.Step(absl::StrFormat("native TCP with and without the shim, alternating slices, %d/%d", k + 1,
                                   o_.overhead_slices));
    for (int j = 0; j < 2; ++j) {
      int m = (j + k) % 2;
      int64_t c0 = sets[m]->CpuNanoseconds();
      TcpRun run = RunTcpClosedLoop(Endpoint::Loopback(sets[m]->port()), o_.concurrency, o_.slice_seconds);
      int64_t c1 = sets[m]->CpuNanoseconds();
      rate[m].push_back(static_cast<double>(run.completed) / run.seconds);
      cpu[m].push_back(static_cast<double>(c1 - c0) / 1e3 / static_cast<double>(std::max<uint64_t>(run.completed, 1)));
    }
  }
  plain.Stop();
  shimmed.Stop();

  // The figures. A difference of a few percent drowns in the noise of a
  // shared VM unless both sides see the same moments: the judged figures pair
  // measurements milliseconds apart (chunks of reads inside one process, slices
  // of load on two servers running side by side). Process against process is
  // printed too: the best of each variant (noise only ever adds time) and the
  // medians with the range of the per-repetition pairs.
  JsonObject section;
  printf("\n== Overhead where the shim does nothing: %d processes per variant, interleaved, each timing %d loops of %s"
         " read() calls and keeping the fastest\n",
         o_.overhead_repetitions, o_.read_loops, FormatNumber(static_cast<double>(o_.read_count), 0).c_str());
  printf("%-6s %-13s %-12s %-26s %-10s %-26s %-26s\n", "fd", "variant", "CPU ns best", "CPU ns/read median (range)",
         "best vs", "median vs plain (pairs)", "wall ns/read median");
  for (const char* kind : kinds) {
    auto& r = results[kind];
    auto cpu_of = [&](const char* name) {
      std::vector<double> v;
      for (const ReadResult& x : r[name]) v.push_back(x.cpu_ns);
      return v;
    };
    const std::vector<double> plain_cpu = cpu_of("plain"), runner_cpu = cpu_of("runner");
    double plain_best = Summarize(plain_cpu).min, runner_best = Summarize(runner_cpu).min;
    JsonObject jk;
    for (const ReadVariant& v : variants) {
      std::vector<double> wall, cpun = cpu_of(v.name);
      for (const ReadResult& x : r[v.name]) wall.push_back(x.wall_ns);
      Spread sw = Summarize(wall), sc = Summarize(cpun);
      bool plain_row = std::string(v.name) == "plain", runner_shim = std::string(v.name) == "runner+shim";
      // runner+shim is compared with runner: the shim's cost under the runner.
      double base_best = runner_shim ? runner_best : plain_best;
      double best_over = base_best > 0 ? 100 * (sc.min / base_best - 1) : 0;
      Spread over_cpu = PercentOver(PairedRatio(cpun, runner_shim ? runner_cpu : plain_cpu));
      printf("%-6s %-13s %-12s %-26s %-10s %-26s %s\n", kind, v.name, FormatNumber(sc.min, 1).c_str(),
             FormatSpread(sc, 1).c_str(),
             plain_row ? "-" : absl::StrFormat("%+.2f%%", best_over).c_str(),
             plain_row ? "-" : (FormatSpread(over_cpu, 2) + " %").c_str(), FormatSpread(sw, 1).c_str());
      JsonObject jv;
      jv.SpreadOf("cpu_ns_per_read", sc).SpreadOf("wall_ns_per_read", sw);
      if (!plain_row) {
        jv.String("compared_with", runner_shim ? "runner" : "plain").Number("best_cpu_percent_over", best_over)
            .SpreadOf("median_cpu_percent_over", over_cpu);
      }
      jk.Raw(v.name, jv.str());
      if (std::string(v.name) == "shim") {
        // The judged figure: in each process, read() against libc's read in
        // alternating chunks; with the shim preloaded that is the hook's cost,
        // without it the method's own bias, which is subtracted.
        std::vector<double> with_shim, without;
        for (const ReadResult& x : r["shim"]) with_shim.push_back(x.paired_percent);
        for (const ReadResult& x : r["plain"]) without.push_back(x.paired_percent);
        Spread paired = Summarize(with_shim);
        double bias = Median(without);
        for (double& d : paired.values) d -= bias;
        paired.median -= bias;
        paired.min -= bias;
        paired.max -= bias;
        printf("%-6s paired in-process: read() through the shim vs libc's read %s %% (%s %% in processes without"
               " the shim, subtracted)\n", kind, FormatSpread(paired, 2).c_str(), FormatNumber(bias, 2).c_str());
        jk.SpreadOf("paired_shim_percent", paired).Number("paired_method_bias_percent", bias);
        report_.AtMost(absl::StrCat("overhead.read_", kind),
                       absl::StrFormat("Shim overhead: read() on a %s, CPU, paired in-process (1M per process)", kind),
                       paired, 2, 2, "%");
        report_.Info(absl::StrCat("overhead.read_", kind, "_processes"),
                     absl::StrFormat("Shim overhead: 1M read() on a %s, process with / without: best, medians", kind),
                     absl::StrFormat("%+.2f%%, %s %%", best_over, FormatSpread(over_cpu, 2)), best_over);
        Spread bar = paired;
        for (double* d : {&bar.median, &bar.min, &bar.max}) *d = 1 + *d / 100;
        report_.AddBar({"Shim overhead (lower is better)",
                        absl::StrFormat("read() on a %s: CPU time through the shim / without", kind), bar, 1.02, false,
                        "shim"});
      }
      if (std::string(v.name) == "runner") {
        report_.Info(absl::StrCat("overhead.runner_read_", kind),
                     absl::StrFormat("Legacy-kernel runner (seccomp) alone: read() on a %s, CPU over plain", kind),
                     absl::StrFormat("%+.1f%% best, %s %% medians", best_over, FormatSpread(over_cpu, 1)), best_over);
      }
    }
    section.Raw(absl::StrCat("read_", kind), jk.str());
  }

  Spread ratio = PairedRatio(rate[1], rate[0]);
  Spread cost = PercentUnder(ratio);
  Spread cpu_over = PercentOver(PairedRatio(cpu[1], cpu[0]));
  Spread r0 = Summarize(rate[0]), r1 = Summarize(rate[1]), c0 = Summarize(cpu[0]), c1 = Summarize(cpu[1]);
  double best_cost = r0.max > 0 ? 100 * (1 - r1.max / r0.max) : 0;
  double best_cpu_over = c0.min > 0 ? 100 * (c1.min / c0.min - 1) : 0;
  printf("\n   native-mode TCP short connections, %d slices of %.2g s per server, alternating\n", o_.overhead_slices,
         o_.slice_seconds);
  printf("%-26s %-12s %-28s %-12s %-26s\n", "server", "best conn/s", "connections/s median (range)", "best CPU us",
         "server CPU us/conn median");
  printf("%-26s %-12s %-28s %-12s %-26s\n", "without the shim", FormatNumber(r0.max, 0).c_str(),
         FormatSpread(r0, 0).c_str(), FormatNumber(c0.min, 2).c_str(), FormatSpread(c0, 2).c_str());
  printf("%-26s %-12s %-28s %-12s %-26s\n", "shim, REUSEPORT_MODE=auto", FormatNumber(r1.max, 0).c_str(),
         FormatSpread(r1, 0).c_str(), FormatNumber(c1.min, 2).c_str(), FormatSpread(c1, 2).c_str());
  printf("   rate cost: best %+.2f%%, medians %s %%; CPU per connection: best %+.2f%%, medians %s %%; the shim %s\n",
         best_cost, FormatSpread(cost, 2).c_str(), best_cpu_over, FormatSpread(cpu_over, 2).c_str(),
         stepped_aside ? "stepped aside (no group in the broker)" : "DID NOT step aside (the broker has its group)");
  JsonObject tcp;
  tcp.SpreadOf("without_shim_connections_per_second", r0).SpreadOf("with_shim_connections_per_second", r1)
      .SpreadOf("rate_ratio", ratio).Number("best_rate_cost_percent", best_cost).SpreadOf("median_rate_cost_percent", cost)
      .SpreadOf("without_shim_cpu_us", c0).SpreadOf("with_shim_cpu_us", c1).Number("best_cpu_percent_over", best_cpu_over)
      .SpreadOf("median_cpu_percent_over", cpu_over).Bool("shim_stepped_aside", stepped_aside);
  section.Raw("native_tcp", tcp.str());
  report_.AtMost("overhead.native_tcp_rate",
                 absl::StrFormat("Shim overhead: native-mode TCP server, rate cost (%d slice pairs)", o_.overhead_slices),
                 cost, 2, 2, "%");
  report_.Info("overhead.native_tcp_rate_best", "Shim overhead: native-mode TCP server, rate cost, best slice vs best",
               absl::StrFormat("%+.2f%%", best_cost), best_cost);
  report_.Info("overhead.native_tcp_cpu", "Shim overhead: native-mode TCP server, CPU per connection",
               absl::StrFormat("%+.2f%% best, %s %% medians", best_cpu_over, FormatSpread(cpu_over, 2)), best_cpu_over);
  if (!stepped_aside) {
    report_.Judged("overhead.shim_steps_aside", "Shim in REUSEPORT_MODE=auto leaves native SO_REUSEPORT to the kernel",
                   "the broker got a group", 0, "no group in the broker", false, "the shim did not step aside");
  }
  report_.AddBar({"Shim overhead (higher is better)", "native TCP server: connections/s with / without", ratio, 0.98,
                  true, "shim"});
  report_.AddSection("overhead", section);
  return true;
}

}  // namespace reuseport::bench
