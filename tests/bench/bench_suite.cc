#include "bench_suite.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench_clients.h"

namespace reuseport::bench {

void Progress::Plan(const std::string& phase, double seconds) { plan_.emplace_back(phase, seconds); }

double Progress::planned_total() const {
  double total = 0;
  for (const auto& [name, s] : plan_) total += s;
  return total;
}

double Progress::elapsed() const { return started_ < 0 ? 0 : Now() - started_; }

void Progress::BeginPhase(const std::string& phase) {
  if (started_ < 0) {
    started_ = Now();
    tty_ = isatty(STDERR_FILENO);
  }
  phase_ = phase;
  phase_started_ = Now();
  for (size_t i = 0; i < plan_.size(); ++i) {
    if (plan_[i].first == phase) current_ = i;
  }
}

void Progress::Step(const std::string& text) {
  double done = 0;
  for (size_t i = 0; i < current_ && i < plan_.size(); ++i) done += plan_[i].second;
  if (current_ < plan_.size()) done += std::min(Now() - phase_started_, plan_[current_].second * 0.95);
  double total = planned_total();
  int percent = total > 0 ? static_cast<int>(100 * done / total) : 0;
  std::string line = absl::StrFormat("[%3d%% %4.0fs of ~%.0fs] %s: %s", percent, elapsed(), total, phase_, text);
  if (tty_) {
    fprintf(stderr, "\r\033[K%s", line.c_str());
  } else {
    fprintf(stderr, "%s\n", line.c_str());
  }
  fflush(stderr);
}

void Progress::Done() {
  if (tty_) fprintf(stderr, "\r\033[K");
  fprintf(stderr, "bench: finished in %.0f s\n", elapsed());
}

namespace {

bool WriteProc(const char* path, const char* value) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write(fd, value, strlen(value)) == static_cast<ssize_t>(strlen(value));
  close(fd);
  return ok;
}

// A network namespace with only loopback, up: nothing else on the machine
// competes for its ports, sockets or sysctls.
bool LoopbackUpInNewNamespace() {
  if (unshare(CLONE_NEWNET) != 0) return false;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr {};
  strcpy(ifr.ifr_name, "lo");
  bool ok = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags |= IFF_UP;
  ok = ok && ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  close(fd);
  // Per-namespace settings: every mode makes hundreds of thousands of short
  // connections, so give the clients all the ephemeral ports there are.
  WriteProc("/proc/sys/net/ipv4/ip_local_port_range", "1024 65535");
  return ok;
}

// The broker test keeps thousands of links, and the churn test thousands of
// flows, open at once; raise the limit for us and our children (root may).
void RaiseFdLimit() {
  struct rlimit rl {};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rlim_t want = 1 << 17;
  if (rl.rlim_max < want) {
    struct rlimit higher = {want, want};
    if (setrlimit(RLIMIT_NOFILE, &higher) == 0) return;
  }
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
}

std::string MachineDescription(int* cpus, std::string* kernel, std::string* model) {
  struct utsname u {};
  uname(&u);
  *kernel = u.release;
  *cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      *model = line.substr(line.find(':') + 2);
      break;
    }
  }
  double mem_kib = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE) / 1024);
  return absl::StrFormat("Linux %s, %d CPUs (%s), %.0f GiB", *kernel, *cpus, *model, mem_kib / 1048576.0);
}

// The 1-minute load average: other work on the machine makes every figure
// noisier, so the report says how busy it was.
double LoadAverage() {
  std::ifstream in("/proc/loadavg");
  double load = -1;
  in >> load;
  return load;
}

// What the machine did besides us: CPU time of every CPU from /proc/stat,
// against our own (this process, its reaped descendants and the live broker).
struct MachineSample {
  double busy = 0, total = 0;  // seconds, all CPUs
  double ours = 0;             // seconds
};

MachineSample SampleMachine(pid_t broker) {
  MachineSample m;
  std::ifstream in("/proc/stat");
  std::string cpu;
  in >> cpu;
  double v[10] = {};
  for (double& x : v) in >> x;
  // user nice system idle iowait irq softirq steal guest guest_nice; guest time
  // is already in user. Interrupt time is left out of "busy": our own loopback
  // traffic is processed there and no process is charged for it. Steal (the
  // hypervisor running someone else) counts: it disturbs us as much.
  double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  m.busy = (v[0] + v[1] + v[2] + v[7]) / tick;
  m.total = (v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7]) / tick;
  struct rusage self {}, children {};
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  auto sec = [](const struct timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
  m.ours = sec(self.ru_utime) + sec(self.ru_stime) + sec(children.ru_utime) + sec(children.ru_stime) +
           static_cast<double>(CpuNanoseconds(broker, false)) * 1e-9;
  return m;
}

