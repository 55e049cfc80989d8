#include "pid_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace reuseport::broker {

absl::Status WritePidFile(const std::string& path, pid_t pid) {
  std::string temporary = absl::StrFormat("%s.%d.tmp", path, pid);
  int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrFormat("cannot create %s", temporary));
  std::string line = absl::StrFormat("%d\n", pid);
  // fchmod: a umask (the unit's is 0077) must not hide the pid from readers.
  bool ok = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && fchmod(fd, 0644) == 0;
  int err = errno;
  close(fd);
  if (ok && rename(temporary.c_str(), path.c_str()) == 0) return absl::OkStatus();
  if (ok) err = errno;
  unlink(temporary.c_str());
  return absl::ErrnoToStatus(err, absl::StrFormat("cannot write %s", path));
}

void RemovePidFileIfOurs(const std::string& path, pid_t pid) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return;
  char buf[32];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return;
  int named = 0;
  if (absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::string_view(buf, static_cast<size_t>(n))), &named) &&
      named == pid) {
    unlink(path.c_str());
  }
}

}  // namespace reuseport::broker
