// reuseport_bench: this project against the kernel's own SO_REUSEPORT, in the
// same run, on the same machine.
//
// Modes, interleaved over repetitions so drift hits all alike:
//   native    N processes with the kernel's SO_REUSEPORT (this kernel has it)
//   shared    one listener/socket shared by N forked workers (the usual fallback)
//   emulated  N processes under reuseport-legacy-kernel --kernel 3.2, sharing
//             through libreuseport.so and a reuseportd (also under the runner)
// TCP: short connections (connect, 64-byte request, 64-byte reply, close) from
// a closed loop of C in flight; idle first-byte latency. UDP: datagrams
// received per second from F flows sent as fast as possible, and loss.
// Server CPU per operation comes from the processes' own accounting.
//
// Runs in a network namespace of its own (loopback only) when it can.
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench_clients.h"
#include "bench_servers.h"
#include "subprocess.h"
#include "temp_dir.h"

namespace reuseport::bench {
namespace {

using testing::InheritedFd;
using testing::Subprocess;
using testing::SubprocessOptions;
using testing::TempDir;

struct Options {
  int workers = 4;
  double seconds = 3;
  int repetitions = 3;
  int concurrency = 32;
  std::vector<std::string> protocols = {"tcp", "udp"};
  int udp_flows = 64;
  std::vector<int> udp_payloads = {64};
  int latency_samples = 1000;
  std::string kernel = "3.2";
  std::string json_path;
  bool own_netns = true;
};

std::string Self() {
  char path[4096];
  ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  path[n > 0 ? n : 0] = '\0';
  return path;
}

// CPU seconds (user + system) of a process and, optionally, of its live children.
double CpuSeconds(pid_t pid, bool with_children) {
  auto one = [](pid_t p) -> double {
    std::ifstream in(absl::StrFormat("/proc/%d/stat", p));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t close_paren = text.rfind(')');
    if (close_paren == std::string::npos) return 0;
    std::vector<std::string> f = absl::StrSplit(text.substr(close_paren + 2), ' ');
    if (f.size() < 15) return 0;
    double utime = 0, stime = 0;
    absl::SimpleAtod(f[11], &utime);
    absl::SimpleAtod(f[12], &stime);
    return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  };
  double total = one(pid);
  if (!with_children) return total;
  std::ifstream children(absl::StrFormat("/proc/%d/task/%d/children", pid, pid));
  pid_t child;
  while (children >> child) total += one(child);
  return total;
}

bool LoopbackUpInNewNamespace() {
  if (unshare(CLONE_NEWNET) != 0) return false;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr {};
  strcpy(ifr.ifr_name, "lo");
  bool ok = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags |= IFF_UP;
  ok = ok && ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  close(fd);
  return ok;
}

class Broker {
 public:
  bool Start(const TempDir& dir, const std::string& kernel) {
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) != 0) return false;
    socket_ = dir.File("reuseportd.sock");
    SubprocessOptions p;
    p.argv = {REUSEPORT_BENCH_LEGACY_KERNEL, "--kernel", kernel, "--", REUSEPORT_BENCH_BROKER, "--socket", socket_,
              "--ready_fd", "3", "--log_level", "warning"};
    p.stderr_path = dir.File("reuseportd.log");
    p.inherited_fds = {{ready[1], 3}};
    auto s = Subprocess::Start(p);
    close(ready[1]);
    char buf[16] = {};
    bool ok = s.ok() && read(ready[0], buf, sizeof(buf) - 1) > 0;
    close(ready[0]);
    if (ok) process_.emplace(std::move(*s));
    return ok;
  }
  const std::string& socket() const { return socket_; }
  pid_t pid() const { return process_ ? process_->pid() : 0; }

 private:
  std::string socket_;
  std::optional<Subprocess> process_;
};

