// The live table of `reuseportctl watch`: per member, what it handled since the
// previous look, as a rate, and its share of its group.
#ifndef REUSEPORT_TOOLS_CTL_WATCH_TABLE_H_
#define REUSEPORT_TOOLS_CTL_WATCH_TABLE_H_

#include <string>

#include "json_value.h"

namespace reuseport::ctl {

// Renders `now` with rates computed against `before` (null the first time)
// over `seconds`.
std::string RenderWatchTable(const JsonValue& now, const JsonValue* before, double seconds);

}  // namespace reuseport::ctl

#endif  // REUSEPORT_TOOLS_CTL_WATCH_TABLE_H_
