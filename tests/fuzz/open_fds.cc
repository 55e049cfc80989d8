#include "open_fds.h"

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include "absl/strings/str_format.h"

namespace reuseport::fuzz {

namespace {

// Calls `visit(fd, dir_fd)` for each open fd but the directory's own.
template <typename Visit>
int ForEachOpenFd(Visit visit) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int own = dirfd(dir);
  int count = 0;
  while (struct dirent* entry = readdir(dir)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    int fd = atoi(entry->d_name);
    if (fd == own) continue;
    ++count;
    visit(fd, own, entry->d_name);
  }
  closedir(dir);
  return count;
}

}  // namespace

int CountOpenFds() {
  return ForEachOpenFd([](int, int, const char*) {});
}

std::string DescribeOpenFds() {
  std::string out;
  ForEachOpenFd([&out](int fd, int dir_fd, const char* name) {
    char target[256];
    ssize_t n = readlinkat(dir_fd, name, target, sizeof(target) - 1);
    absl::StrAppendFormat(&out, "    fd %d -> %s\n", fd, n < 0 ? "?" : std::string(target, static_cast<size_t>(n)));
  });
  return out;
}

}  // namespace reuseport::fuzz
