// The broker's log: leveled lines on stderr (and syslog when asked), with a
// helper to say something once per key so a hostile or broken client cannot
// flood it.
//
// Thread-safety: the broker logs from its one event-loop thread; the functions
// are nevertheless safe to call from any thread (one write per line).
#ifndef REUSEPORT_BROKER_LOG_H_
#define REUSEPORT_BROKER_LOG_H_

#include <string>
#include <string_view>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace reuseport::broker {

enum class Severity { kError = 0, kWarning = 1, kInfo = 2, kDebug = 3 };

void SetLogSeverity(Severity max);
Severity LogSeverity();
bool ParseSeverity(absl::string_view text, Severity* out);
void EnableSyslog(const char* ident);
bool LogEnabled(Severity s);

void LogLine(Severity s, absl::string_view message);

template <typename... Args>
void Log(Severity s, const absl::FormatSpec<Args...>& format, const Args&... args) {
  if (LogEnabled(s)) LogLine(s, absl::StrFormat(format, args...));
}

// Logs at most `limit` lines per `key` over the broker's life, then one line
// saying further ones are suppressed. Keys name a kind of event ("bad-version").
template <typename... Args>
void LogLimited(absl::string_view key, Severity s, const absl::FormatSpec<Args...>& format, const Args&... args);

bool ShouldLogLimited(absl::string_view key, int limit);

template <typename... Args>
void LogLimited(absl::string_view key, Severity s, const absl::FormatSpec<Args...>& format, const Args&... args) {
  if (LogEnabled(s) && ShouldLogLimited(key, 5)) LogLine(s, absl::StrFormat(format, args...));
}

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_LOG_H_