// The share of all CPUs that others used between two samples (in percent).
double ForeignPercent(const MachineSample& a, const MachineSample& b) {
  double total = b.total - a.total;
  if (total <= 0) return 0;
  return std::max(0.0, 100 * ((b.busy - a.busy) - (b.ours - a.ours)) / total);
}

}  // namespace

bool BenchSuite::Wanted(const std::string& phase) const {
  return std::find(o_.phases.begin(), o_.phases.end(), phase) != o_.phases.end();
}

WorkerSetOptions BenchSuite::Workers(ServerKind kind, ShareMode mode, int count, const Broker* broker) {
  WorkerSetOptions w;
  w.kind = kind;
  w.mode = mode;
  w.workers = count;
  w.kernel = o_.kernel;
  w.broker = broker != nullptr ? broker : &broker_;
  w.dir = &*dir_;
  w.counters = &counters_;
  return w;
}

void BenchSuite::Fail(const std::string& phase, const std::string& why) {
  fprintf(stderr, "\nbench: %s: %s\n", phase.c_str(), why.c_str());
  failures_.push_back(absl::StrCat(phase, ": ", why));
}

// Rough durations for the progress line (measured on a 2-vCPU VM).
double BenchSuite::PlannedSeconds(const std::string& phase) const {
  double trial = o_.seconds + o_.warmup + 0.3;
  if (phase == "tcp") return o_.repetitions * 3 * trial;
  if (phase == "latency") return 1.5 + o_.repetitions * 3 * o_.latency_samples * 150e-6;
  if (phase == "tcp-long") return o_.repetitions * 3 * (trial + 0.2);
  if (phase == "udp") return o_.repetitions * 9 * (o_.seconds + 0.5);
  if (phase == "overhead") {
    double variants = o_.overhead_runner ? 4 : 2;
    return 1 + o_.overhead_repetitions * variants * (o_.read_count * 2 * (o_.read_loops + 1) * 250e-9 + 0.06) +
           o_.overhead_slices * 2 * o_.slice_seconds + 1;
  }
  if (phase == "broker") {
    return 3 + o_.groups * o_.members_per_group * 150e-6 + o_.join_samples * 300e-6 +
           (o_.scale_groups.size() + o_.scale_members.size()) * (o_.scale_slices * o_.slice_seconds + 0.6) + 2;
  }
  if (phase == "churn") return 5;
  return 1;
}

