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

absl::Status PidFile::Write(const std::string& path, pid_t pid) {
  size_t slash = path.rfind('/');
  std::string directory = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  name_ = slash == std::string::npos ? path : path.substr(slash + 1);
  directory_ = open(directory.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (directory_ < 0) return absl::ErrnoToStatus(errno, absl::StrFormat("cannot open the directory of %s", path));
  std::string temporary = absl::StrFormat("%s.%d.tmp", name_, pid);
  int fd = openat(directory_, temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrFormat("cannot create %s/%s", directory, temporary));
  std::string line = absl::StrFormat("%d\n", pid);
  // fchmod: a umask (the unit's is 0077) must not hide the pid from readers.
  bool ok = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && fchmod(fd, 0644) == 0;
  int err = errno;
  close(fd);
  if (ok && renameat(directory_, temporary.c_str(), directory_, name_.c_str()) == 0) return absl::OkStatus();
  if (ok) err = errno;
  unlinkat(directory_, temporary.c_str(), 0);
  return absl::ErrnoToStatus(err, absl::StrFormat("cannot write %s", path));
}

void PidFile::RemoveIfOurs(pid_t pid) {
  if (directory_ < 0) return;
  int fd = openat(directory_, name_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return;
  char buf[32];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return;
  int named = 0;
  if (absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::string_view(buf, static_cast<size_t>(n))), &named) &&
      named == pid) {
    unlinkat(directory_, name_.c_str(), 0);
  }
}

PidFile::~PidFile() {
  if (directory_ >= 0) close(directory_);
}

}  // namespace reuseport::broker
