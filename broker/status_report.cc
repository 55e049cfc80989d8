#include "status_report.h"

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "control_server.h"
#include "reply_budget.h"
#include "event_loop.h"
#include "socket_facts.h"

namespace reuseport::broker {

namespace {

const int64_t g_started_ms = EventLoop::NowMs();

const char* ProtocolName(int protocol) { return protocol == RP_PROTO_UDP ? "udp" : "tcp"; }

// What is waiting in a member's channel, read from the broker's copy of the
// member's end: connections for TCP (fixed-size records), bytes for UDP.
int64_t QueuedBytes(const Member& m) {
  if (m.ring != nullptr) return static_cast<int64_t>(m.ring->QueuedBytes());
  int bytes = 0;
  if (ioctl(m.channel_member.get(), SIOCINQ, &bytes) != 0) return 0;
  return bytes;
}

int64_t QueuedConnections(const Member& m) {
  return QueuedBytes(m) / static_cast<int64_t>(sizeof(rp_header) + sizeof(rp_connection));
}

std::string Netns(const NamespaceId& n) { return absl::StrFormat("%d:%d", n.dev, n.ino); }

// Groups in a stable order for people and diffs: protocol, port, id.
std::vector<const Group*> SortedGroups(const Registry& registry) {
  std::vector<const Group*> groups;
  for (const auto& [key, domain] : registry.domains()) {
    for (const auto& g : domain->groups) groups.push_back(g.get());
  }
  std::sort(groups.begin(), groups.end(), [](const Group* a, const Group* b) {
    if (a->protocol != b->protocol) return a->protocol < b->protocol;
    if (a->address.port != b->address.port) return a->address.port < b->address.port;
    return a->id < b->id;
  });
  return groups;
}

uint64_t Handled(const Member& m) { return m.connections + m.datagrams; }

// Who holds a member now: the process behind each of its links, oldest first
// (every process that holds a member has a link of its own: the shim of a
// forked child or an exec'd image opens one). A member between links (a
// moment after its creator's link closed) shows its creator.
struct Holder {
  pid_t pid;
  uid_t uid;
  const std::string* command;
};

std::vector<Holder> HoldersOf(const Member& m) {
  std::vector<Holder> out;
  for (const Link* link : m.links) out.push_back({link->identity.creds.pid, link->identity.creds.uid, &link->command});
  if (out.empty()) out.push_back({m.creds.pid, m.creds.uid, &m.command});
  return out;
}

// "tcp 0.0.0.0:8080" and nothing more: another user's group, as `ss -ltn` shows it.
std::string OtherUsersGroupText(const Group& g) {
  return absl::StrFormat("\n%s %s  (another user's group)\n", ProtocolName(g.protocol), FormatAddress(g.address));
}

std::string RenderText(const StatusSources& s, const StatusViewer& viewer) {
  std::vector<const Group*> groups = SortedGroups(s.registry);
  size_t visible_groups = 0, members = 0;
  for (const Group* g : groups) {
    if (!viewer.SeesInFull(*g)) continue;
    ++visible_groups;
    members += g->members.size();
  }
  std::string out;
  if (viewer.sees_everything) {
    out = absl::StrFormat("reuseportd: up %ds, %d group(s), %d member(s), %d link(s)\n",
                          (EventLoop::NowMs() - g_started_ms) / 1000, groups.size(), members, s.links);
  } else {
    out = absl::StrFormat("reuseportd: up %ds; uid %d: %d group(s), %d member(s) (other users' groups: address only)\n",
                          (EventLoop::NowMs() - g_started_ms) / 1000, viewer.uid, visible_groups, members);
  }
  for (const Group* g : groups) {
    if (!viewer.SeesInFull(*g)) {
      out += OtherUsersGroupText(*g);
      continue;
    }
    uint64_t total = 0;
    for (const auto& m : g->members) total += Handled(*m);
    absl::StrAppendFormat(&out, "\n%s %s  group %d  uid %d  netns %s  socket %s\n", ProtocolName(g->protocol),
                          FormatAddress(g->address), g->id, g->owner_uid, Netns(g->domain->key.netns),
                          FormatAddress(g->real->address));
    if (g->protocol == RP_PROTO_TCP) {
      absl::StrAppendFormat(&out, "  accepted %d  refused %d  waiting %d\n", g->accepted, g->refused, g->pending.size());
    } else {
      absl::StrAppendFormat(&out, "  datagrams %d  dropped (no member) %d  kernel drops %d\n", g->datagrams,
                            g->dropped_full, g->real->kernel_drops);
    }
    absl::StrAppendFormat(&out, "  %-8s %-8s %-6s %-16s %-10s %7s %8s %8s %8s\n", "MEMBER", "PID", "UID", "COMMAND",
                          "STATE", "SHARE", g->protocol == RP_PROTO_TCP ? "CONNS" : "DGRAMS", "QUEUED", "DROPPED");
    for (const auto& m : g->members) {
      double share = total == 0 ? 0.0 : 100.0 * static_cast<double>(Handled(*m)) / static_cast<double>(total);
      int64_t queued = g->protocol == RP_PROTO_TCP ? QueuedConnections(*m) : QueuedBytes(*m);
      std::vector<Holder> holders = HoldersOf(*m);
      absl::StrAppendFormat(&out, "  %-8d %-8d %-6d %-16s %-10s %6.1f%% %8d %8d %8d\n", m->id, holders[0].pid,
                            holders[0].uid, *holders[0].command,
                            m->listening ? (g->protocol == RP_PROTO_TCP ? "listening" : "receiving") : "bound", share,
                            Handled(*m), queued, m->dropped);
      // The other processes that hold it (forked workers, an exec'd image).
      for (size_t h = 1; h < holders.size(); ++h) {
        absl::StrAppendFormat(&out, "  %-8s %-8d %-6d %-16s\n", "", holders[h].pid, holders[h].uid, *holders[h].command);
      }
    }
  }
  if (viewer.sees_everything && !s.control.refusals_by_reason.empty()) {
    out += "\nrefusals:";
    std::vector<std::pair<std::string, uint64_t>> r(s.control.refusals_by_reason.begin(), s.control.refusals_by_reason.end());
    std::sort(r.begin(), r.end());
    for (const auto& [reason, n] : r) absl::StrAppendFormat(&out, " %s=%d", reason, n);
    out += "\n";
  }
  return out;
}

// What each uid holds of the broker against its limits (policy.h), counted
// now: connections waiting in the broker and in its members' channels.
std::string UsageJson(const StatusSources& s, const StatusViewer& viewer) {
  std::vector<uid_t> uids;
  for (const auto& [uid, usage] : s.registry.usage()) {
    if (viewer.sees_everything || uid == viewer.uid) uids.push_back(uid);
  }
  std::sort(uids.begin(), uids.end());
  std::string out = "\"uids\":[";
  for (size_t i = 0; i < uids.size(); ++i) {
    const UidUsage& u = s.registry.UsageOf(uids[i]);
    int64_t waiting = 0, in_channels = 0;
    for (const Group* g : s.registry.GroupsOwnedBy(uids[i])) {
      waiting += static_cast<int64_t>(g->pending.size());
      if (g->protocol != RP_PROTO_TCP) continue;
      for (const auto& m : g->members) in_channels += QueuedConnections(*m);
    }
    absl::StrAppendFormat(&out,
                          "%s{\"uid\":%d,\"members\":%d,\"groups\":%d,\"queued\":%d,\"waiting\":%d,"
                          "\"udp_channel_bytes\":%d,\"reply_bytes\":%d}",
                          i == 0 ? "" : ",", uids[i], u.members, u.groups, waiting + in_channels, waiting,
                          u.udp_channel_bytes, s.replies != nullptr ? s.replies->HeldBy(uids[i]) : 0);
  }
  out += "],";
  return out;
}

std::string RenderJson(const StatusSources& s, const StatusViewer& viewer) {
  std::vector<const Group*> groups = SortedGroups(s.registry);
  std::string out = absl::StrFormat("{\"version\":1,\"pid\":%d,\"uptime_seconds\":%d,\"viewer_uid\":%d,\"sees_everything\":%s,",
                                    getpid(), (EventLoop::NowMs() - g_started_ms) / 1000, viewer.uid,
                                    viewer.sees_everything ? "true" : "false");
  if (viewer.sees_everything) absl::StrAppendFormat(&out, "\"links\":%d,", s.links);
  out += UsageJson(s, viewer);
  out += "\"groups\":[";
  int64_t now = EventLoop::NowMs();
  for (size_t i = 0; i < groups.size(); ++i) {
    const Group* g = groups[i];
    if (!viewer.SeesInFull(*g)) {
      absl::StrAppendFormat(&out, "%s{\"protocol\":\"%s\",\"address\":\"%s\",\"port\":%d,\"family\":\"%s\",\"yours\":false}",
                            i == 0 ? "" : ",", ProtocolName(g->protocol), JsonEscape(FormatAddress(g->address)),
                            g->address.port, g->address.family == AF_INET6 ? "ipv6" : "ipv4");
      continue;
    }
    absl::StrAppendFormat(&out,
                          "%s{\"id\":%d,\"protocol\":\"%s\",\"address\":\"%s\",\"port\":%d,\"family\":\"%s\","
                          "\"v6only\":%s,\"owner_uid\":%d,\"netns\":\"%s\",\"socket\":\"%s\",\"socket_owner_uid\":%d,"
                          "\"accepted\":%d,"
                          "\"refused\":%d,\"waiting\":%d,\"datagrams\":%d,\"dropped_no_member\":%d,\"kernel_drops\":%d,"
                          "\"members_joined\":%d,\"members_left\":%d,\"members\":[",
                          i == 0 ? "" : ",", g->id, ProtocolName(g->protocol), JsonEscape(FormatAddress(g->address)),
                          g->address.port, g->address.family == AF_INET6 ? "ipv6" : "ipv4", g->v6only ? "true" : "false",
                          g->owner_uid, Netns(g->domain->key.netns), JsonEscape(FormatAddress(g->real->address)),
                          g->real->owner_uid, g->accepted, g->refused, g->pending.size(), g->datagrams, g->dropped_full,
                          g->real->kernel_drops, g->members_joined, g->members_left);
    for (size_t j = 0; j < g->members.size(); ++j) {
      const Member& m = *g->members[j];
      std::vector<Holder> holders = HoldersOf(m);
      absl::StrAppendFormat(&out,
                            "%s{\"id\":%d,\"pid\":%d,\"uid\":%d,\"command\":\"%s\",\"holders\":[", j == 0 ? "" : ",",
                            m.id, holders[0].pid, holders[0].uid, JsonEscape(*holders[0].command));
      for (size_t h = 0; h < holders.size(); ++h) {
        absl::StrAppendFormat(&out, "%s{\"pid\":%d,\"uid\":%d,\"command\":\"%s\"}", h == 0 ? "" : ",", holders[h].pid,
                              holders[h].uid, JsonEscape(*holders[h].command));
      }
      absl::StrAppendFormat(&out,
                            "],\"creator_pid\":%d,\"listening\":%s,\"connections\":%d,"
                            "\"datagrams\":%d,\"dropped\":%d,\"redirected_away\":%d,\"recovered\":%d,\"stolen\":%d,\"stalls\":%d,\"queued\":%d,"
                            "\"queued_bytes\":%d,\"links\":%d,\"member_seconds\":%d}",
                            m.creds.pid, m.listening ? "true" : "false", m.connections, m.datagrams, m.dropped, m.redirected_away,
                            m.recovered, m.stolen, m.stalls, g->protocol == RP_PROTO_TCP ? QueuedConnections(m) : 0, QueuedBytes(m),
                            m.links.size(), (now - m.joined_ms) / 1000);
    }
    out += "]}";
  }
  if (!viewer.sees_everything) {
    out += "]}\n";
    return out;
  }
  absl::StrAppendFormat(&out,
                        "],\"totals\":{\"connections_accepted\":%d,\"connections_refused\":%d,\"datagrams_received\":%d,"
                        "\"datagrams_unrouted\":%d,\"accept_errors\":%d,\"requests\":%d,\"rejected_messages\":%d,"
                        "\"refusals\":%d,\"joins_waited\":%d,\"links_closed_unread\":%d},\"refusals\":{",
                        s.dispatch.connections_accepted, s.dispatch.connections_refused, s.dispatch.datagrams_received,
                        s.dispatch.datagrams_unrouted, s.dispatch.accept_errors, s.control.requests,
                        s.control.rejected_messages, s.control.refusals, s.control.joins_waited,
                        s.control.links_closed_unread);
  std::vector<std::pair<std::string, uint64_t>> r(s.control.refusals_by_reason.begin(), s.control.refusals_by_reason.end());
  std::sort(r.begin(), r.end());
  for (size_t i = 0; i < r.size(); ++i) absl::StrAppendFormat(&out, "%s\"%s\":%d", i == 0 ? "" : ",", JsonEscape(r[i].first), r[i].second);
  out += "}}\n";
  return out;
}

struct Metric {
  const char* name;
  const char* type;
  const char* help;
};

void Header(std::string* out, const Metric& m) {
  absl::StrAppendFormat(out, "# HELP %s %s\n# TYPE %s %s\n", m.name, m.help, m.name, m.type);
}

std::string GroupLabels(const Group& g) {
  return absl::StrFormat("group=\"%d\",protocol=\"%s\",address=\"%s\"", g.id, ProtocolName(g.protocol),
                         PrometheusLabelEscape(FormatAddress(g.address)));
}

std::string MemberLabels(const Group& g, const Member& m) {
  std::vector<Holder> holders = HoldersOf(m);
  return absl::StrFormat("%s,member=\"%d\",pid=\"%d\",command=\"%s\"", GroupLabels(g), m.id, holders[0].pid,
                         PrometheusLabelEscape(*holders[0].command));
}

std::string RenderPrometheus(const StatusSources& s, const StatusViewer& viewer) {
  std::vector<const Group*> groups;
  for (const Group* g : SortedGroups(s.registry)) {
    if (viewer.SeesInFull(*g)) groups.push_back(g);  // other users' groups are not the viewer's metrics
  }
  std::string out;
  auto per_member = [&](const Metric& metric, auto value, int protocol) {
    Header(&out, metric);
    for (const Group* g : groups) {
      if (protocol != 0 && g->protocol != protocol) continue;
      for (const auto& m : g->members) absl::StrAppendFormat(&out, "%s{%s} %d\n", metric.name, MemberLabels(*g, *m), value(*g, *m));
    }
  };
  auto per_group = [&](const Metric& metric, auto value, int protocol) {
    Header(&out, metric);
    for (const Group* g : groups) {
      if (protocol != 0 && g->protocol != protocol) continue;
      absl::StrAppendFormat(&out, "%s{%s} %d\n", metric.name, GroupLabels(*g), value(*g));
    }
  };
  Header(&out, {"reuseport_up", "gauge", "1 while the broker answers."});
  out += "reuseport_up 1\n";
  Header(&out, {"reuseport_uptime_seconds", "gauge", "Seconds since the broker started."});
  absl::StrAppendFormat(&out, "reuseport_uptime_seconds %d\n", (EventLoop::NowMs() - g_started_ms) / 1000);
  if (viewer.sees_everything) {
    Header(&out, {"reuseport_links", "gauge", "Open connections to the control socket."});
    absl::StrAppendFormat(&out, "reuseport_links %d\n", s.links);
  }
  per_group({"reuseport_group_members", "gauge", "Members of each group."}, [](const Group& g) { return g.members.size(); }, 0);
  per_group({"reuseport_group_owner_uid", "gauge", "The uid that owns each group."}, [](const Group& g) { return g.owner_uid; }, 0);
  per_group({"reuseport_connections_accepted_total", "counter", "TCP connections accepted for each group."},
            [](const Group& g) { return g.accepted; }, RP_PROTO_TCP);
  per_group({"reuseport_connections_waiting", "gauge", "Accepted connections waiting because every member is full."},
            [](const Group& g) { return g.pending.size(); }, RP_PROTO_TCP);
  per_group({"reuseport_datagrams_received_total", "counter", "UDP datagrams received for each group."},
            [](const Group& g) { return g.datagrams; }, RP_PROTO_UDP);
  per_group({"reuseport_kernel_drops_total", "counter", "Datagrams the kernel dropped on the group's socket (SO_RXQ_OVFL)."},
            [](const Group& g) { return g.real->kernel_drops; }, RP_PROTO_UDP);
  per_member({"reuseport_connections_dispatched_total", "counter", "TCP connections handed to each member."},
             [](const Group&, const Member& m) { return m.connections; }, RP_PROTO_TCP);
  per_member({"reuseport_datagrams_dispatched_total", "counter", "UDP datagrams handed to each member."},
             [](const Group&, const Member& m) { return m.datagrams; }, RP_PROTO_UDP);
  per_member({"reuseport_datagrams_dropped_total", "counter", "Datagrams dropped because the member's queue was full."},
             [](const Group&, const Member& m) { return m.dropped; }, RP_PROTO_UDP);
  per_member({"reuseport_member_queued", "gauge", "Connections (TCP) or bytes (UDP) waiting in each member's queue."},
             [](const Group& g, const Member& m) { return g.protocol == RP_PROTO_TCP ? QueuedConnections(m) : QueuedBytes(m); }, 0);
  per_member({"reuseport_redirected_total", "counter", "Connections sent to another member because this one was full."},
             [](const Group&, const Member& m) { return m.redirected_away; }, RP_PROTO_TCP);
  per_member({"reuseport_recovered_total", "counter", "Unconsumed items taken back from a member that left."},
             [](const Group&, const Member& m) { return m.recovered; }, 0);
  per_member({"reuseport_stolen_total", "counter", "Queued connections taken back from a member that stalled."},
             [](const Group&, const Member& m) { return m.stolen; }, RP_PROTO_TCP);
  // Per uid, against its limits.
  std::vector<uid_t> uids;
  for (const auto& [uid, usage] : s.registry.usage()) {
    if (viewer.sees_everything || uid == viewer.uid) uids.push_back(uid);
  }
  std::sort(uids.begin(), uids.end());
  auto per_uid = [&](const Metric& metric, auto value) {
    Header(&out, metric);
    for (uid_t uid : uids) absl::StrAppendFormat(&out, "%s{uid=\"%d\"} %d\n", metric.name, uid, value(uid));
  };
  per_uid({"reuseport_uid_members", "gauge", "Member sockets of each uid (limit: members)."},
          [&](uid_t uid) { return s.registry.UsageOf(uid).members; });
  per_uid({"reuseport_uid_groups", "gauge", "Groups each uid owns (limit: groups)."},
          [&](uid_t uid) { return s.registry.UsageOf(uid).groups; });
  per_uid({"reuseport_uid_queued", "gauge",
           "Connections accepted for each uid's groups, not yet taken by a member (limit: queued)."},
          [&](uid_t uid) {
            int64_t queued = 0;
            for (const Group* g : s.registry.GroupsOwnedBy(uid)) {
              queued += static_cast<int64_t>(g->pending.size());
              if (g->protocol == RP_PROTO_TCP) {
                for (const auto& m : g->members) queued += QueuedConnections(*m);
              }
            }
            return queued;
          });
  per_uid({"reuseport_uid_udp_channel_bytes", "gauge", "UDP channel buffers of each uid's members (limit: udp_bytes)."},
          [&](uid_t uid) { return s.registry.UsageOf(uid).udp_channel_bytes; });
  if (!viewer.sees_everything) return out;  // the rest is the whole broker's
  Header(&out, {"reuseport_connections_refused_total", "counter", "Connections reset because no group could take them."});
  absl::StrAppendFormat(&out, "reuseport_connections_refused_total %d\n", s.dispatch.connections_refused);
  Header(&out, {"reuseport_datagrams_unrouted_total", "counter", "Datagrams for an address no group holds."});
  absl::StrAppendFormat(&out, "reuseport_datagrams_unrouted_total %d\n", s.dispatch.datagrams_unrouted);
  Header(&out, {"reuseport_requests_total", "counter", "Requests received on the control socket."});
  absl::StrAppendFormat(&out, "reuseport_requests_total %d\n", s.control.requests);
  Header(&out, {"reuseport_joins_waited_total", "counter", "Joins that found no group yet and waited for one being created."});
  absl::StrAppendFormat(&out, "reuseport_joins_waited_total %d\n", s.control.joins_waited);
  Header(&out, {"reuseport_links_closed_unread_total", "counter",
                "Links closed for holding more unread replies than their uid's reply budget."});
  absl::StrAppendFormat(&out, "reuseport_links_closed_unread_total %d\n", s.control.links_closed_unread);
  Header(&out, {"reuseport_refusals_total", "counter", "Requests answered with an error, by reason."});
  std::vector<std::pair<std::string, uint64_t>> r(s.control.refusals_by_reason.begin(), s.control.refusals_by_reason.end());
  std::sort(r.begin(), r.end());
  for (const auto& [reason, n] : r) absl::StrAppendFormat(&out, "reuseport_refusals_total{reason=\"%s\"} %d\n", PrometheusLabelEscape(reason), n);
  return out;
}

}  // namespace

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {  // keeps the document valid whatever a comm holds
          absl::StrAppendFormat(&out, "\\u%04x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

std::string PrometheusLabelEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string RenderStatus(const StatusSources& sources, rp_status_format format, const StatusViewer& viewer) {
  switch (format) {
    case RP_STATUS_JSON: return RenderJson(sources, viewer);
    case RP_STATUS_PROMETHEUS: return RenderPrometheus(sources, viewer);
    case RP_STATUS_TEXT:
    default: return RenderText(sources, viewer);
  }
}

}  // namespace reuseport::broker
