// reuseportd: the control server, the dispatcher and the registry on one
// event loop.
//
// Thread-safety: Run() on one thread; Stop() from anywhere, including a signal
// handler.
#ifndef REUSEPORT_BROKER_BROKER_H_
#define REUSEPORT_BROKER_BROKER_H_

#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "control_server.h"
#include "dispatcher.h"
#include "event_loop.h"
#include "flow_hash.h"
#include "registry.h"

namespace reuseport::broker {

struct BrokerOptions {
  ControlOptions control;
  DispatchOptions dispatch;
  int ready_fd = -1;  // written "READY=1\n" and closed once serving
  std::vector<std::string> argv;  // how we were started, for a successor
};

class Broker {
 public:
  explicit Broker(BrokerOptions options);
  ~Broker();

  absl::Status Start();
  void Run();
  void Stop() { loop_.Stop(); }
  // SIGHUP: start a successor (this binary, same flags, --takeover); we keep
  // serving until it takes over. Async-signal-safe.
  void RequestRestart();

 private:
  void NotifyReady();
  void StartSuccessor();
  FlowKey LoadOrCreateFlowKey() const;

  BrokerOptions options_;
  EventLoop loop_;
  Registry registry_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<ControlServer> control_;
  volatile sig_atomic_t restart_requested_ = 0;
};

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_BROKER_H_
