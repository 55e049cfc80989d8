// The broker's log: leveled lines on stderr (and syslog when asked), with a
// helper that limits each kind of line to a few a minute, so a hostile or
// broken client cannot flood it.
//
// Thread-safety: the broker logs from its one event-loop thread; the functions
// are nevertheless safe to call from any thread (one write per line).
#ifndef REUSEPORT_BROKER_LOG_H_
#define REUSEPORT_BROKER_LOG_H_

#include <stdint.h>

#include <string>
#include <string_view>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace reuseport::broker {

enum class Severity { kError = 0, kWarning = 1, kInfo = 2, kDebug = 3 };

void SetLogSeverity(Severity max);
bool ParseSeverity(absl::string_view text, Severity* out);
void EnableSyslog(const char* ident);
bool LogEnabled(Severity s);

void LogLine(Severity s, absl::string_view message);

template <typename... Args>
void Log(Severity s, const absl::FormatSpec<Args...>& format, const Args&... args) {
  if (LogEnabled(s)) LogLine(s, absl::StrFormat(format, args...));
}

// Logs at most kLogLimit lines per `key` in each kLogWindowMs window, with one
// line when it starts suppressing and one, when the next window opens, that
// counts what was suppressed. Keys name a kind of event ("bad-version"); a
// flood of one kind cannot drown the log, and a kind that recurs an hour later
// is seen again.
inline constexpr int kLogLimit = 5;
inline constexpr int64_t kLogWindowMs = 60 * 1000;

template <typename... Args>
void LogLimited(absl::string_view key, Severity s, const absl::FormatSpec<Args...>& format, const Args&... args);

// Whether a line of `key` at `now_ms` (a monotonic clock) may be logged; logs
// the suppression lines itself.
bool ShouldLogLimited(absl::string_view key, int64_t now_ms);
int64_t MonotonicMs();

template <typename... Args>
void LogLimited(absl::string_view key, Severity s, const absl::FormatSpec<Args...>& format, const Args&... args) {
  if (LogEnabled(s) && ShouldLogLimited(key, MonotonicMs())) LogLine(s, absl::StrFormat(format, args...));
}

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_LOG_H_
