// The processes of a benchmark run: the broker, sets of workers in each mode,
// and what the kernel's accounting says about them (CPU time, resident memory).
#ifndef REUSEPORT_TESTS_BENCH_BENCH_PROCESSES_H_
#define REUSEPORT_TESTS_BENCH_BENCH_PROCESSES_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench_servers.h"
#include "json_value.h"
#include "subprocess.h"
#include "temp_dir.h"
#include "worker_counters.h"

namespace reuseport::bench {

// This program (the workers are roles of the same binary).
std::string SelfPath();

// On-CPU time of a process, all its threads, and optionally its descendants, in
// nanoseconds: the scheduler's own accounting (/proc/PID/task/*/schedstat), so
// a run of a fraction of a second is still measured to the microsecond.
int64_t CpuNanoseconds(pid_t pid, bool with_descendants);

// VmRSS of a process in KiB (/proc/PID/status), or -1.
long ResidentKiB(pid_t pid);

// A reuseportd under the legacy-kernel runner, as members on that kernel see it.
//
// Thread-compatible: one owner.
class Broker {
 public:
  // `name` names its socket and log in `dir`; `extra_args` are added to its
  // command line (e.g. --policy FILE). Returns once it wrote READY=1.
  bool Start(const testing::TempDir& dir, const std::string& name, const std::string& kernel,
             const std::vector<std::string>& extra_args = {});
  void Stop();

  const std::string& socket() const { return socket_; }
  pid_t pid() const { return process_ ? process_->pid() : 0; }
  const std::string& log_path() const { return log_; }
  // The broker's status document (RP_OP_STATUS, JSON), parsed.
  absl::StatusOr<ctl::JsonValue> Status() const;

 private:
  std::string socket_;
  std::string log_;
  std::optional<testing::Subprocess> process_;
};

// How a set of workers shares its port.
enum class ShareMode {
  kNative,     // one process per worker, the kernel's SO_REUSEPORT
  kShared,     // one socket, shared by forked workers (the usual fallback without SO_REUSEPORT)
  kEmulated,   // one process per worker under reuseport-legacy-kernel, sharing through the shim and broker
  kNativeShim, // as kNative, with the shim preloaded in REUSEPORT_MODE=auto (it must step aside)
};
const char* ShareModeName(ShareMode mode);

struct WorkerSetOptions {
  ServerKind kind = ServerKind::kTcpShort;
  ShareMode mode = ShareMode::kNative;
  int workers = 4;
  std::string kernel = "3.2";     // for kEmulated
  const Broker* broker = nullptr; // for kEmulated and kNativeShim
  const testing::TempDir* dir = nullptr;
  WorkerCounters* counters = nullptr;
  // Start the workers one after another (each bound before the next starts), so
  // the kernel's SO_REUSEPORT array holds them in id order; otherwise all but
  // the first start at once.
  bool one_by_one = false;
};

// Worker processes on one port, each with its own counter slot.
//
// Thread-compatible: one owner; the processes are killed when it goes.
class WorkerSet {
 public:
  WorkerSet() = default;
  WorkerSet(const WorkerSet&) = delete;
  WorkerSet& operator=(const WorkerSet&) = delete;
  ~WorkerSet() { Stop(); }

  // Starts the workers (the first on a free port, the others on its port) and
  // returns once every one is bound (and listening).
  bool Start(const WorkerSetOptions& options);
  // Another worker on the same port (not for kShared); its id is the next one.
  bool AddWorker();
  // SIGTERM to worker `index` and waits for its exit; its count stays readable.
  bool StopWorker(size_t index);
  // SIGTERM to all, and wait.
  void Stop();

  uint16_t port() const { return port_; }
  size_t size() const { return counts_slots_.size(); }
  // Worker ids (as kUdpIdent answers), by index.
  int id(size_t index) const { return ids_[index]; }
  bool running(size_t index) const { return running_[index]; }
  // What each worker handled so far (live, from the counter file).
  std::vector<uint64_t> Counts() const;
  uint64_t Total() const;
  // CPU of the workers (and of the prefork parent's children).
  int64_t CpuNanoseconds() const;

 private:
  bool Launch(int id, int slot, int ready_write_end, std::optional<testing::Subprocess>* out);

  WorkerSetOptions options_;
  uint16_t port_ = 0;
  std::vector<testing::Subprocess> processes_;
  std::vector<int> counts_slots_;
  std::vector<int> ids_;
  std::vector<bool> running_;
  int next_id_ = 1;
};

// Waits up to `timeout_ms` for a line on `fd` (a ready pipe) and returns it, or "".
std::string ReadReadyLine(int fd, int timeout_ms);

}  // namespace reuseport::bench

#endif  // REUSEPORT_TESTS_BENCH_BENCH_PROCESSES_H_
