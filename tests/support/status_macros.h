#ifndef REUSEPORT_TESTS_SUPPORT_STATUS_MACROS_H_
#define REUSEPORT_TESTS_SUPPORT_STATUS_MACROS_H_

// gtest assertions for absl::Status / StatusOr (this absl and gtest have none).
// Header-only; include it from test files, which link GTest::gtest.

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace reuseport::testing::status_macros_internal {
inline const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}
}  // namespace reuseport::testing::status_macros_internal

// Both evaluate expr once and accept "<< more context".
#ifndef ASSERT_OK
#define ASSERT_OK(expr)                                                                   \
  switch (0)                                                                              \
  case 0:                                                                                 \
  default:                                                                                \
    if (const ::absl::Status reuseport_status_ =                                          \
            ::reuseport::testing::status_macros_internal::GetStatus(expr);                \
        reuseport_status_.ok()) {                                                         \
    } else                                                                                \
      FAIL() << #expr << ": " << reuseport_status_ << " "
#endif

#ifndef EXPECT_OK
#define EXPECT_OK(expr)                                                                   \
  switch (0)                                                                              \
  case 0:                                                                                 \
  default:                                                                                \
    if (const ::absl::Status reuseport_status_ =                                          \
            ::reuseport::testing::status_macros_internal::GetStatus(expr);                \
        reuseport_status_.ok()) {                                                         \
    } else                                                                                \
      ADD_FAILURE() << #expr << ": " << reuseport_status_ << " "
#endif

#define REUSEPORT_STATUS_MACROS_CONCAT_INNER(a, b) a##b
#define REUSEPORT_STATUS_MACROS_CONCAT(a, b) REUSEPORT_STATUS_MACROS_CONCAT_INNER(a, b)

// ASSERT_OK_AND_ASSIGN(auto member, StartMember(...)); evaluates expr once.
#ifndef ASSERT_OK_AND_ASSIGN
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  REUSEPORT_ASSERT_OK_AND_ASSIGN_IMPL(  \
      REUSEPORT_STATUS_MACROS_CONCAT(status_or_value_, __LINE__), lhs, expr)
#define REUSEPORT_ASSERT_OK_AND_ASSIGN_IMPL(status_or, lhs, expr) \
  auto status_or = (expr);                                        \
  ASSERT_TRUE(status_or.ok()) << status_or.status();              \
  lhs = std::move(status_or).value()
#endif

#endif  // REUSEPORT_TESTS_SUPPORT_STATUS_MACROS_H_

