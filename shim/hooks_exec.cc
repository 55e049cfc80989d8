// Exported hooks for the exec family. execv, execvp and the execl variants use
// the process's environment; they all end in Execve/Execvpe (program_exec.h),
// which keep the shim when members are passed on.
#include <stdarg.h>
#include <unistd.h>

#include "exported_hooks.h"
#include "program_exec.h"

namespace rs = reuseport::shim;

// glibc declares execl's first argument non-null; programs pass null anyway.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wnonnull-compare"
#endif

int execve(const char* path, char* const argv[], char* const envp[]) noexcept { return rs::Execve(path, argv, envp); }
int execvpe(const char* file, char* const argv[], char* const envp[]) noexcept { return rs::Execvpe(file, argv, envp); }
int fexecve(int fd, char* const argv[], char* const envp[]) noexcept { return rs::Fexecve(fd, argv, envp); }
int execv(const char* path, char* const argv[]) noexcept { return rs::Execve(path, argv, environ); }
int execvp(const char* file, char* const argv[]) noexcept { return rs::Execvpe(file, argv, environ); }

// execl, execlp, execle: the arguments become an argv array on the stack, as
// glibc builds it. va_arg reads the terminating null too, so execle's envp
// comes next.
#define RP_COLLECT_ARGV(arg, argv)                                   \
  va_list ap;                                                        \
  va_start(ap, arg);                                                 \
  size_t argc_ = 1;                                                  \
  {                                                                  \
    va_list count;                                                   \
    va_copy(count, ap);                                              \
    while (arg != nullptr && va_arg(count, char*) != nullptr) ++argc_; \
    va_end(count);                                                   \
  }                                                                  \
  char* argv[argc_ + 1];                                             \
  argv[0] = const_cast<char*>(arg);                                  \
  if (arg != nullptr) {                                              \
    for (size_t i = 1; i <= argc_; ++i) argv[i] = va_arg(ap, char*); \
  }                                                                  \
  argv[argc_] = nullptr

int execl(const char* path, const char* arg, ...) noexcept {
  RP_COLLECT_ARGV(arg, argv);
  va_end(ap);
  return rs::Execve(path, argv, environ);
}
int execlp(const char* file, const char* arg, ...) noexcept {
  RP_COLLECT_ARGV(arg, argv);
  va_end(ap);
  return rs::Execvpe(file, argv, environ);
}
int execle(const char* path, const char* arg, ...) noexcept {
  RP_COLLECT_ARGV(arg, argv);
  char* const* envp = va_arg(ap, char* const*);
  va_end(ap);
  return rs::Execve(path, argv, envp);
}
