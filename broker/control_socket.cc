#include "control_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "log.h"
#include "reuseport/protocol.h"
#include "service_notify.h"
#include "wire.h"

namespace reuseport::broker {

namespace {

absl::Status MakeParentDirectory(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return absl::OkStatus();
  std::string dir = path.substr(0, slash);
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') {
      std::string part = dir.substr(0, i);
      if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) {
        return absl::ErrnoToStatus(errno, absl::StrFormat("mkdir %s", part));
      }
    }
  }
  return absl::OkStatus();
}

bool UnixAddress(const std::string& path, struct sockaddr_un* addr) {
  *addr = {};
  if (path.empty() || path.size() >= sizeof(addr->sun_path)) return false;
  addr->sun_family = AF_UNIX;
  memcpy(addr->sun_path, path.c_str(), path.size() + 1);
  return true;
}

// Asks the broker behind `old` to go, leaving its members to us.
void AskToHandOver(int old, const std::string& path) {
  // A service manager must follow us as the main process before the old one
  // leaves (systemd: NotifyAccess=all), or it would take the exit for the
  // service stopping.
  NotifyServiceManager(absl::StrFormat("MAINPID=%d\nSTATUS=taking over %s", getpid(), path));
  rp_header h = MakeHeader(RP_OP_TAKEOVER, 0, 1);
  struct timeval tv = {5, 0};
  setsockopt(old, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  rp_header reply{};
  if (SendRecord(old, h, nullptr, 0, nullptr, 0, {}, 0) != 0 ||
      recv(old, &reply, sizeof(reply), 0) != static_cast<ssize_t>(sizeof(reply)) || reply.status != 0) {
    Log(Severity::kWarning, "the previous broker did not agree to hand over (status %d); it keeps its members until it exits",
        reply.status);
  } else {
    Log(Severity::kInfo, "took over %s from the previous broker", path);
  }
}

}  // namespace

absl::StatusOr<UniqueFd> ControlSocket::Publish(const std::string& path, mode_t mode, bool takeover) {
  struct sockaddr_un addr;
  if (!UnixAddress(path, &addr)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("socket path '%s' must be 1 to %d bytes", path, sizeof(addr.sun_path) - 1));
  }
  if (absl::Status s = MakeParentDirectory(path); !s.ok()) return s;
  size_t slash = path.rfind('/');
  std::string directory = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  name_ = slash == std::string::npos ? path : path.substr(slash + 1);
  directory_.reset(open(directory.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!directory_) return absl::ErrnoToStatus(errno, absl::StrFormat("open %s", directory));

  UniqueFd probe(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  bool running = probe && connect(probe.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) == 0;
  probe.reset();
  if (running && !takeover) {
    return absl::AlreadyExistsError(
        absl::StrFormat("another reuseportd is serving %s (use --takeover to replace it)", path));
  }
  if (!running) unlink(path.c_str());

  // Listen at a temporary path first, then rename it over the path (a running
  // broker's, when taking over): connect() never finds the path empty or not
  // yet listening, so no member or client is refused during the switch.
  // Members of the old broker see their links close when it exits and join us.
  std::string temporary = absl::StrFormat("%s.%d.new", path, getpid());
  struct sockaddr_un temp_addr;
  if (!UnixAddress(temporary, &temp_addr)) return absl::InvalidArgumentError("socket path too long for takeover");
  unlink(temporary.c_str());
  UniqueFd listener(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener) return absl::ErrnoToStatus(errno, "socket(AF_UNIX)");
  if (bind(listener.get(), reinterpret_cast<const struct sockaddr*>(&temp_addr), sizeof(temp_addr)) != 0 ||
      chmod(temporary.c_str(), mode) != 0 || listen(listener.get(), 1024) != 0) {
    int err = errno;
    unlink(temporary.c_str());
    return absl::ErrnoToStatus(err, absl::StrFormat("listen on %s", temporary));
  }
  UniqueFd old;
  if (running) {
    old.reset(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (connect(old.get(), reinterpret_cast<const struct sockaddr*>(&addr), sizeof(addr)) != 0) old.reset();
  }
  if (rename(temporary.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(temporary.c_str());
    return absl::ErrnoToStatus(err, absl::StrFormat("rename %s over %s", temporary, path));
  }
  struct stat st {};
  if (stat(path.c_str(), &st) == 0) inode_ = st.st_ino;
  if (old) AskToHandOver(old.get(), path);
  return listener;
}

void ControlSocket::Unpublish() {
  struct stat on_disk {};
  if (inode_ != 0 && directory_ && fstatat(directory_.get(), name_.c_str(), &on_disk, AT_SYMLINK_NOFOLLOW) == 0 &&
      on_disk.st_ino == inode_) {
    unlinkat(directory_.get(), name_.c_str(), 0);
  }
  inode_ = 0;
}

}  // namespace reuseport::broker