struct Trial {
  double rate = 0;        // operations per second (connections, or datagrams received)
  double fairness = 0;    // max/min handled per worker
  double cpu_us = 0;      // server-side CPU per operation (workers + broker)
  double loss = 0;        // UDP: fraction of sent datagrams not received
  double p50_us = 0, p99_us = 0;  // TCP idle first-byte latency
};

// A set of server processes for one trial.
class Servers {
 public:
  bool Start(const std::string& protocol, const std::string& mode, const Options& o, const Broker& broker,
             const TempDir& dir) {
    bool tcp = protocol == "tcp";
    if (mode == "shared") return StartOne({Self(), tcp ? "serve-tcp-shared" : "serve-udp-shared", "--workers",
                                           absl::StrCat(o.workers)}, false, o, broker, dir, true);
    for (int i = 0; i < o.workers; ++i) {
      if (!StartOne({Self(), tcp ? "serve-tcp" : "serve-udp"}, mode == "emulated", o, broker, dir, false)) return false;
    }
    return true;
  }

  uint16_t port() const { return port_; }

  double Cpu() const {
    double total = 0;
    for (const auto& p : processes_) total += CpuSeconds(p.pid(), shared_);
    return total;
  }

  // Stops the workers and returns what each handled.
  std::vector<uint64_t> Stop() {
    std::vector<uint64_t> served;
    for (auto& p : processes_) (void)p.Signal(SIGTERM);
    for (auto& p : processes_) {
      (void)p.Wait(absl::Seconds(20));
      for (absl::string_view line : absl::StrSplit(p.ReadStdout(), '\n', absl::SkipEmpty())) {
        uint64_t n = 0;
        if (absl::ConsumePrefix(&line, "served ") && absl::SimpleAtoi(line, &n)) served.push_back(n);
      }
    }
    processes_.clear();
    return served;
  }

 private:
  bool StartOne(std::vector<std::string> argv, bool emulated, const Options& o, const Broker& broker,
                const TempDir& dir, bool shared) {
    argv.push_back("--port");
    argv.push_back(absl::StrCat(port_));
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) != 0) return false;
    SubprocessOptions p;
    p.argv = std::move(argv);
    if (emulated) {
      p.argv.insert(p.argv.begin(), {REUSEPORT_BENCH_LEGACY_KERNEL, "--kernel", o.kernel, "--"});
      p.env = {{"LD_PRELOAD", REUSEPORT_BENCH_SHIM}, {"REUSEPORT_SOCKET", broker.socket()}};
    }
    p.stderr_path = dir.File("server.log");
    p.inherited_fds = {{ready[1], 3}};
    auto s = Subprocess::Start(p);
    close(ready[1]);
    char buf[16] = {};
    ssize_t n = s.ok() ? read(ready[0], buf, sizeof(buf) - 1) : -1;
    close(ready[0]);
    if (n <= 0) {
      fprintf(stderr, "bench: a server did not start (see %s)\n", dir.File("server.log").c_str());
      return false;
    }
    int port = 0;
    absl::SimpleAtoi(absl::StripAsciiWhitespace(buf), &port);
    port_ = static_cast<uint16_t>(port);
    shared_ = shared;
    processes_.push_back(std::move(*s));
    return true;
  }

  uint16_t port_ = 0;
  bool shared_ = false;
  std::vector<Subprocess> processes_;
};

