#include "fd_count.h"

#include <dirent.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace reuseport::testing {

absl::StatusOr<std::map<int, std::string>> ListOpenFds(pid_t pid) {
  std::string dir_path = absl::StrCat("/proc/", pid, "/fd");
  DIR* dir = opendir(dir_path.c_str());
  if (dir == nullptr) {
    return absl::NotFoundError(absl::StrCat("opendir ", dir_path, ": ", std::strerror(errno)));
  }
  // When pid is this process, the DIR's own fd is listed too; leave it out.
  int own_fd = pid == getpid() ? dirfd(dir) : -1;
  std::map<int, std::string> fds;
  while (dirent* entry = readdir(dir)) {
    int fd;
    if (!absl::SimpleAtoi(entry->d_name, &fd) || fd == own_fd) continue;
    char target[4096];
    ssize_t n = readlinkat(dirfd(dir), entry->d_name, target, sizeof(target) - 1);
    fds[fd] = n < 0 ? "?" : std::string(target, static_cast<size_t>(n));
  }
  closedir(dir);
  return fds;
}

absl::StatusOr<int> CountOpenFds(pid_t pid) {
  absl::StatusOr<std::map<int, std::string>> fds = ListOpenFds(pid);
  if (!fds.ok()) return fds.status();
  return static_cast<int>(fds->size());
}

}  // namespace reuseport::testing
