// Invariant checks for the fuzzers. A violated invariant prints what broke and
// traps, so libFuzzer keeps the input as a crash reproducer. Not assert():
// that would vanish under NDEBUG and say nothing about which value was wrong.
#ifndef REUSEPORT_TESTS_FUZZ_FUZZ_CHECK_H_
#define REUSEPORT_TESTS_FUZZ_FUZZ_CHECK_H_

#include <stdio.h>

#include <string>

#include "absl/strings/str_format.h"

// `detail` is only evaluated when the check fails, so it may be costly
// (an fd listing, a StrFormat).
#define FUZZ_CHECK(condition, detail)                                                            \
  do {                                                                                            \
    if (!(condition)) {                                                                           \
      std::string fuzz_check_detail_ = (detail);                                                  \
      fprintf(stderr, "\n==FUZZ INVARIANT== %s:%d: %s\n  %s\n", __FILE__, __LINE__, #condition,   \
              fuzz_check_detail_.c_str());                                                        \
      fflush(stderr);                                                                             \
      __builtin_trap();                                                                           \
    }                                                                                             \
  } while (0)

#endif  // REUSEPORT_TESTS_FUZZ_FUZZ_CHECK_H_
