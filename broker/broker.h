// reuseportd: the control server, the dispatcher and the registry on one
// event loop.
//
// Thread-safety: Run() on one thread; Stop() from anywhere, including a signal
// handler.
#ifndef REUSEPORT_BROKER_BROKER_H_
#define REUSEPORT_BROKER_BROKER_H_

#include <signal.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "control_server.h"
#include "dispatcher.h"
#include "event_loop.h"
#include "metrics_http.h"
#include "flow_hash.h"
#include "registry.h"

namespace reuseport::broker {

struct BrokerOptions {
  ControlOptions control;
  DispatchOptions dispatch;
  int ready_fd = -1;  // written "READY=1\n" and closed once serving
  std::string metrics_address;  // HOST:PORT to serve GET /metrics on; empty = none
  std::vector<std::string> argv;  // how we were started, for a successor
};

class Broker {
 public:
  explicit Broker(BrokerOptions options);
  ~Broker();

  absl::Status Start();
  // Tells whoever waits for us (--ready_fd, systemd) that we serve. After Start
  // and after hardening, so what they see is the broker as it will run.
  void NotifyReady();
  void Run();
  void Stop() { loop_.Stop(); }
  // After Run(): a successor took the socket over (SIGHUP, --takeover), so
  // what we would clean up at exit (the pid file) is its now.
  bool handed_over() const { return control_ != nullptr && control_->handed_over(); }
  // SIGHUP: start a successor (this binary, same flags, --takeover); we keep
  // serving until it takes over. Async-signal-safe.
  void RequestRestart();
  // The successor's command line: ours, with --takeover and without --ready_fd.
  std::vector<std::string> SuccessorArgv() const;
  // An fd to write a byte to for each successor (hardening.h), or -1 to fork here.
  void SetSuccessorLauncher(int fd) { launcher_fd_ = fd; }
  // The control socket's directory (after Start), for the system call filter.
  int SocketDirectoryFd() const { return control_ ? control_->socket_directory_fd() : -1; }

 private:
  void StartSuccessor();
  FlowKey LoadOrCreateFlowKey() const;

  BrokerOptions options_;
  EventLoop loop_;
  Registry registry_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<MetricsHttpServer> metrics_;
  std::atomic<int> restart_requested_{0};  // set by the SIGHUP handler
  int launcher_fd_ = -1;
};

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_BROKER_H_
