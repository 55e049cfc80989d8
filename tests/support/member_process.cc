#include "member_process.h"

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "readiness.h"

namespace reuseport::testing {

absl::StatusOr<uint16_t> ReadReadyPort(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  uint32_t port = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &port) || port == 0 || port > 65535) {
    return absl::DataLossError(absl::StrCat("ready file ", path, " holds '", *text, "', not a port"));
  }
  return static_cast<uint16_t>(port);
}

absl::StatusOr<MemberProcess> StartMember(MemberOptions options) {
  if (options.id.empty() || options.dir.empty()) {
    return absl::InvalidArgumentError("StartMember: id and dir are required");
  }
  std::string base = absl::StrCat(options.dir, "/", options.id);
  SubprocessOptions& process = options.process;
  process.argv.insert(process.argv.end(), {"--id", options.id, "--ready-file", base + ".ready",
                                           "--log", base + ".log"});
  if (process.stdout_path.empty()) process.stdout_path = base + ".stdout";
  if (process.stderr_path.empty()) process.stderr_path = base + ".stderr";

  absl::StatusOr<Subprocess> started = Subprocess::Start(process);
  if (!started.ok()) return started.status();
  MemberProcess member{.process = *std::move(started),
                       .id = options.id,
                       .port = 0,
                       .ready_file = base + ".ready",
                       .log_file = base + ".log"};
  absl::Status ready = WaitForFile(member.ready_file, options.ready_timeout, &member.process);
  if (!ready.ok()) {
    return absl::Status(ready.code(), absl::StrCat("member ", options.id, ": ", ready.message()));
  }
  absl::StatusOr<uint16_t> port = ReadReadyPort(member.ready_file);
  if (!port.ok()) return port.status();
  member.port = *port;
  return member;
}

absl::StatusOr<std::vector<MemberProcess>> StartMemberGroup(std::vector<MemberOptions> members,
                                                            uint16_t port) {
  std::vector<MemberProcess> started;
  for (MemberOptions& options : members) {
    options.process.argv.insert(options.process.argv.end(), {"--port", absl::StrCat(port)});
    absl::StatusOr<MemberProcess> member = StartMember(std::move(options));
    if (!member.ok()) return member.status();
    port = member->port;
    started.push_back(*std::move(member));
  }
  return started;
}

ConcurrentStart::ConcurrentStart(std::vector<MemberOptions> members) {
  for (size_t i = 0; i < members.size(); ++i) results_.emplace_back(absl::UnknownError("not started"));
  for (size_t i = 0; i < members.size(); ++i) {
    threads_.emplace_back([this, i, options = std::move(members[i])]() mutable {
      absl::StatusOr<MemberProcess> m = StartMember(std::move(options));
      std::unique_lock<std::mutex> lock(mu_);
      results_[i] = std::move(m);
      ++finished_;
      cv_.notify_all();
      cv_.wait(lock, [this] { return released_; });
    });
  }
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return finished_ == threads_.size(); });
  std::string failures;
  for (absl::StatusOr<MemberProcess>& m : results_) {
    if (m.ok()) {
      members_.push_back(std::move(*m));
    } else {
      absl::StrAppend(&failures, failures.empty() ? "" : "; ", m.status().ToString());
    }
  }
  if (!failures.empty()) status_ = absl::FailedPreconditionError(failures);
}

ConcurrentStart::~ConcurrentStart() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

}  // namespace reuseport::testing
