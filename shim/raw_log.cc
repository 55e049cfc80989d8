#include "raw_log.h"

#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "reuseport/errno_name.h"

namespace reuseport::shim {

int g_log_level = kLogWarn;

RawLog::RawLog(LogLevel level) : enabled_(level <= __atomic_load_n(&g_log_level, __ATOMIC_RELAXED)) {
  if (!enabled_) return;
  Str("reuseport[");
  Int(static_cast<int64_t>(syscall(SYS_getpid)));
  Str("]: ");
}

void RawLog::Append(const char* s, size_t n) {
  size_t room = sizeof(buf_) - 1 - len_;  // keep one byte for the newline
  if (n > room) n = room;
  memcpy(buf_ + len_, s, n);
  len_ += n;
}

RawLog& RawLog::Str(const char* s) {
  if (enabled_ && s != nullptr) Append(s, strlen(s));
  return *this;
}

RawLog& RawLog::Uint(uint64_t v) {
  if (!enabled_) return *this;
  char digits[24];
  size_t n = 0;
  do {
    digits[sizeof(digits) - 1 - n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  Append(digits + sizeof(digits) - n, n);
  return *this;
}

RawLog& RawLog::Int(int64_t v) {
  if (!enabled_) return *this;
  if (v < 0) {
    Append("-", 1);
    return Uint(static_cast<uint64_t>(-(v + 1)) + 1);
  }
  return Uint(static_cast<uint64_t>(v));
}

RawLog& RawLog::Errno(int err) {
  if (!enabled_) return *this;
  // strerror() may allocate for unknown values in some libcs; names are static.
  Str(rp_errno_name(err));
  return *this;
}

void RawLog::Emit() {
  if (!enabled_) return;
  buf_[len_++] = '\n';
  int saved = errno;  // logging never changes what the caller sees in errno
  (void)syscall(SYS_write, 2, buf_, len_);
  errno = saved;
}

bool FirstTime(int* flag) { return __atomic_exchange_n(flag, 1, __ATOMIC_RELAXED) == 0; }

}  // namespace reuseport::shim