sockaddr_storage Loopback(uint16_t port, socklen_t* len) {
  sockaddr_storage ss{};
  auto* a = reinterpret_cast<sockaddr_in*>(&ss);
  a->sin_family = AF_INET;
  a->sin_port = htons(port);
  a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  *len = sizeof(*a);
  return ss;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

double Median(std::vector<double> v) { return Percentile(std::move(v), 0.5); }

double Fairness(const std::vector<uint64_t>& served) {
  if (served.empty()) return 0;
  auto [lo, hi] = std::minmax_element(served.begin(), served.end());
  return *lo == 0 ? 0 : static_cast<double>(*hi) / static_cast<double>(*lo);
}

bool RunTrial(const std::string& protocol, const std::string& mode, int payload, const Options& o, const Broker& broker,
              const TempDir& dir, Trial* t) {
  Servers servers;
  if (!servers.Start(protocol, mode, o, broker, dir)) return false;
  socklen_t len;
  sockaddr_storage target = Loopback(servers.port(), &len);
  bool emulated = mode == "emulated";
  uint64_t ops = 0;
  if (protocol == "tcp") {
    RunTcpClosedLoop(target, len, o.concurrency, 0.3);  // warm up
    if (o.latency_samples > 0 && mode != "shared") {
      std::vector<double> samples = MeasureTcpFirstByte(target, len, o.latency_samples);
      t->p50_us = Percentile(samples, 0.5);
      t->p99_us = Percentile(samples, 0.99);
    }
    double cpu0 = servers.Cpu() + (emulated ? CpuSeconds(broker.pid(), false) : 0);
    TcpRun run = RunTcpClosedLoop(target, len, o.concurrency, o.seconds);
    double cpu1 = servers.Cpu() + (emulated ? CpuSeconds(broker.pid(), false) : 0);
    t->rate = static_cast<double>(run.completed) / run.seconds;
    ops = run.completed;
    t->cpu_us = ops ? (cpu1 - cpu0) * 1e6 / static_cast<double>(ops) : 0;
    std::vector<uint64_t> served = servers.Stop();
    t->fairness = Fairness(served);
    return true;
  }
  double cpu0 = servers.Cpu() + (emulated ? CpuSeconds(broker.pid(), false) : 0);
  UdpRun run = BlastUdp(target, len, o.udp_flows, payload, o.seconds, 0);
  usleep(200 * 1000);  // let queued datagrams drain before counting
  double cpu1 = servers.Cpu() + (emulated ? CpuSeconds(broker.pid(), false) : 0);
  std::vector<uint64_t> served = servers.Stop();
  uint64_t received = 0;
  for (uint64_t s : served) received += s;
  t->rate = static_cast<double>(received) / run.seconds;
  t->loss = run.sent ? 1.0 - static_cast<double>(received) / static_cast<double>(run.sent) : 0;
  t->cpu_us = received ? (cpu1 - cpu0) * 1e6 / static_cast<double>(received) : 0;
  t->fairness = Fairness(served);
  return true;
}

struct Series {
  std::string protocol, mode;
  int payload = 0;
  std::vector<Trial> trials;
  std::vector<double> Get(double Trial::*field) const {
    std::vector<double> v;
    for (const Trial& t : trials) v.push_back(t.*field);
    return v;
  }
};

const char* ModeName(const std::string& mode, const std::string& kernel) {
  static std::string emulated;
  if (mode == "native") return "native SO_REUSEPORT";
  if (mode == "shared") return "shared socket, N workers";
  emulated = "reuseport on " + kernel;
  return emulated.c_str();
}

int Run(const Options& o) {
  struct utsname u {};
  uname(&u);
  bool netns = o.own_netns && LoopbackUpInNewNamespace();
  absl::StatusOr<TempDir> dir = TempDir::Create("reuseport-bench");
  if (!dir.ok()) return 1;
  Broker broker;
  if (!broker.Start(*dir, o.kernel)) {
    fprintf(stderr, "bench: reuseportd did not start\n");
    return 1;
  }
  const std::vector<std::string> modes = {"native", "shared", "emulated"};
  std::vector<Series> series;
  for (const std::string& protocol : o.protocols) {
    std::vector<int> payloads = protocol == "udp" ? o.udp_payloads : std::vector<int>{0};
    for (int payload : payloads) {
      for (const std::string& mode : modes) series.push_back({protocol, mode, payload, {}});
    }
  }
  int total = static_cast<int>(series.size()) * o.repetitions, done = 0;
  for (int rep = 0; rep < o.repetitions; ++rep) {
    for (size_t k = 0; k < series.size(); k += modes.size()) {
      for (size_t j = 0; j < modes.size(); ++j) {
        // Rotate the order each repetition so no mode always runs first.
        Series& s = series[k + (j + static_cast<size_t>(rep)) % modes.size()];
        fprintf(stderr, "\r[%d/%d] %s%s %-9s repetition %d   ", ++done, total, s.protocol.c_str(),
                s.payload ? absl::StrCat("/", s.payload).c_str() : "", s.mode.c_str(), rep + 1);
        Trial t;
        if (!RunTrial(s.protocol, s.mode, s.payload, o, broker, *dir, &t)) return 1;
        s.trials.push_back(t);
      }
    }
  }
  fprintf(stderr, "\n");

  std::string json = absl::StrFormat(
      "{\"machine\":{\"kernel\":\"%s\",\"cpus\":%d,\"own_netns\":%s},\"workers\":%d,\"seconds\":%g,"
      "\"repetitions\":%d,\"concurrency\":%d,\"emulated_kernel\":\"%s\",\"results\":[",
      u.release, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)), netns ? "true" : "false", o.workers, o.seconds,
      o.repetitions, o.concurrency, o.kernel);
  printf("reuseport_bench: %d workers, %g s x %d repetitions, interleaved; Linux %s, %ld CPUs%s\n", o.workers,
         o.seconds, o.repetitions, u.release, sysconf(_SC_NPROCESSORS_ONLN), netns ? ", own network namespace" : "");
  printf("figures are medians (min-max); ratio = median / native median\n");
  bool first_json = true;
  for (size_t k = 0; k < series.size(); k += modes.size()) {
    const Series& native = series[k];
    bool tcp = native.protocol == "tcp";
    double base = Median(native.Get(&Trial::rate));
    printf("\n%s\n", tcp ? absl::StrFormat("TCP short connections (connect, %d-byte request, reply, close), %d in flight",
                                           kMessageBytes, o.concurrency).c_str()
                         : absl::StrFormat("UDP %d-byte datagrams from %d flows, sent as fast as possible", native.payload,
                                           o.udp_flows).c_str());
    if (tcp) {
      printf("%-26s %-26s %6s %-18s %-16s %-22s\n", "mode", "connections/s", "ratio", "fairness max/min",
             "server CPU us/conn", "idle first byte p50/p99 us");
    } else {
      printf("%-26s %-26s %6s %-18s %-16s %-10s\n", "mode", "datagrams/s received", "ratio", "fairness max/min",
             "server CPU us/dgram", "loss");
    }
    for (size_t j = 0; j < modes.size(); ++j) {
      const Series& s = series[k + j];
      std::vector<double> rates = s.Get(&Trial::rate);
      double ratio = base > 0 ? Median(rates) / base : 0;
      auto [lo, hi] = std::minmax_element(rates.begin(), rates.end());
      std::string rate = absl::StrFormat("%.0f (%.0f-%.0f)", Median(rates), *lo, *hi);
      std::string fair = absl::StrFormat("%.2f", Median(s.Get(&Trial::fairness)));
      std::string cpu = absl::StrFormat("%.1f", Median(s.Get(&Trial::cpu_us)));
      if (tcp) {
        std::string latency = s.mode == "shared" ? "-"
                                                 : absl::StrFormat("%.0f / %.0f", Median(s.Get(&Trial::p50_us)),
                                                                   Median(s.Get(&Trial::p99_us)));
        printf("%-26s %-26s %6.2f %-18s %-16s %-22s\n", ModeName(s.mode, o.kernel), rate.c_str(), ratio, fair.c_str(),
               cpu.c_str(), latency.c_str());
      } else {
        printf("%-26s %-26s %6.2f %-18s %-16s %.1f%%\n", ModeName(s.mode, o.kernel), rate.c_str(), ratio, fair.c_str(),
               cpu.c_str(), 100 * Median(s.Get(&Trial::loss)));
      }
      absl::StrAppendFormat(&json,
                            "%s{\"protocol\":\"%s\",\"payload\":%d,\"mode\":\"%s\",\"rate_median\":%.1f,\"rate_min\":%.1f,"
                            "\"rate_max\":%.1f,\"ratio\":%.3f,\"fairness\":%.3f,\"cpu_us_per_op\":%.2f,\"loss\":%.4f,"
                            "\"p50_us\":%.1f,\"p99_us\":%.1f,\"rates\":[%s]}",
                            first_json ? "" : ",", s.protocol, s.payload, s.mode, Median(rates), *lo, *hi, ratio,
                            Median(s.Get(&Trial::fairness)), Median(s.Get(&Trial::cpu_us)), Median(s.Get(&Trial::loss)),
                            Median(s.Get(&Trial::p50_us)), Median(s.Get(&Trial::p99_us)), absl::StrJoin(rates, ","));
      first_json = false;
    }
  }
  json += "]}\n";
  if (!o.json_path.empty()) {
    std::ofstream out(o.json_path);
    out << json;
    printf("\nresults: %s\n", o.json_path.c_str());
  }
  return 0;
}

