// Renders what the broker knows for an operator: groups (protocol, address,
// owner uid, namespace), members (the processes that hold each now: pid, uid,
// command of every link) and how load is spread, as text, JSON, or the
// Prometheus text exposition format.
#ifndef REUSEPORT_BROKER_STATUS_REPORT_H_
#define REUSEPORT_BROKER_STATUS_REPORT_H_

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "dispatcher.h"
#include "registry.h"
#include "reuseport/protocol.h"

namespace reuseport::broker {

struct ControlTotals;

// Who is asking. An operator (root, the broker's own uid, the metrics
// endpoint) sees everything. Anyone else sees their own uid's groups in full
// and other users' groups only as `ss -ltn` would show them: protocol,
// address and port; no pids, commands, counters, or the broker's totals.
struct StatusViewer {
  uid_t uid = 0;
  bool sees_everything = true;
  bool SeesInFull(const Group& g) const { return sees_everything || g.owner_uid == uid; }
};

class ReplyBudget;

struct StatusSources {
  const Registry& registry;
  const DispatchTotals& dispatch;
  const ControlTotals& control;
  size_t links;
  const ReplyBudget* replies = nullptr;  // unread replies held per uid
};

std::string RenderStatus(const StatusSources& sources, rp_status_format format, const StatusViewer& viewer);

// Exposed for tests.
std::string JsonEscape(const std::string& s);
std::string PrometheusLabelEscape(const std::string& s);

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_STATUS_REPORT_H_
