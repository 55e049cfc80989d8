#ifndef REUSEPORT_TESTS_SUPPORT_MEMBER_PROCESS_H_
#define REUSEPORT_TESTS_SUPPORT_MEMBER_PROCESS_H_

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "subprocess.h"

namespace reuseport::testing {

struct MemberOptions {
  // argv: the member program and its own options, e.g.
  //   {TcpMemberPath(), "--port", "0", "--loop", "poll"}
  //   {PythonPath(), SocketserverMemberPath(), "--proto", "udp"}
  // StartMember appends "--id <id> --ready-file <dir>/<id>.ready --log
  // <dir>/<id>.log". Empty stdout/stderr paths become <dir>/<id>.stdout and
  // <dir>/<id>.stderr. Everything else (env such as LD_PRELOAD, uid, fds) is
  // passed through.
  SubprocessOptions process;
  std::string id;   // no spaces
  std::string dir;  // e.g. a TempDir's path(); must be writable by the member
  absl::Duration ready_timeout = absl::Seconds(10);
};

// A member program that has bound its socket and reported its port.
struct MemberProcess {
  Subprocess process;
  std::string id;
  uint16_t port = 0;       // from the ready file, so --port 0 works
  std::string ready_file;
  std::string log_file;    // one line per request served
};

// Starts a member and waits for its ready file. Fails (with the member's exit
// status and stderr) if it exits first, e.g. with EADDRINUSE.
absl::StatusOr<MemberProcess> StartMember(MemberOptions options);

// Starts members that share one port, one after the other: the first gets
// "--port <port>" (0: an ephemeral port), the others "--port <the port the
// first one reported>". Stops at the first failure (the members already
// started are killed).
absl::StatusOr<std::vector<MemberProcess>> StartMemberGroup(std::vector<MemberOptions> members,
                                                            uint16_t port = 0);

// Starts members all at once, each from a thread of its own, so that their
// bind()s race as those of servers started together do. Each member's argv
// must already name the port. A member dies with the thread that started it
// (PR_SET_PDEATHSIG), so the threads wait until this object is destroyed.
class ConcurrentStart {
 public:
  // Returns when every member is ready or has failed.
  explicit ConcurrentStart(std::vector<MemberOptions> members);
  ~ConcurrentStart();  // the members die with their threads
  ConcurrentStart(const ConcurrentStart&) = delete;
  ConcurrentStart& operator=(const ConcurrentStart&) = delete;

  // OK when every member started; else why each that failed did.
  const absl::Status& status() const { return status_; }
  // The members that started, in the order given.
  std::vector<MemberProcess>& members() { return members_; }

 private:
  // std::mutex rather than Abseil's: TSan sees only what it intercepts.
  std::mutex mu_;
  std::condition_variable cv_;
  size_t finished_ = 0;
  bool released_ = false;
  std::vector<absl::StatusOr<MemberProcess>> results_;  // written by the threads
  std::vector<std::thread> threads_;
  absl::Status status_;
  std::vector<MemberProcess> members_;
};

// Parses a ready file: "<port>\n".
absl::StatusOr<uint16_t> ReadReadyPort(const std::string& path);

}  // namespace reuseport::testing

#endif  // REUSEPORT_TESTS_SUPPORT_MEMBER_PROCESS_H_
