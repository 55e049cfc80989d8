#include "bench_processes.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "status_client.h"

namespace reuseport::bench {

using testing::Subprocess;
using testing::SubprocessOptions;

std::string SelfPath() {
  char path[4096];
  ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  path[n > 0 ? n : 0] = '\0';
  return path;
}

namespace {

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<pid_t> TasksOf(pid_t pid) {
  std::vector<pid_t> tasks;
  std::string dir = absl::StrFormat("/proc/%d/task", pid);
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return tasks;
  while (struct dirent* e = readdir(d)) {
    int tid = 0;
    if (absl::SimpleAtoi(e->d_name, &tid)) tasks.push_back(tid);
  }
  closedir(d);
  return tasks;
}

int64_t CpuOfTree(pid_t pid, bool with_descendants, int depth) {
  int64_t total = 0;
  for (pid_t tid : TasksOf(pid)) {
    std::string stat = ReadSmallFile(absl::StrFormat("/proc/%d/task/%d/schedstat", pid, tid));
    int64_t ns = 0;
    std::istringstream(stat) >> ns;
    total += ns;
    if (with_descendants && depth < 4) {
      std::istringstream children(ReadSmallFile(absl::StrFormat("/proc/%d/task/%d/children", pid, tid)));
      pid_t child;
      while (children >> child) total += CpuOfTree(child, true, depth + 1);
    }
  }
  return total;
}

}  // namespace

int64_t CpuNanoseconds(pid_t pid, bool with_descendants) {
  if (pid <= 0) return 0;
  return CpuOfTree(pid, with_descendants, 0);
}

long ResidentKiB(pid_t pid) {
  std::istringstream in(ReadSmallFile(absl::StrFormat("/proc/%d/status", pid)));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view v = line;
    if (absl::ConsumePrefix(&v, "VmRSS:")) {
      v = absl::StripAsciiWhitespace(v);
      absl::ConsumeSuffix(&v, " kB");
      long kib = -1;
      return absl::SimpleAtoi(v, &kib) ? kib : -1;
    }
  }
  return -1;
}

std::string ReadReadyLine(int fd, int timeout_ms) {
  std::string line;
  double deadline_ms = timeout_ms;
  while (deadline_ms > 0 && line.find('\n') == std::string::npos) {
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, 100);
    deadline_ms -= 100;
    if (r <= 0) continue;
    char buf[64];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
  }
  return line.find('\n') == std::string::npos ? "" : line;
}

bool Broker::Start(const testing::TempDir& dir, const std::string& name, const std::string& kernel,
                   const std::vector<std::string>& extra_args) {
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return false;
  socket_ = dir.File(name + ".sock");
  log_ = dir.File(name + ".log");
  SubprocessOptions p;
  p.argv = {REUSEPORT_BENCH_LEGACY_KERNEL, "--kernel", kernel, "--", REUSEPORT_BENCH_BROKER, "--socket", socket_,
            "--ready_fd", "3", "--log_level", "warning"};
  p.argv.insert(p.argv.end(), extra_args.begin(), extra_args.end());
  p.unset_env = {"LD_PRELOAD"};
  p.stdout_path = log_;
  p.stderr_path = log_;
  p.inherited_fds = {{ready[1], 3}};
  auto s = Subprocess::Start(p);
  close(ready[1]);
  bool ok = s.ok() && !ReadReadyLine(ready[0], 10000).empty();
  close(ready[0]);
  if (ok) process_.emplace(std::move(*s));
  return ok;
}

void Broker::Stop() {
  if (!process_) return;
  (void)process_->Signal(SIGTERM);
  (void)process_->Wait(absl::Seconds(10));
  process_.reset();
}

absl::StatusOr<ctl::JsonValue> Broker::Status() const {
  absl::StatusOr<std::string> text = ctl::FetchStatus(socket_, RP_STATUS_JSON, 10000);
  if (!text.ok()) return text.status();
  return ctl::ParseJson(*text);
}

const char* ShareModeName(ShareMode mode) {
  switch (mode) {
    case ShareMode::kNative: return "native";
    case ShareMode::kShared: return "shared";
    case ShareMode::kEmulated: return "emulated";
    case ShareMode::kNativeShim: return "native+shim";
  }
  return "?";
}

namespace {

const char* KindName(ServerKind kind) {
  switch (kind) {
    case ServerKind::kTcpShort: return "tcp-short";
    case ServerKind::kTcpLong: return "tcp-long";
    case ServerKind::kUdpCount: return "udp-count";
    case ServerKind::kUdpIdent: return "udp-ident";
  }
  return "?";
}

}  // namespace

