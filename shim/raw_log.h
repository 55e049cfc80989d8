// Logging that is safe anywhere the shim runs: before main, after fork, inside a
// signal handler. A line is built in a fixed stack buffer and written with one
// raw write(2) to stderr: no allocation, no locks, no stdio.
#ifndef REUSEPORT_SHIM_RAW_LOG_H_
#define REUSEPORT_SHIM_RAW_LOG_H_

#include <stddef.h>
#include <stdint.h>

namespace reuseport::shim {

enum LogLevel { kLogQuiet = 0, kLogError = 1, kLogWarn = 2, kLogInfo = 3, kLogDebug = 4 };

// Set once from REUSEPORT_LOG by settings.cc; read without locks.
extern int g_log_level;

class RawLog {
 public:
  explicit RawLog(LogLevel level);
  RawLog& Str(const char* s);
  RawLog& Int(int64_t v);
  RawLog& Uint(uint64_t v);
  RawLog& Errno(int err);  // the name only: "EADDRINUSE" (strerror may allocate)
  void Emit();

 private:
  void Append(const char* s, size_t n);
  bool enabled_;
  size_t len_ = 0;
  char buf_[480];
};

// Returns true the first time it is called for `flag` (a static int per message).
bool FirstTime(int* flag);

}  // namespace reuseport::shim

#endif  // REUSEPORT_SHIM_RAW_LOG_H_
