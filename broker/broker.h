// reuseportd: the control server, the dispatcher and the registry on one
// event loop.
//
// Thread-safety: Run() on one thread; Stop() from anywhere, including a signal
// handler.
#ifndef REUSEPORT_BROKER_BROKER_H_
#define REUSEPORT_BROKER_BROKER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "control_server.h"
#include "dispatcher.h"
#include "event_loop.h"
#include "registry.h"

namespace reuseport::broker {

struct BrokerOptions {
  ControlOptions control;
  DispatchOptions dispatch;
  int ready_fd = -1;  // written "READY=1\n" and closed once serving
};

class Broker {
 public:
  explicit Broker(BrokerOptions options);
  ~Broker();

  absl::Status Start();
  void Run();
  void Stop() { loop_.Stop(); }

 private:
  void NotifyReady();

  BrokerOptions options_;
  EventLoop loop_;
  Registry registry_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<ControlServer> control_;
};

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_BROKER_H_
