#include "watch_table.h"

#include <map>
#include <utility>

#include "absl/strings/str_format.h"

namespace reuseport::ctl {

namespace {

double Handled(const JsonValue& m) { return m["connections"].AsNumber() + m["datagrams"].AsNumber(); }

std::map<std::pair<double, double>, double> HandledByMember(const JsonValue& doc) {
  std::map<std::pair<double, double>, double> out;
  for (const JsonValue& g : doc["groups"].array) {
    for (const JsonValue& m : g["members"].array) out[{g["id"].AsNumber(), m["id"].AsNumber()}] = Handled(m);
  }
  return out;
}

}  // namespace

std::string RenderWatchTable(const JsonValue& now, const JsonValue* before, double seconds) {
  auto previous = before ? HandledByMember(*before) : std::map<std::pair<double, double>, double>{};
  std::string out = absl::StrFormat("%-5s %-22s %-7s %-8s %-15s %10s %7s %12s %8s %8s\n", "PROTO", "ADDRESS", "MEMBER",
                                    "PID", "COMMAND", "RATE/s", "SHARE", "TOTAL", "QUEUED", "DROPPED");
  for (const JsonValue& g : now["groups"].array) {
    double group_rate = 0;
    std::map<double, double> rates;
    for (const JsonValue& m : g["members"].array) {
      auto it = previous.find({g["id"].AsNumber(), m["id"].AsNumber()});
      double rate = (it == previous.end() || seconds <= 0) ? 0 : (Handled(m) - it->second) / seconds;
      rates[m["id"].AsNumber()] = rate;
      group_rate += rate;
    }
    for (const JsonValue& m : g["members"].array) {
      double rate = rates[m["id"].AsNumber()];
      bool tcp = g["protocol"].AsString() == "tcp";
      absl::StrAppendFormat(&out, "%-5s %-22s %-7.0f %-8.0f %-15s %10.1f %6.1f%% %12.0f %8.0f %8.0f\n",
                            g["protocol"].AsString(), g["address"].AsString(), m["id"].AsNumber(), m["pid"].AsNumber(),
                            m["command"].AsString().substr(0, 15), rate, group_rate > 0 ? 100.0 * rate / group_rate : 0.0,
                            Handled(m), tcp ? m["queued"].AsNumber() : m["queued_bytes"].AsNumber(),
                            m["dropped"].AsNumber());
    }
  }
  return out;
}

}  // namespace reuseport::ctl