int Usage() {
  fputs(
      "usage: reuseport_bench [--workers N] [--seconds S] [--repetitions R] [--concurrency C]\n"
      "                       [--protocols tcp,udp] [--udp-flows F] [--udp-payloads 64,1472]\n"
      "                       [--latency-samples N] [--kernel X.Y] [--json PATH] [--no-netns]\n",
      stderr);
  return 2;
}

}  // namespace
}  // namespace reuseport::bench

int main(int argc, char** argv) {
  using namespace reuseport::bench;
  signal(SIGPIPE, SIG_IGN);
  if (argc >= 2 && argv[1][0] != '-') {
    // Server roles, run by the orchestrator.
    std::string role = argv[1];
    uint16_t port = 0;
    int workers = 1;
    for (int i = 2; i + 1 < argc; i += 2) {
      int v = 0;
      absl::SimpleAtoi(argv[i + 1], &v);
      if (strcmp(argv[i], "--port") == 0) port = static_cast<uint16_t>(v);
      if (strcmp(argv[i], "--workers") == 0) workers = v;
    }
    if (role == "serve-tcp") return ServeTcpReuseport("127.0.0.1", port);
    if (role == "serve-tcp-shared") return ServeTcpShared("127.0.0.1", port, workers);
    if (role == "serve-udp") return ServeUdpReuseport("127.0.0.1", port);
    if (role == "serve-udp-shared") return ServeUdpShared("127.0.0.1", port, workers);
    return Usage();
  }
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--workers") absl::SimpleAtoi(next(), &o.workers);
    else if (a == "--seconds") absl::SimpleAtod(next(), &o.seconds);
    else if (a == "--repetitions") absl::SimpleAtoi(next(), &o.repetitions);
    else if (a == "--concurrency") absl::SimpleAtoi(next(), &o.concurrency);
    else if (a == "--protocols") o.protocols = absl::StrSplit(next(), ',', absl::SkipEmpty());
    else if (a == "--udp-flows") absl::SimpleAtoi(next(), &o.udp_flows);
    else if (a == "--udp-payloads") {
      o.udp_payloads.clear();
      for (absl::string_view p : absl::StrSplit(next(), ',', absl::SkipEmpty())) {
        int v = 0;
        if (absl::SimpleAtoi(p, &v) && v > 0 && v <= 65507) o.udp_payloads.push_back(v);
      }
    } else if (a == "--latency-samples") absl::SimpleAtoi(next(), &o.latency_samples);
    else if (a == "--kernel") o.kernel = next();
    else if (a == "--json") o.json_path = next();
    else if (a == "--no-netns") o.own_netns = false;
    else return Usage();
  }
  if (o.workers < 1 || o.seconds <= 0 || o.repetitions < 1 || o.concurrency < 1 || o.udp_payloads.empty()) return Usage();
  return Run(o);
}
