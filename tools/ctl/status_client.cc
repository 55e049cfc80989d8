#include "status_client.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace reuseport::ctl {

namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

int64_t NowMs() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

absl::StatusOr<std::string> FetchStatus(const std::string& socket_path, rp_status_format format, int timeout_ms) {
  struct sockaddr_un addr {};
  if (socket_path.size() >= sizeof(addr.sun_path)) return absl::InvalidArgumentError("socket path too long");
  addr.sun_family = AF_UNIX;
  strcpy(addr.sun_path, socket_path.c_str());
  Fd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return absl::ErrnoToStatus(errno, "socket");
  if (connect(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0) {
    return absl::UnavailableError(absl::StrFormat("no broker answers at %s: %s", socket_path, strerror(errno)));
  }
  struct {
    rp_header header;
    rp_status_request request;
  } message{};
  message.header = rp_request_header(RP_OP_STATUS, sizeof(rp_status_request), 1);
  message.request.format = format;
  if (send(fd.get(), &message, sizeof(message), MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof(message))) {
    return absl::ErrnoToStatus(errno, "send");
  }
  std::string text;
  std::vector<char> buffer(RP_MAX_RECORD);
  int64_t deadline = NowMs() + timeout_ms;
  for (;;) {
    struct pollfd p = {fd.get(), POLLIN, 0};
    int left = static_cast<int>(deadline - NowMs());
    if (left <= 0 || poll(&p, 1, left) != 1) return absl::DeadlineExceededError("the broker did not answer in time");
    ssize_t n = recv(fd.get(), buffer.data(), buffer.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, "recv");
    }
    if (n == 0) return absl::UnavailableError("the broker closed the connection");
    rp_header h;
    if (static_cast<size_t>(n) < sizeof(h)) return absl::DataLossError("short reply");
    memcpy(&h, buffer.data(), sizeof(h));
    if (h.magic != RP_MAGIC || !(h.flags & RP_FLAG_REPLY) || h.request_id != 1) return absl::DataLossError("malformed reply");
    if (h.status != 0) return absl::ErrnoToStatus(h.status, "the broker refused the status request");
    size_t skip = sizeof(h) + h.payload_size;
    if (skip > static_cast<size_t>(n)) return absl::DataLossError("malformed reply");
    text.append(buffer.data() + skip, static_cast<size_t>(n) - skip);
    if (!(h.flags & RP_FLAG_MORE)) return text;
  }
}

}  // namespace reuseport::ctl
