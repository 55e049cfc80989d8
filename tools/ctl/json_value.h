// A small JSON reader, enough for the broker's status document (objects,
// arrays, strings, numbers, booleans, null). Used by `reuseportctl watch` and
// by tests that check the JSON output parses.
#ifndef REUSEPORT_TOOLS_CTL_JSON_VALUE_H_
#define REUSEPORT_TOOLS_CTL_JSON_VALUE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace reuseport::ctl {

struct JsonValue {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject } type = Type::kNull;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<JsonValue> array;
  std::map<std::string, JsonValue> object;

  // Member access that tolerates absence: a missing key reads as null.
  const JsonValue& operator[](const std::string& key) const;
  double AsNumber() const { return type == Type::kNumber ? number : 0; }
  const std::string& AsString() const { return string; }
};

absl::StatusOr<JsonValue> ParseJson(const std::string& text);

}  // namespace reuseport::ctl

#endif  // REUSEPORT_TOOLS_CTL_JSON_VALUE_H_