int BenchSuite::Run() {
  RaiseFdLimit();
  bool netns = o_.own_netns && LoopbackUpInNewNamespace();
  if (o_.own_netns && !netns) fprintf(stderr, "bench: no network namespace of our own (not root?); using the host's\n");
  absl::StatusOr<testing::TempDir> dir = testing::TempDir::Create("reuseport-bench");
  if (!dir.ok()) {
    fprintf(stderr, "bench: %s\n", std::string(dir.status().message()).c_str());
    return 1;
  }
  dir_.emplace(std::move(*dir));
  if (!counters_.Map(dir_->File("counters"), true)) {
    fprintf(stderr, "bench: cannot create the counter file\n");
    return 1;
  }
  if (!broker_.Start(*dir_, "reuseportd", o_.kernel, o_.broker_flags)) {
    fprintf(stderr, "bench: reuseportd did not start (see %s)\n", broker_.log_path().c_str());
    return 1;
  }
  // Every loop below is bounded by time or count; this is the last resort if
  // something hangs all the same (the children die with us: PR_SET_PDEATHSIG).
  std::thread([limit = o_.time_limit] {
    double end = Now() + limit;
    while (Now() < end) usleep(200 * 1000);
    fprintf(stderr, "\nbench: still running after %.0f s; giving up\n", limit);
    _exit(3);
  }).detach();

  int cpus = 0;
  std::string kernel, model;
  std::string machine = MachineDescription(&cpus, &kernel, &model);
  printf("reuseport benchmark suite%s: %s; %d workers; %s\n", o_.quick ? " (quick)" : "", machine.c_str(), o_.workers,
         netns ? "loopback in a network namespace of its own" : "host network namespace");
  double load_before = LoadAverage();
  printf("figures are medians of interleaved repetitions, (min..max) over them; ratio = mode / native\n");
  printf("load average before the run: %.2f%s\n", load_before,
         load_before > 0.5 ? " (other work on the machine: expect noisy figures)" : "");
  fflush(stdout);

  for (const std::string& phase : o_.phases) progress_.Plan(phase, PlannedSeconds(phase));
  struct PhaseFn {
    const char* name;
    bool (BenchSuite::*fn)();
  };
  const PhaseFn phases[] = {{"tcp", &BenchSuite::TcpShort},        {"latency", &BenchSuite::IdleLatency},
                            {"tcp-long", &BenchSuite::TcpPersistent}, {"udp", &BenchSuite::Udp},
                            {"overhead", &BenchSuite::Overhead},   {"broker", &BenchSuite::BrokerScale},
                            {"churn", &BenchSuite::Churn}};
  JsonObject timing, foreign;
  MachineSample run_start = SampleMachine(broker_.pid());
  for (const PhaseFn& p : phases) {
    if (!Wanted(p.name)) continue;
    progress_.BeginPhase(p.name);
    progress_.Step("starting");
    double t0 = Now();
    MachineSample m0 = SampleMachine(broker_.pid());
    if (!(this->*p.fn)()) Fail(p.name, "did not complete; its figures are missing");
    double other = ForeignPercent(m0, SampleMachine(broker_.pid()));
    timing.Number(p.name, Now() - t0);
    foreign.Number(p.name, other);
    printf("   (other processes used %.0f%% of the CPUs during this phase%s)\n", other,
           other > 10 ? ": its figures are disturbed" : "");
    fflush(stdout);
  }
  double foreign_total = ForeignPercent(run_start, SampleMachine(broker_.pid()));
  progress_.Done();
  broker_.Stop();
  double load_after = LoadAverage();

  JsonObject header;
  JsonObject machine_json;
  machine_json.String("description", machine).String("kernel", kernel).Integer("cpus", cpus).String("cpu_model", model)
      .Bool("own_netns", netns).Number("load_average_before", load_before).Number("load_average_after", load_after);
  JsonObject options;
  options.Bool("quick", o_.quick).Integer("workers", o_.workers).Number("seconds", o_.seconds)
      .Number("warmup", o_.warmup).Integer("repetitions", o_.repetitions).Integer("concurrency", o_.concurrency)
      .Integer("latency_samples", o_.latency_samples).Integer("long_connections", o_.long_connections)
      .Integer("udp_flows", o_.udp_flows).Number("udp_paced_fraction", o_.udp_paced_fraction)
      .Integer("read_count", o_.read_count).Integer("overhead_repetitions", o_.overhead_repetitions)
      .Integer("groups", o_.groups).Integer("members_per_group", o_.members_per_group)
      .Integer("join_samples", o_.join_samples).Integer("churn_flows", o_.churn_flows)
      .String("emulated_kernel", o_.kernel);
  std::vector<std::string> failures;
  for (const std::string& f : failures_) failures.push_back(JsonQuote(f));
  header.String("benchmark", "reuseport").Raw("machine", machine_json.str()).Raw("options", options.str())
      .Raw("phase_seconds", timing.str()).Number("total_seconds", progress_.elapsed())
      .Raw("other_processes_cpu_percent_by_phase", foreign.str()).Number("other_processes_cpu_percent", foreign_total)
      .Raw("failures", JsonArray(failures));

  printf("\n== Targets (%s; load average %.2f before, %.2f after; other processes used %.0f%% of the CPUs)\n",
         machine.c_str(), load_before, load_after, foreign_total);
  report_.PrintTable(stdout);
  if (!o_.json_path.empty()) {
    std::ofstream out(o_.json_path);
    out << report_.Json(header);
    printf("results: %s\n", o_.json_path.c_str());
  }
  if (!o_.svg_path.empty()) {
    std::ofstream out(o_.svg_path);
    out << report_.Svg(absl::StrFormat("reuseport on Linux %s (emulated) vs native SO_REUSEPORT", o_.kernel),
                       absl::StrFormat("%s; %d workers; medians of %d interleaved repetitions%s", machine, o_.workers,
                                       o_.repetitions, o_.quick ? " (quick run)" : ""));
    printf("chart: %s\n", o_.svg_path.c_str());
  }
  for (const std::string& f : failures_) printf("FAILED: %s\n", f.c_str());
  if (!failures_.empty()) return 1;
  return o_.strict && report_.missed() > 0 ? 1 : 0;
}

}  // namespace reuseport::bench
