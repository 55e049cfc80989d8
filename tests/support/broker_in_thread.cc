#include "broker_in_thread.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <utility>

namespace reuseport::testing {

namespace {

// The broker leaves files next to its socket (the flow key); the directory is
// ours, so everything in it goes.
void RemoveDirectory(const std::string& dir) {
  if (DIR* d = opendir(dir.c_str())) {
    while (struct dirent* entry = readdir(d)) {
      std::string name = entry->d_name;
      if (name != "." && name != "..") unlink((dir + "/" + name).c_str());
    }
    closedir(d);
  }
  rmdir(dir.c_str());
}

}  // namespace

using reuseport::broker::Broker;
using reuseport::broker::BrokerOptions;

BrokerInThread::BrokerInThread(reuseport::broker::Policy policy) {
  // Under $TMPDIR when set: run_fuzzer.sh points it at a directory it removes
  // afterwards, as a crash skips our destructor.
  const char* tmp = getenv("TMPDIR");
  std::string dir = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/rp-broker-XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) {
    status_ = absl::ErrnoToStatus(errno, "mkdtemp " + dir);
    return;
  }
  dir_ = dir;
  // A test's second peer may run as another uid and must reach the socket.
  chmod(dir_.c_str(), 0755);
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
  broker_.reset();
  if (!dir_.empty()) RemoveDirectory(dir_);
}

}  // namespace reuseport::testing
