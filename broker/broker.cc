#include "broker.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_format.h"
#include "flow_hash.h"
#include "log.h"

namespace reuseport::broker {

Broker::Broker(BrokerOptions options) : options_(std::move(options)) {}

Broker::~Broker() {
  control_.reset();
  dispatcher_.reset();
}

absl::Status Broker::Start() {
  // Every member holds a few of our fds; use what the hard limit allows.
  struct rlimit rl {};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (absl::Status s = loop_.Init(); !s.ok()) return s;
  dispatcher_ = std::make_unique<Dispatcher>(loop_, registry_, options_.dispatch, RandomFlowKey());
  dispatcher_->CalibrateChannels();
  control_ = std::make_unique<ControlServer>(loop_, registry_, *dispatcher_, options_.control);
  if (absl::Status s = control_->Start(); !s.ok()) return s;
  Log(Severity::kInfo, "serving on %s", options_.control.socket_path);
  NotifyReady();
  return absl::OkStatus();
}

void Broker::NotifyReady() {
  if (options_.ready_fd >= 0) {
    static const char kReady[] = "READY=1\n";
    ssize_t ignored = write(options_.ready_fd, kReady, sizeof(kReady) - 1);
    (void)ignored;
    close(options_.ready_fd);
    options_.ready_fd = -1;
  }
  // systemd's readiness protocol (sd_notify(3)): a datagram to $NOTIFY_SOCKET.
  const char* notify = getenv("NOTIFY_SOCKET");
  if (notify != nullptr && (notify[0] == '/' || notify[0] == '@') && strlen(notify) < sizeof(sockaddr_un::sun_path)) {
    UniqueFd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    strcpy(addr.sun_path, notify);
    socklen_t len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + strlen(notify));
    if (notify[0] == '@') addr.sun_path[0] = '\0';
    std::string message = absl::StrFormat("READY=1\nMAINPID=%d\nSTATUS=serving on %s", getpid(), options_.control.socket_path);
    if (fd) sendto(fd.get(), message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<struct sockaddr*>(&addr), len);
  }
}

void Broker::Run() {
  loop_.Run();
  Log(Severity::kInfo, "stopping");
  control_->Shutdown();
}

}  // namespace reuseport::broker
