#include "broker_in_thread.h"

#include <stdlib.h>
#include <unistd.h>

#include <utility>

namespace reuseport::fuzz {

using reuseport::broker::Broker;
using reuseport::broker::BrokerOptions;

BrokerInThread::BrokerInThread(reuseport::broker::Policy policy) {
  char dir[] = "/tmp/rp-fuzz-XXXXXX";
  if (mkdtemp(dir) == nullptr) {
    status_ = absl::ErrnoToStatus(errno, "mkdtemp");
    return;
  }
  dir_ = dir;
  socket_path_ = dir_ + "/rp.sock";
  BrokerOptions options;
  options.control.socket_path = socket_path_;
  options.control.policy = std::move(policy);
  broker_ = std::make_unique<Broker>(std::move(options));
  status_ = broker_->Start();
  if (status_.ok()) thread_ = std::thread([this] { broker_->Run(); });
}

BrokerInThread::~BrokerInThread() {
  if (broker_) broker_->Stop();
  if (thread_.joinable()) thread_.join();
  broker_.reset();  // the control server removes its socket file
  if (!dir_.empty()) {
    unlink(socket_path_.c_str());
    rmdir(dir_.c_str());
  }
}

}  // namespace reuseport::fuzz
