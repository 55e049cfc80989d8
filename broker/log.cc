#include "log.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include <atomic>
#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"

namespace reuseport::broker {

namespace {

std::atomic<int> g_max_severity{static_cast<int>(Severity::kInfo)};
std::atomic<bool> g_syslog{false};

// --syslog: datagrams to /dev/log from a socket made at start, before the
// system call filter, which has no socket(). glibc's syslog() makes its socket
// lazily, and again after every failure (no /dev/log, as in a chroot, a
// container or early boot; a restarted syslogd), and the filter answers that
// by killing the broker. A line /dev/log does not take goes to stderr.
int g_syslog_fd = -1;
const char* g_syslog_ident = "reuseportd";

const char* Name(Severity s) {
  switch (s) {
    case Severity::kError: return "error";
    case Severity::kWarning: return "warning";
    case Severity::kInfo: return "info";
    case Severity::kDebug: return "debug";
  }
  return "?";
}

int SyslogPriority(Severity s) {
  switch (s) {
    case Severity::kError: return LOG_ERR;
    case Severity::kWarning: return LOG_WARNING;
    case Severity::kInfo: return LOG_INFO;
    case Severity::kDebug: return LOG_DEBUG;
  }
  return LOG_INFO;
}

}  // namespace

void SetLogSeverity(Severity max) { g_max_severity = static_cast<int>(max); }
bool LogEnabled(Severity s) { return static_cast<int>(s) <= g_max_severity.load(std::memory_order_relaxed); }

bool ParseSeverity(absl::string_view text, Severity* out) {
  std::string t = absl::AsciiStrToLower(text);
  if (t == "error") *out = Severity::kError;
  else if (t == "warning" || t == "warn") *out = Severity::kWarning;
  else if (t == "info") *out = Severity::kInfo;
  else if (t == "debug") *out = Severity::kDebug;
  else return false;
  return true;
}

void EnableSyslog(const char* ident) {
  g_syslog_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  g_syslog_ident = ident;
  g_syslog = g_syslog_fd >= 0;
}

void LogLine(Severity s, absl::string_view message) {
  if (g_syslog) {
    // RFC 3164 without the timestamp: syslog daemons stamp what they receive.
    std::string datagram = absl::StrFormat("<%d>%s[%d]: %s", LOG_DAEMON | SyslogPriority(s), g_syslog_ident,
                                           static_cast<int>(getpid()), message);
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    strcpy(addr.sun_path, "/dev/log");
    if (sendto(g_syslog_fd, datagram.data(), datagram.size(), MSG_NOSIGNAL, reinterpret_cast<struct sockaddr*>(&addr),
               sizeof(addr)) == static_cast<ssize_t>(datagram.size())) {
      return;
    }
  }
  struct timespec ts {};
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm {};
  gmtime_r(&ts.tv_sec, &tm);
  std::string line = absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ reuseportd[%d] %s: %s\n", tm.tm_year + 1900,
                                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                                     static_cast<int>(getpid()), Name(s), message);
  // One write per line so lines from concurrent writers never interleave.
  ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

int64_t MonotonicMs() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

bool ShouldLogLimited(absl::string_view key, int64_t now_ms) {
  struct Window {
    int64_t start_ms = 0;
    int logged = 0;
    int64_t suppressed = 0;
  };
  static std::mutex mu;
  static auto* windows = new absl::flat_hash_map<std::string, Window>();
  std::lock_guard<std::mutex> lock(mu);
  auto [it, fresh] = windows->try_emplace(key);
  Window& w = it->second;
  if (fresh || now_ms - w.start_ms >= kLogWindowMs) {
    if (w.suppressed > 0) {
      LogLine(Severity::kWarning, absl::StrFormat("%d '%s' messages were suppressed in the last %d s", w.suppressed,
                                                  key, (now_ms - w.start_ms) / 1000));
    }
    w = Window{now_ms, 0, 0};
  }
  if (w.logged < kLogLimit) {
    ++w.logged;
    return true;
  }
  if (w.suppressed++ == 0) {
    LogLine(Severity::kWarning, absl::StrFormat("further '%s' messages are suppressed for up to %d s", key,
                                                (kLogWindowMs - (now_ms - w.start_ms) + 999) / 1000));
  }
  return false;
}

}  // namespace reuseport::broker