bool WorkerSet::Launch(int id, int slot, int ready_write_end, std::optional<Subprocess>* out) {
  const WorkerSetOptions& o = options_;
  bool shared = o.mode == ShareMode::kShared;
  SubprocessOptions p;
  p.argv = {SelfPath(), "serve", "--kind", KindName(o.kind), "--port", absl::StrCat(port_), "--slot",
            absl::StrCat(slot), "--id", absl::StrCat(id), "--counters", o.dir->File("counters")};
  if (shared) p.argv.insert(p.argv.end(), {"--shared", absl::StrCat(o.workers), "--reuseport", "0"});
  p.unset_env = {"LD_PRELOAD", "REUSEPORT_MODE"};
  if (o.mode == ShareMode::kEmulated) {
    p.argv.insert(p.argv.begin(), {REUSEPORT_BENCH_LEGACY_KERNEL, "--kernel", o.kernel, "--"});
    p.env = {{"LD_PRELOAD", REUSEPORT_BENCH_SHIM}, {"REUSEPORT_SOCKET", o.broker->socket()}};
  } else if (o.mode == ShareMode::kNativeShim) {
    p.env = {{"LD_PRELOAD", REUSEPORT_BENCH_SHIM},
             {"REUSEPORT_SOCKET", o.broker->socket()},
             {"REUSEPORT_MODE", "auto"}};
  }
  std::string log = o.dir->File(absl::StrCat("worker-", slot, ".log"));
  p.stdout_path = log;
  p.stderr_path = log;
  p.inherited_fds = {{ready_write_end, 3}};
  auto s = Subprocess::Start(p);
  if (!s.ok()) {
    fprintf(stderr, "\nbench: cannot start a worker: %s\n", std::string(s.status().message()).c_str());
    return false;
  }
  out->emplace(std::move(*s));
  return true;
}

bool WorkerSet::Start(const WorkerSetOptions& options) {
  options_ = options;
  port_ = 0;
  bool shared = options.mode == ShareMode::kShared;
  int first_slot = options.counters->Allocate(options.workers);
  int launches = shared ? 1 : options.workers;
  std::vector<int> read_ends;
  for (int i = 0; i < launches; ++i) {
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) != 0) return false;
    std::optional<Subprocess> s;
    bool ok = Launch(next_id_, first_slot + i, ready[1], &s);
    close(ready[1]);
    if (!ok) {
      close(ready[0]);
      return false;
    }
    processes_.push_back(std::move(*s));
    running_.push_back(true);
    if (i == 0 || options.one_by_one) {
      // The first worker picks the port; the others join it.
      std::string line = ReadReadyLine(ready[0], 10000);
      close(ready[0]);
      int port = 0;
      if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &port) || port == 0 || (i > 0 && port != port_)) {
        fprintf(stderr, "\nbench: a %s worker did not start (see %s)\n", ShareModeName(options.mode),
                processes_.back().stderr_path().c_str());
        return false;
      }
      port_ = static_cast<uint16_t>(port);
    } else {
      read_ends.push_back(ready[0]);
    }
    ++next_id_;
  }
  bool ok = true;
  for (size_t i = 0; i < read_ends.size(); ++i) {
    if (ReadReadyLine(read_ends[i], 10000).empty() && ok) {
      fprintf(stderr, "\nbench: a %s worker did not start (see %s)\n", ShareModeName(options.mode),
              processes_[i + 1].stderr_path().c_str());
      ok = false;
    }
    close(read_ends[i]);
  }
  for (int i = 0; i < options.workers; ++i) {
    counts_slots_.push_back(first_slot + i);
    ids_.push_back(shared ? 0 : i + 1);
  }
  return ok;
}

bool WorkerSet::AddWorker() {
  if (options_.mode == ShareMode::kShared || port_ == 0) return false;
  int slot = options_.counters->Allocate(1);
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return false;
  std::optional<Subprocess> s;
  bool ok = Launch(next_id_, slot, ready[1], &s);
  close(ready[1]);
  ok = ok && !ReadReadyLine(ready[0], 10000).empty();
  close(ready[0]);
  if (!ok) return false;
  processes_.push_back(std::move(*s));
  running_.push_back(true);
  counts_slots_.push_back(slot);
  ids_.push_back(next_id_++);
  return true;
}

bool WorkerSet::StopWorker(size_t index) {
  if (index >= processes_.size() || !running_[index]) return false;
  (void)processes_[index].Signal(SIGTERM);
  bool ok = processes_[index].Wait(absl::Seconds(10)).ok();
  running_[index] = false;
  return ok;
}

void WorkerSet::Stop() {
  for (size_t i = 0; i < processes_.size(); ++i) {
    if (running_[i]) (void)processes_[i].Signal(SIGTERM);
  }
  for (size_t i = 0; i < processes_.size(); ++i) {
    if (running_[i]) (void)processes_[i].Wait(absl::Seconds(10));
    running_[i] = false;
  }
}

std::vector<uint64_t> WorkerSet::Counts() const {
  std::vector<uint64_t> counts;
  for (int slot : counts_slots_) counts.push_back(options_.counters->Read(slot));
  return counts;
}

uint64_t WorkerSet::Total() const {
  uint64_t total = 0;
  for (uint64_t c : Counts()) total += c;
  return total;
}

int64_t WorkerSet::CpuNanoseconds() const {
  int64_t total = 0;
  for (size_t i = 0; i < processes_.size(); ++i) {
    if (running_[i]) total += bench::CpuNanoseconds(processes_[i].pid(), options_.mode == ShareMode::kShared);
  }
  return total;
}

}  // namespace reuseport::bench
