#include "subprocess.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "readiness.h"
#include "temp_dir.h"

extern char** environ;

namespace reuseport::testing {
namespace {

#ifndef CLOSE_RANGE_CLOEXEC
constexpr unsigned kCloseRangeCloexec = 1U << 2;
#else
constexpr unsigned kCloseRangeCloexec = CLOSE_RANGE_CLOEXEC;
#endif

// What failed in the child before exec, sent back through the error pipe.
enum class ChildStage : int { kFds, kChdir, kOpenFilesLimit, kSetgroups, kSetgid, kSetuid, kParentDeath, kExec };

struct ChildFailure {
  ChildStage stage;
  int error;
};

const char* StageName(ChildStage stage) {
  switch (stage) {
    case ChildStage::kFds: return "setting up fds";
    case ChildStage::kChdir: return "chdir";
    case ChildStage::kOpenFilesLimit: return "setrlimit(RLIMIT_NOFILE)";
    case ChildStage::kSetgroups: return "setgroups";
    case ChildStage::kSetgid: return "setgid";
    case ChildStage::kSetuid: return "setuid";
    case ChildStage::kParentDeath: return "prctl(PR_SET_PDEATHSIG)";
    case ChildStage::kExec: return "exec";
  }
  return "?";
}

struct FdMove {
  int source;
  int target;
};

// Everything the child needs, prepared before fork: between fork and exec the
// child of a (possibly multi-threaded) process may only make async-signal-safe
// calls, so no allocation, no locks, no stdio.
struct ChildPlan {
  const char* program;
  char* const* argv;
  char* const* envp;
  const char* working_dir;  // nullptr: unchanged
  std::vector<FdMove> fds;  // includes 0, 1 and 2
  std::vector<int> scratch;  // same size as fds
  int error_fd;
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::optional<rlim_t> open_files_limit;
  bool kill_when_parent_dies;
  pid_t parent_pid;
};

[[noreturn]] void FailInChild(int error_fd, ChildStage stage, int error) {
  ChildFailure failure{stage, error};
  ssize_t ignored = write(error_fd, &failure, sizeof(failure));
  (void)ignored;
  _exit(127);
}

// Marks every fd in [low, high] close-on-exec.
void CloexecRange(unsigned low, unsigned high) {
  if (low > high) return;
  if (syscall(SYS_close_range, low, high, kCloseRangeCloexec) == 0) return;
  // Kernels before 5.11: one fcntl per possible fd (EBADF for closed ones).
  rlimit limit{};
  unsigned max_fd = 65536;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < max_fd) {
    max_fd = static_cast<unsigned>(limit.rlim_cur);
  }
  for (unsigned fd = low; fd <= high && fd < max_fd; fd++) fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
}

[[noreturn]] void RunChild(ChildPlan& plan) {
  // Signal dispositions set to SIG_IGN and the blocked mask survive exec;
  // members must start with the defaults whatever the test process did.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int signo = 1; signo < NSIG; signo++) sigaction(signo, &default_action, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);

  // Move every source above all targets first, so that a source which happens
  // to have the number of another target (or of the error pipe) survives.
  int base = 3;
  for (const FdMove& move : plan.fds) base = std::max(base, move.target + 1);
  int error_fd = fcntl(plan.error_fd, F_DUPFD_CLOEXEC, base);
  if (error_fd < 0) FailInChild(plan.error_fd, ChildStage::kFds, errno);
  for (size_t i = 0; i < plan.fds.size(); i++) {
    plan.scratch[i] = fcntl(plan.fds[i].source, F_DUPFD_CLOEXEC, base);
    if (plan.scratch[i] < 0) FailInChild(error_fd, ChildStage::kFds, errno);
  }
  for (size_t i = 0; i < plan.fds.size(); i++) {
    // dup2 clears FD_CLOEXEC on the target.
    if (dup2(plan.scratch[i], plan.fds[i].target) < 0) FailInChild(error_fd, ChildStage::kFds, errno);
  }
  // Every fd that is not a target goes away at exec (the error pipe included).
  unsigned next = 3;
  std::vector<FdMove>& fds = plan.fds;  // sorted by target in Start()
  for (const FdMove& move : fds) {
    unsigned target = static_cast<unsigned>(move.target);
    if (target < next) continue;
    if (target > next) CloexecRange(next, target - 1);
    next = target + 1;
  }
  CloexecRange(next, ~0U);

  if (plan.working_dir != nullptr && chdir(plan.working_dir) != 0) {
    FailInChild(error_fd, ChildStage::kChdir, errno);
  }
  // Before the credential change: raising the hard limit needs root.
  if (plan.open_files_limit.has_value()) {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) FailInChild(error_fd, ChildStage::kOpenFilesLimit, errno);
    limit.rlim_cur = *plan.open_files_limit;
    if (limit.rlim_max < limit.rlim_cur) limit.rlim_max = limit.rlim_cur;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) FailInChild(error_fd, ChildStage::kOpenFilesLimit, errno);
  }
  // Raw syscalls: glibc's wrappers synchronise credentials across threads,
  // machinery that is not safe to use in a forked child.
  if (plan.uid.has_value() || plan.gid.has_value()) {
    gid_t groups[1] = {plan.gid.value_or(0)};
    if (syscall(SYS_setgroups, plan.gid.has_value() ? 1 : 0, groups) != 0) {
      FailInChild(error_fd, ChildStage::kSetgroups, errno);
    }
  }
  if (plan.gid.has_value() && syscall(SYS_setresgid, *plan.gid, *plan.gid, *plan.gid) != 0) {
    FailInChild(error_fd, ChildStage::kSetgid, errno);
  }
  if (plan.uid.has_value() && syscall(SYS_setresuid, *plan.uid, *plan.uid, *plan.uid) != 0) {
    FailInChild(error_fd, ChildStage::kSetuid, errno);
  }
  // After the credential change, which clears the parent-death signal.
  if (plan.kill_when_parent_dies) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) FailInChild(error_fd, ChildStage::kParentDeath, errno);
    // The parent may have died before prctl took effect.
    if (getppid() != plan.parent_pid) FailInChild(error_fd, ChildStage::kParentDeath, ESRCH);
  }
  execve(plan.program, plan.argv, plan.envp);
  FailInChild(error_fd, ChildStage::kExec, errno);
}

