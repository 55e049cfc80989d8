#include "readiness.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace reuseport::testing {
namespace {

bool Exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

std::string StderrTail(const Subprocess& process) {
  std::string err = process.ReadStderr();
  constexpr size_t kTail = 2000;
  if (err.size() > kTail) err = "..." + err.substr(err.size() - kTail);
  return err.empty() ? "(stderr empty)" : absl::StrCat("stderr:\n", err);
}

}  // namespace

absl::Status WaitForFile(const std::string& path, absl::Duration timeout, Subprocess* process) {
  const absl::Time deadline = absl::Now() + timeout;
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);

  // A kernel built without inotify (CONFIG_INOTIFY_USER=n, as some old and
  // embedded ones are) answers ENOSYS: then look with a growing pause instead.
  int inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd < 0 && errno != ENOSYS) {
    return absl::InternalError(absl::StrCat("inotify_init1: ", std::strerror(errno)));
  }
  struct CloseOnExit {
    int fd;
    ~CloseOnExit() {
      if (fd >= 0) close(fd);
    }
  } closer{inotify_fd};
  // Watch first, then look: a file created in between is not missed.
  if (inotify_fd >= 0 && inotify_add_watch(inotify_fd, dir.c_str(), IN_CREATE | IN_MOVED_TO | IN_ATTRIB) < 0) {
    int error = errno;
    if (error == ENOENT) return absl::NotFoundError(absl::StrCat("no directory ", dir));
    return absl::InternalError(absl::StrCat("inotify_add_watch ", dir, ": ", std::strerror(error)));
  }
  if (inotify_fd < 0) {
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0 && errno == ENOENT) return absl::NotFoundError(absl::StrCat("no directory ", dir));
  }

  absl::Duration exit_check_pause = absl::Milliseconds(1);
  for (;;) {
    if (Exists(path)) return absl::OkStatus();
    if (process != nullptr && !process->Running()) {
      // It may have created the file just before exiting.
      if (Exists(path)) return absl::OkStatus();
      std::string how = process->wait_status().has_value()
                            ? DescribeWaitStatus(*process->wait_status())
                            : "exited";
      return absl::FailedPreconditionError(absl::StrCat(process->Describe(), " ", how,
                                                        " before creating ", path, "; ",
                                                        StderrTail(*process)));
    }
    absl::Duration remaining = deadline - absl::Now();
    if (remaining <= absl::ZeroDuration()) {
      std::string detail = process != nullptr
                               ? absl::StrCat("; ", process->Describe(), " still running; ",
                                              StderrTail(*process))
                               : "";
      return absl::DeadlineExceededError(absl::StrCat("no ", path, " after ",
                                                      absl::FormatDuration(timeout), detail));
    }
    int wait_ms = static_cast<int>(
        absl::ToInt64Milliseconds(absl::Ceil(remaining, absl::Milliseconds(1))));
    pollfd fds[2] = {{inotify_fd, POLLIN, 0}, {-1, POLLIN, 0}};
    int nfds = 1;
    // No pidfd (kernel < 5.3) or no inotify: look again after a growing pause.
    bool look_again = inotify_fd < 0;
    if (process != nullptr) {
      if (process->exit_fd() >= 0) {
        fds[1].fd = process->exit_fd();
        nfds = 2;
      } else {
        look_again = true;
      }
    }
    if (look_again) {
      wait_ms = std::min<int>(wait_ms, absl::ToInt64Milliseconds(exit_check_pause));
      exit_check_pause = std::min(exit_check_pause * 2, absl::Milliseconds(20));
    }
    if (poll(fds, nfds, wait_ms) < 0 && errno != EINTR) {
      return absl::InternalError(absl::StrCat("poll: ", std::strerror(errno)));
    }
    // Drain the events; what they say is re-checked with stat() above.
    char events[4096];
    while (inotify_fd >= 0 && read(inotify_fd, events, sizeof(events)) > 0) {
    }
  }
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int error = errno;
    std::string message = absl::StrCat("open ", path, ": ", std::strerror(error));
    return error == ENOENT ? absl::NotFoundError(message) : absl::InternalError(message);
  }
  std::string content;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      close(fd);
      return absl::InternalError(absl::StrCat("read ", path, ": ", std::strerror(error)));
    }
    if (n == 0) break;
    content.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return content;
}

absl::StatusOr<std::vector<std::string>> ReadLines(const std::string& path) {
  absl::StatusOr<std::string> content = ReadFile(path);
  if (!content.ok()) return content.status();
  std::vector<std::string> lines = absl::StrSplit(*content, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();  // after the final '\n'
  return lines;
}

}  // namespace reuseport::testing
