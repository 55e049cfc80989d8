#include "broker.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_format.h"
#include "flow_hash.h"
#include "hardening.h"
#include "log.h"
#include "status_report.h"
#include "service_notify.h"

namespace reuseport::broker {

Broker::Broker(BrokerOptions options) : options_(std::move(options)) {}

Broker::~Broker() {
  metrics_.reset();
  control_.reset();
  dispatcher_.reset();
}

absl::Status Broker::Start() {
  // Every member holds a few of our fds, and every connection waiting in a
  // member's channel counts against our limit too (docs/operations.md).
  Log(Severity::kInfo, "file descriptor limit %d", RaiseFdLimit());
  if (absl::Status s = loop_.Init(); !s.ok()) return s;
  dispatcher_ = std::make_unique<Dispatcher>(loop_, registry_, options_.dispatch, LoadOrCreateFlowKey(),
                                             options_.control.policy);
  dispatcher_->CalibrateChannels();
  options_.control.udp_channel_bytes = options_.dispatch.udp_channel_bytes;
  control_ = std::make_unique<ControlServer>(loop_, registry_, *dispatcher_, options_.control);
  if (absl::Status s = control_->Start(); !s.ok()) return s;
  Log(Severity::kInfo, "serving on %s", options_.control.socket_path);
  if (!options_.metrics_address.empty()) {
    metrics_ = std::make_unique<MetricsHttpServer>(loop_, [this] {
      // Whoever can reach the endpoint is the operator (docs/operations.md).
      return RenderStatus(StatusSources{registry_, dispatcher_->totals(), control_->totals(), control_->link_count(),
                                        &control_->reply_budget()},
                          RP_STATUS_PROMETHEUS, StatusViewer{});
    });
    if (absl::Status s = metrics_->Start(options_.metrics_address); !s.ok()) return s;
    Log(Severity::kInfo, "metrics on http://%s/metrics", options_.metrics_address);
  }
  loop_.SetAfterWake([this] {
    if (restart_requested_.exchange(0) != 0) StartSuccessor();
  });
  return absl::OkStatus();
}

// The flow hash key outlives a restart, so UDP flows stay with their members
// (member keys are their channels, which outlive it too).
FlowKey Broker::LoadOrCreateFlowKey() const {
  std::string path = options_.control.socket_path + ".key";
  FlowKey key;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd >= 0) {
    struct stat st {};
    uint64_t words[2];
    bool ok = fstat(fd, &st) == 0 && st.st_uid == geteuid() && (st.st_mode & 077) == 0 &&
              read(fd, words, sizeof(words)) == static_cast<ssize_t>(sizeof(words));
    close(fd);
    if (ok) return FlowKey{words[0], words[1]};
  }
  key = RandomFlowKey();
  std::string temporary = path + ".tmp";
  fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0) {
    uint64_t words[2] = {key.k0, key.k1};
    bool ok = write(fd, words, sizeof(words)) == static_cast<ssize_t>(sizeof(words));
    close(fd);
    if (ok) rename(temporary.c_str(), path.c_str());
  }
  return key;
}

void Broker::RequestRestart() {
  restart_requested_.store(1);
  loop_.Wake();
}

std::vector<std::string> Broker::SuccessorArgv() const {
  std::vector<std::string> args = options_.argv;
  // The successor must not be given a ready fd we already closed.
  for (size_t i = 0; i < args.size();) {
    if (args[i] == "--ready_fd" || args[i] == "-ready_fd") {
      args.erase(args.begin() + static_cast<long>(i), args.begin() + static_cast<long>(std::min(i + 2, args.size())));
    } else if (args[i].rfind("--ready_fd=", 0) == 0) {
      args.erase(args.begin() + static_cast<long>(i));
    } else {
      ++i;
    }
  }
  if (std::find(args.begin(), args.end(), "--takeover") == args.end()) args.push_back("--takeover");
  return args;
}

void Broker::StartSuccessor() {
  if (launcher_fd_ >= 0) {
    if (write(launcher_fd_, "s", 1) == 1) {
      Log(Severity::kInfo, "SIGHUP: asked for a successor; serving until it takes over");
      return;
    }
    Log(Severity::kError, "SIGHUP: the successor launcher is gone: %s", strerror(errno));
    return;
  }
  std::vector<std::string> args = SuccessorArgv();
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t child = fork();
  if (child == 0) {
    setsid();
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  if (child < 0) {
    Log(Severity::kError, "cannot start a successor: %s", strerror(errno));
    return;
  }
  Log(Severity::kInfo, "SIGHUP: started successor pid %d; serving until it takes over", child);
}

void Broker::NotifyReady() {
  if (options_.ready_fd >= 0) {
    static const char kReady[] = "READY=1\n";
    ssize_t ignored = write(options_.ready_fd, kReady, sizeof(kReady) - 1);
    (void)ignored;
    close(options_.ready_fd);
    options_.ready_fd = -1;
  }
  NotifyServiceManager(
      absl::StrFormat("READY=1\nMAINPID=%d\nSTATUS=serving on %s", getpid(), options_.control.socket_path));
}

void Broker::Run() {
  loop_.Run();
  Log(Severity::kInfo, "stopping");
  control_->Shutdown();
}

}  // namespace reuseport::broker
