#ifndef REUSEPORT_TESTS_SUPPORT_SUBPROCESS_H_
#define REUSEPORT_TESTS_SUPPORT_SUBPROCESS_H_

#include <sys/resource.h>
#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace reuseport::testing {

class TempDir;

// An fd of the test process that the child receives under another number,
// e.g. {pipe_write_end, 3}.
struct InheritedFd {
  int parent_fd = -1;
  int child_fd = -1;
};

struct SubprocessOptions {
  // argv[0] is the program: a path, or a name searched in PATH.
  std::vector<std::string> argv;
  // Added to the parent's environment, replacing variables of the same name.
  std::vector<std::pair<std::string, std::string>> env;
  // Removed from the child's environment (applied before `env`), e.g. LD_PRELOAD.
  std::vector<std::string> unset_env;
  // Empty: the parent's working directory.
  std::string working_dir;
  // Where the child's stdout/stderr go (created or truncated, appended to).
  // Empty: a file in a temporary directory owned by the Subprocess. The same
  // path for both interleaves them in one file. stdin is always /dev/null.
  std::string stdout_path;
  std::string stderr_path;
  // Credentials to drop to before exec: setgroups({gid} or {}), setgid, setuid.
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  // The child's RLIMIT_NOFILE soft limit, for children whose behaviour
  // depends on it (holding many fds, running out of them): the host's own
  // ranges from 1024 to 1M. The hard limit is raised to it where lower, which
  // needs root; Start fails if the limit cannot be set.
  std::optional<rlim_t> open_files_limit;
  // The only fds besides 0, 1 and 2 the child gets; all others are closed at
  // exec. A child_fd of 0, 1 or 2 replaces /dev/null or the output file.
  std::vector<InheritedFd> inherited_fds;
  // SIGKILL the child if the thread that started it exits (PR_SET_PDEATHSIG),
  // so a crashed test leaves no servers behind. Start children from a thread
  // that outlives them (normally the test's main thread) or turn this off.
  bool kill_when_parent_dies = true;
};

// A child process started by fork and exec.
//
// Start() returns only after the exec succeeded; a failed chdir, credential
// drop, fd setup or exec is reported as an error Status (through a
// close-on-exec pipe), not as a child exiting with 127.
//
// The destructor SIGKILLs and reaps a child that is still running.
// Thread-compatible: one owner; move-only.
class Subprocess {
 public:
  static absl::StatusOr<Subprocess> Start(const SubprocessOptions& options);

  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  ~Subprocess();

  pid_t pid() const { return pid_; }

  // kill(pid, signo). FailedPrecondition once the child has been reaped (its
  // pid may belong to someone else by then).
  absl::Status Signal(int signo);

  // Waits for the child to exit and returns its raw wait status (use
  // WIFEXITED etc. or DescribeWaitStatus). After `timeout` the child is
  // SIGKILLed and reaped, and DeadlineExceeded is returned. Once reaped, the
  // same status is returned again at once.
  absl::StatusOr<int> Wait(absl::Duration timeout);

  // False once the child has exited (it is then reaped and its status kept).
  bool Running();

  // The raw wait status, once reaped.
  std::optional<int> wait_status() const { return wait_status_; }

  // An fd that becomes readable when the child exits (a pidfd), for poll();
  // -1 on kernels without pidfd_open (< 5.3), where callers must poll Running().
  int exit_fd() const { return pidfd_; }

  const std::string& stdout_path() const { return stdout_path_; }
  const std::string& stderr_path() const { return stderr_path_; }
  // The output so far; "" if it cannot be read.
  std::string ReadStdout() const;
  std::string ReadStderr() const;

  // "pid 123 (tcp_member)" for messages.
  std::string Describe() const;

 private:
  Subprocess() = default;
  void KillAndReap();
  void Release();

  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::optional<int> wait_status_;
  std::string program_;
  std::string stdout_path_;
  std::string stderr_path_;
  std::unique_ptr<TempDir> output_dir_;  // when no output paths were given
};

// "exited with status 2", "killed by signal 9 (Killed)".
std::string DescribeWaitStatus(int wait_status);

}  // namespace reuseport::testing

#endif  // REUSEPORT_TESTS_SUPPORT_SUBPROCESS_H_
