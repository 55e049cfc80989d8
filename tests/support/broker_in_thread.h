// A real Broker (control server, dispatcher, registry, event loop) serving a
// temporary socket path from a thread of this process: protocol tests without
// a daemon and without sleeps (tests/unit/control_server_test.cc), and the
// control fuzzer, which counts the broker's fds as this process's own.
#ifndef REUSEPORT_TESTS_SUPPORT_BROKER_IN_THREAD_H_
#define REUSEPORT_TESTS_SUPPORT_BROKER_IN_THREAD_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "broker.h"
#include "policy.h"

namespace reuseport::testing {

class BrokerInThread {
 public:
  // Starts serving on a new temporary directory's socket. On error, no thread
  // runs and status() says why.
  explicit BrokerInThread(reuseport::broker::Policy policy = {});
  // Stops the loop (if a TAKEOVER has not already), joins the thread, destroys
  // the broker and removes the directory.
  ~BrokerInThread();
  BrokerInThread(const BrokerInThread&) = delete;
  BrokerInThread& operator=(const BrokerInThread&) = delete;

  const absl::Status& status() const { return status_; }
  const std::string& socket_path() const { return socket_path_; }

 private:
  std::string dir_;
  std::string socket_path_;
  std::unique_ptr<reuseport::broker::Broker> broker_;
  absl::Status status_;
  std::thread thread_;
};

}  // namespace reuseport::testing

#endif  // REUSEPORT_TESTS_SUPPORT_BROKER_IN_THREAD_H_
