#include "host_features.h"

#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace reuseport::testing {
namespace {

std::string ErrnoText(int error) { return absl::StrCat(strerror(error), " (errno ", error, ")"); }

// unshare(flags) in a child, so that the test process keeps its namespaces
// (and unshare(CLONE_NEWUSER) is not refused for being multi-threaded).
// Returns 0 or the errno.
int UnshareInChild(int flags) {
  pid_t child = fork();
  if (child < 0) return errno;
  if (child == 0) _exit(unshare(flags) == 0 ? 0 : (errno & 0xff));
  int status = 0;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) return errno;
  }
  if (!WIFEXITED(status)) return EINTR;  // killed: no answer either way
  return WEXITSTATUS(status);
}

}  // namespace

std::string Ipv6LoopbackUnavailable() {
  for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
    int fd = socket(AF_INET6, type | SOCK_CLOEXEC, 0);
    if (fd < 0) return absl::StrCat("no IPv6 on this host: socket(AF_INET6): ", ErrnoText(errno));
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    int bound = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    int error = errno;
    close(fd);
    if (bound != 0) return absl::StrCat("no IPv6 loopback on this host: bind([::1]:0): ", ErrnoText(error));
  }
  return "";
}

std::string UserNamespacesUnavailable() {
  int error = UnshareInChild(CLONE_NEWUSER | CLONE_NEWNET);
  if (error == 0) return "";
  return absl::StrCat("this host does not let us make user namespaces: unshare(CLONE_NEWUSER | CLONE_NEWNET): ",
                      ErrnoText(error));
}

std::string NetworkNamespacesUnavailable() {
  int error = UnshareInChild(CLONE_NEWNET);
  if (error == 0) return "";
  return absl::StrCat("this host does not let us make network namespaces: unshare(CLONE_NEWNET): ", ErrnoText(error));
}

std::string ExecUnavailableIn(const std::string& dir) {
  struct statvfs fs {};
  if (statvfs(dir.c_str(), &fs) != 0) return absl::StrCat("statvfs ", dir, ": ", ErrnoText(errno));
  if (fs.f_flag & ST_NOEXEC) {
    return absl::StrCat(dir, " is on a noexec file system: programs cannot run from it (point TMPDIR elsewhere)");
  }
  return "";
}

std::string RootUnavailable(const std::string& what_for) {
  if (geteuid() == 0) return "";
  return absl::StrCat("needs root (", what_for, "); running as uid ", geteuid());
}

std::string FindProgram(const std::string& name) {
  const char* path = getenv("PATH");
  std::vector<std::string> dirs = absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':', absl::SkipEmpty());
  for (const char* dir : {"/usr/sbin", "/sbin", "/usr/bin"}) dirs.emplace_back(dir);
  for (const std::string& dir : dirs) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string ProgramMissing(const std::string& program, const std::string& package) {
  bool found = program.find('/') != std::string::npos ? access(program.c_str(), X_OK) == 0 : !FindProgram(program).empty();
  if (found) return "";
  return absl::StrCat(program, " is not installed (Debian package ", package, "; scripts/setup.sh installs it)");
}

bool ProgramsRequired() {
  const char* value = getenv("REUSEPORT_REQUIRE_PROGRAMS");
  return value != nullptr && value[0] != '\0' && strcmp(value, "0") != 0;
}

}  // namespace reuseport::testing