bool IsExecutableFile(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

absl::StatusOr<std::string> ResolveProgram(const std::string& name, const std::string& path_var) {
  if (name.find('/') != std::string::npos) return name;
  for (absl::string_view dir : absl::StrSplit(path_var, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (IsExecutableFile(candidate)) return candidate;
  }
  return absl::NotFoundError(absl::StrCat("program not found in PATH: ", name));
}

std::string VariableName(absl::string_view entry) {
  return std::string(entry.substr(0, entry.find('=')));
}

std::vector<std::string> BuildEnvironment(const SubprocessOptions& options) {
  std::vector<std::string> entries;
  for (char** e = environ; e != nullptr && *e != nullptr; e++) entries.emplace_back(*e);
  auto remove = [&entries](const std::string& name) {
    entries.erase(std::remove_if(entries.begin(), entries.end(),
                                 [&](const std::string& e) { return VariableName(e) == name; }),
                  entries.end());
  };
  for (const std::string& name : options.unset_env) remove(name);
  for (const auto& [name, value] : options.env) {
    remove(name);
    entries.push_back(absl::StrCat(name, "=", value));
  }
  return entries;
}

std::string LookupVariable(const std::vector<std::string>& env, const std::string& name) {
  for (const std::string& entry : env) {
    if (VariableName(entry) == name) return entry.substr(name.size() + 1);
  }
  return "";
}

std::vector<char*> PointerArray(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (std::string& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

// Closes the fds it holds when the scope ends.
class FdCloser {
 public:
  ~FdCloser() {
    for (int fd : fds_) close(fd);
  }
  int Add(int fd) {
    if (fd >= 0) fds_.push_back(fd);
    return fd;
  }

 private:
  std::vector<int> fds_;
};

absl::Status ErrnoError(absl::string_view what, int error) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(error)));
}

// The children of this process, from /proc (a subreaper's adopted orphans included).
std::vector<pid_t> ChildrenOfThisProcess() {
  std::vector<pid_t> children;
  pid_t self = getpid();
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return children;
  while (struct dirent* entry = readdir(proc)) {
    char* end = nullptr;
    long pid = strtol(entry->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
    std::string line;
    if (!std::getline(stat, line)) continue;
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so parse after the last ')'.
    size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    long ppid = 0;
    if (sscanf(line.c_str() + close + 1, " %c %ld", &state, &ppid) == 2 && ppid == self) {
      children.push_back(static_cast<pid_t>(pid));
    }
  }
  closedir(proc);
  return children;
}

// Kills and reaps every child left, repeatedly: killing one hands its own children to us.
void KillAdoptedOrphans() {
  for (int round = 0; round < 64; ++round) {
    std::vector<pid_t> children = ChildrenOfThisProcess();
    if (children.empty()) return;
    for (pid_t pid : children) kill(pid, SIGKILL);
    for (pid_t pid : children) {
      while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
  }
}

// A member's forked workers, a daemon that double-forked and a broker's successor outlive the
// child a test started and killed. As a subreaper (Linux 3.4) this process inherits them instead
// of init, and kills whatever is left when it exits, so no test leaves processes behind.
// Per process: a forked copy of this one is no subreaper until it asks again.
void AdoptOrphansOnce() {
  static std::mutex mutex;
  static pid_t adopting = 0;
  static bool registered = false;
  std::lock_guard<std::mutex> lock(mutex);
  if (adopting == getpid()) return;
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) return;
  adopting = getpid();
  if (!registered) registered = atexit(KillAdoptedOrphans) == 0;
}

}  // namespace

absl::StatusOr<Subprocess> Subprocess::Start(const SubprocessOptions& options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("Subprocess: empty argv");
  AdoptOrphansOnce();
  std::vector<std::string> env = BuildEnvironment(options);
  std::string path_var = LookupVariable(env, "PATH");
  absl::StatusOr<std::string> program =
      ResolveProgram(options.argv[0], path_var.empty() ? "/usr/bin:/bin" : path_var);
  if (!program.ok()) return program.status();
  for (const InheritedFd& fd : options.inherited_fds) {
    if (fd.child_fd < 0 || fd.parent_fd < 0 || fcntl(fd.parent_fd, F_GETFD) < 0) {
      return absl::InvalidArgumentError(absl::StrCat("Subprocess: bad inherited fd ",
                                                     fd.parent_fd, " -> ", fd.child_fd));
    }
  }

  Subprocess child;
  child.program_ = options.argv[0].substr(options.argv[0].rfind('/') + 1);
  child.stdout_path_ = options.stdout_path;
  child.stderr_path_ = options.stderr_path;
  if (child.stdout_path_.empty() || child.stderr_path_.empty()) {
    absl::StatusOr<TempDir> dir = TempDir::Create("reuseport-subprocess");
    if (!dir.ok()) return dir.status();
    child.output_dir_ = std::make_unique<TempDir>(*std::move(dir));
    if (child.stdout_path_.empty()) child.stdout_path_ = child.output_dir_->File("stdout");
    if (child.stderr_path_.empty()) child.stderr_path_ = child.output_dir_->File("stderr");
  }

  FdCloser parent_fds;
  int stdin_fd = parent_fds.Add(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (stdin_fd < 0) return ErrnoError("open /dev/null", errno);
  // O_APPEND: when stdout and stderr share a file, neither overwrites the other.
  constexpr int kOutputFlags = O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC;
  int stdout_fd = parent_fds.Add(open(child.stdout_path_.c_str(), kOutputFlags, 0644));
  if (stdout_fd < 0) return ErrnoError(absl::StrCat("open ", child.stdout_path_), errno);
  int stderr_fd = stdout_fd;
  if (child.stderr_path_ != child.stdout_path_) {
    stderr_fd = parent_fds.Add(open(child.stderr_path_.c_str(), kOutputFlags, 0644));
    if (stderr_fd < 0) return ErrnoError(absl::StrCat("open ", child.stderr_path_), errno);
  }
  int error_pipe[2];
  if (pipe2(error_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe2", errno);
  parent_fds.Add(error_pipe[0]);
  int error_write_fd = error_pipe[1];

  std::vector<std::string> argv_strings = options.argv;
  std::vector<char*> argv = PointerArray(argv_strings);
  std::vector<char*> envp = PointerArray(env);
  ChildPlan plan{
      .program = program->c_str(),
      .argv = argv.data(),
      .envp = envp.data(),
      .working_dir = options.working_dir.empty() ? nullptr : options.working_dir.c_str(),
      .fds = {},
      .scratch = {},
      .error_fd = error_write_fd,
      .uid = options.uid,
      .gid = options.gid,
      .open_files_limit = options.open_files_limit,
      .kill_when_parent_dies = options.kill_when_parent_dies,
      .parent_pid = getpid(),
  };
  for (const InheritedFd& fd : options.inherited_fds) plan.fds.push_back({fd.parent_fd, fd.child_fd});
  for (FdMove standard : {FdMove{stdin_fd, 0}, FdMove{stdout_fd, 1}, FdMove{stderr_fd, 2}}) {
    if (std::none_of(plan.fds.begin(), plan.fds.end(),
                     [&](const FdMove& m) { return m.target == standard.target; })) {
      plan.fds.push_back(standard);
    }
  }
  std::sort(plan.fds.begin(), plan.fds.end(),
            [](const FdMove& a, const FdMove& b) { return a.target < b.target; });
  for (size_t i = 1; i < plan.fds.size(); i++) {
    if (plan.fds[i].target == plan.fds[i - 1].target) {
      close(error_write_fd);
      return absl::InvalidArgumentError(
          absl::StrCat("Subprocess: child fd ", plan.fds[i].target, " given twice"));
    }
  }
  plan.scratch.resize(plan.fds.size());

  pid_t pid = fork();
  if (pid < 0) {
    int error = errno;
    close(error_write_fd);
    return ErrnoError("fork", error);
  }
  if (pid == 0) RunChild(plan);

  close(error_write_fd);
  child.pid_ = pid;
  // Before the child can be reaped, so the pid cannot have been reused.
  child.pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (child.pidfd_ >= 0) fcntl(child.pidfd_, F_SETFD, FD_CLOEXEC);

  ChildFailure failure{};
  ssize_t n;
  do {
    n = read(error_pipe[0], &failure, sizeof(failure));
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof(failure))) {
    child.KillAndReap();
    return absl::FailedPreconditionError(absl::StrCat("Subprocess: ", StageName(failure.stage),
                                                      " for ", *program, ": ",
                                                      std::strerror(failure.error)));
  }
  return child;  // EOF: the exec closed the pipe
}

Subprocess::Subprocess(Subprocess&& other) noexcept { *this = std::move(other); }

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this != &other) {
    Release();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::exchange(other.pidfd_, -1);
    wait_status_ = std::exchange(other.wait_status_, std::nullopt);
    program_ = std::move(other.program_);
    stdout_path_ = std::move(other.stdout_path_);
    stderr_path_ = std::move(other.stderr_path_);
    output_dir_ = std::move(other.output_dir_);
  }
  return *this;
}

Subprocess::~Subprocess() { Release(); }

void Subprocess::Release() {
  if (pid_ > 0 && !wait_status_.has_value()) KillAndReap();
  if (pidfd_ >= 0) close(pidfd_);
  pidfd_ = -1;
  pid_ = -1;
  output_dir_.reset();
}

void Subprocess::KillAndReap() {
  if (pid_ <= 0 || wait_status_.has_value()) return;
  kill(pid_, SIGKILL);
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) wait_status_ = status;
}

absl::Status Subprocess::Signal(int signo) {
  if (pid_ <= 0) return absl::FailedPreconditionError("Signal: no process");
  if (wait_status_.has_value() || !Running()) {
    return absl::FailedPreconditionError(absl::StrCat("Signal: ", Describe(), " already exited"));
  }
  // Not yet reaped, so the pid is still ours even if the child is a zombie.
  if (kill(pid_, signo) != 0) return ErrnoError(absl::StrCat("kill ", Describe()), errno);
  return absl::OkStatus();
}

bool Subprocess::Running() {
  if (pid_ <= 0 || wait_status_.has_value()) return false;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    wait_status_ = status;
    return false;
  }
  // r < 0 (ECHILD) means someone else reaped it, e.g. SIGCHLD set to SIG_IGN.
  return r == 0;
}

absl::StatusOr<int> Subprocess::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("Wait: no process");
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration backoff = absl::Milliseconds(1);
  while (Running()) {
    absl::Duration remaining = deadline - absl::Now();
    if (remaining <= absl::ZeroDuration()) {
      KillAndReap();
      return absl::DeadlineExceededError(absl::StrCat(Describe(), " still running after ",
                                                      absl::FormatDuration(timeout),
                                                      "; killed with SIGKILL"));
    }
    int remaining_ms = static_cast<int>(absl::ToInt64Milliseconds(
        absl::Ceil(remaining, absl::Milliseconds(1))));
    if (pidfd_ >= 0) {
      pollfd p{pidfd_, POLLIN, 0};
      poll(&p, 1, remaining_ms);
    } else {
      // No pidfd (kernel < 5.3): check the exit status with a growing pause.
      poll(nullptr, 0, std::min<int>(remaining_ms, absl::ToInt64Milliseconds(backoff)));
      backoff = std::min(backoff * 2, absl::Milliseconds(20));
    }
  }
  if (!wait_status_.has_value()) {
    return absl::InternalError(absl::StrCat(Describe(), " was reaped by someone else"));
  }
  return *wait_status_;
}

std::string Subprocess::ReadStdout() const { return ReadFile(stdout_path_).value_or(""); }
std::string Subprocess::ReadStderr() const { return ReadFile(stderr_path_).value_or(""); }

std::string Subprocess::Describe() const { return absl::StrCat("pid ", pid_, " (", program_, ")"); }

std::string DescribeWaitStatus(int wait_status) {
  if (WIFEXITED(wait_status)) return absl::StrCat("exited with status ", WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(wait_status), " (",
                        strsignal(WTERMSIG(wait_status)), ")",
                        WCOREDUMP(wait_status) ? ", core dumped" : "");
  }
  return absl::StrCat("wait status 0x", absl::Hex(wait_status));
}

}  // namespace reuseport::testing
