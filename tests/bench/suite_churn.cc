// How many UDP flows change member when one member leaves or joins: the
// broker's Maglev table against the kernel's own SO_REUSEPORT (which picks
// reciprocal_scale(hash, number of sockets), so most flows move).
#include <stdio.h>
#include <math.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench_clients.h"
#include "bench_suite.h"

namespace reuseport::bench {

namespace {

struct ChurnResult {
  int flows = 0, unanswered = 0;
  double stable_moved = 0;      // two probes, nothing changed in between
  double victim_share = 0;      // flows on the member that left
  double leave_survivors_moved = 0, leave_moved = 0;
  double join_moved = 0, join_to_newcomer = 0;
  int members_before = 0;
};

double Fraction(int part, int whole) { return whole > 0 ? static_cast<double>(part) / whole : 0; }

// Waits (at most 3 s) until the broker's group on `port` has `want` members.
void WaitForMembers(const Broker& broker, uint16_t port, size_t want) {
  for (double end = Now() + 3; Now() < end; usleep(10 * 1000)) {
    absl::StatusOr<ctl::JsonValue> st = broker.Status();
    if (!st.ok()) return;
    for (const ctl::JsonValue& g : (*st)["groups"].array) {
      if (static_cast<int>(g["port"].AsNumber()) == port && g["members"].array.size() == want) return;
    }
  }
}

}  // namespace

bool BenchSuite::Churn() {
  JsonObject section;
  ChurnResult results[2];
  const ShareMode modes[2] = {ShareMode::kEmulated, ShareMode::kNative};
  // The kernel's outcome depends on where the leaver sits in its socket array
  // (the last socket moves into the hole), so every position leaves once, in
  // a fresh group each time, and the figures are averages over them.
  for (int k = 0; k < 2; ++k) {
    ShareMode mode = modes[k];
    std::vector<ChurnResult> runs;
    std::vector<std::string> runs_json;
    for (int victim_index = 0; victim_index < o_.workers; ++victim_index) {
      ChurnResult r;
      progress_.Step(absl::StrFormat("%s: %d members, %d flows; member %d leaves, one joins", ShareModeName(mode),
                                     o_.workers, o_.churn_flows, victim_index + 1));
      WorkerSetOptions wo = Workers(ServerKind::kUdpIdent, mode, o_.workers);
      wo.one_by_one = true;
      WorkerSet ws;
      if (!ws.Start(wo)) return false;
      UdpFlowSet flows;
      if (!flows.Open(Endpoint::Loopback(ws.port()), o_.churn_flows)) return false;
      r.flows = o_.churn_flows;
      r.members_before = o_.workers;
      std::vector<int> a = flows.Probe();
      std::vector<int> a2 = flows.Probe();
      int victim = ws.id(static_cast<size_t>(victim_index));
      ws.StopWorker(static_cast<size_t>(victim_index));
      if (mode == ShareMode::kEmulated) WaitForMembers(broker_, ws.port(), static_cast<size_t>(o_.workers - 1));
      std::vector<int> b = flows.Probe();
      if (!ws.AddWorker()) return false;
      int newcomer = ws.id(ws.size() - 1);
      std::vector<int> c = flows.Probe();
      ws.Stop();

      int stable_total = 0, stable_moved = 0, on_victim = 0, with_a = 0;
      int surv_total = 0, surv_moved = 0, leave_total = 0, leave_moved = 0;
      int join_total = 0, join_moved = 0, to_newcomer = 0, unanswered = 0;
      for (size_t f = 0; f < a.size(); ++f) {
        if (a[f] < 0 || a2[f] < 0 || b[f] < 0 || c[f] < 0) ++unanswered;
        if (a[f] >= 0 && a2[f] >= 0) {
          ++stable_total;
          stable_moved += a[f] != a2[f];
        }
        if (a[f] >= 0) {
          ++with_a;
          on_victim += a[f] == victim;
        }
        if (a[f] >= 0 && b[f] >= 0) {
          ++leave_total;
          leave_moved += a[f] != b[f];
          if (a[f] != victim) {
            ++surv_total;
            surv_moved += a[f] != b[f];
          }
        }
        if (b[f] >= 0 && c[f] >= 0) {
          ++join_total;
          if (b[f] != c[f]) {
            ++join_moved;
            to_newcomer += c[f] == newcomer;
          }
        }
      }
      r.unanswered = unanswered;
      r.stable_moved = Fraction(stable_moved, stable_total);
      r.victim_share = Fraction(on_victim, with_a);
      r.leave_survivors_moved = Fraction(surv_moved, surv_total);
      r.leave_moved = Fraction(leave_moved, leave_total);
      r.join_moved = Fraction(join_moved, join_total);
      r.join_to_newcomer = Fraction(to_newcomer, join_moved);
      JsonObject j;
      j.Integer("leaver_position", victim_index).Integer("unanswered", r.unanswered)
          .Number("moved_without_change", r.stable_moved).Number("leaving_member_share", r.victim_share)
          .Number("leave_moved_among_surviving_members_flows", r.leave_survivors_moved)
          .Number("leave_moved_overall", r.leave_moved).Number("join_moved", r.join_moved)
          .Number("join_moved_to_newcomer", r.join_to_newcomer);
      runs_json.push_back(j.str());
      runs.push_back(r);
    }
    ChurnResult& avg = results[k];
    double n = static_cast<double>(runs.size());
    for (const ChurnResult& r : runs) {
      avg.flows = r.flows;
      avg.members_before = r.members_before;
      avg.unanswered += r.unanswered;
      avg.stable_moved += r.stable_moved / n;
      avg.victim_share += r.victim_share / n;
      avg.leave_survivors_moved += r.leave_survivors_moved / n;
      avg.leave_moved += r.leave_moved / n;
      avg.join_moved += r.join_moved / n;
      avg.join_to_newcomer += r.join_to_newcomer / n;
    }
    JsonObject j;
    j.Integer("members", o_.workers).Integer("flows", avg.flows).Integer("unanswered", avg.unanswered)
        .Number("moved_without_change", avg.stable_moved).Number("leaving_member_share", avg.victim_share)
        .Number("leave_moved_among_surviving_members_flows", avg.leave_survivors_moved)
        .Number("leave_moved_overall", avg.leave_moved).Number("join_moved", avg.join_moved)
        .Number("join_moved_to_newcomer", avg.join_to_newcomer).Raw("by_leaver_position", JsonArray(runs_json));
    section.Raw(ShareModeName(mode), j.str());
  }
  const ChurnResult& e = results[0];
  const ChurnResult& n = results[1];
  int N = o_.workers;
  printf("\n== Churn: %d UDP flows over %d members; one leaves (SIGTERM), then one joins (%d -> %d);"
         " averages over %d runs, each member position leaving once\n",
         o_.churn_flows, N, N - 1, N, N);
  printf("%-26s %-14s %-16s %-22s %-16s %-16s %-16s %s\n", "mode", "no change", "leaver's share",
         "leave: survivors' moved", "leave: all moved", "join: moved", "to the newcomer", "unanswered");
  for (int k = 0; k < 2; ++k) {
    const ChurnResult& r = results[k];
    printf("%-26s %-14s %-16s %-22s %-16s %-16s %-16s %d\n",
           k == 0 ? "reuseport (emulated)" : "native SO_REUSEPORT", absl::StrFormat("%.1f%%", 100 * r.stable_moved).c_str(),
           absl::StrFormat("%.1f%%", 100 * r.victim_share).c_str(),
           absl::StrFormat("%.1f%%", 100 * r.leave_survivors_moved).c_str(),
           absl::StrFormat("%.1f%%", 100 * r.leave_moved).c_str(), absl::StrFormat("%.1f%%", 100 * r.join_moved).c_str(),
           absl::StrFormat("%.1f%%", 100 * r.join_to_newcomer).c_str(), r.unanswered);
  }
  printf("   ideal: leave moves only the leaver's flows (~1/%d); a join moves ~1/%d, all to the newcomer\n", N, N);
  report_.Judged("churn.leave_survivors_moved", "Churn: member leaves, flows of surviving members moved (emulated)",
                 absl::StrFormat("%.2f%% (native %.1f%%)", 100 * e.leave_survivors_moved, 100 * n.leave_survivors_moved),
                 100 * e.leave_survivors_moved, "~0 (<= 2%)", e.leave_survivors_moved <= 0.02,
                 absl::StrFormat("%.2f%%", 100 * e.leave_survivors_moved));
  double ideal_leave = 1.0 / N;
  report_.Judged("churn.leave_moved", absl::StrFormat("Churn: member leaves, all flows moved (emulated; ~1/%d)", N),
                 absl::StrFormat("%.1f%% (leaver had %.1f%%; native %.1f%%)", 100 * e.leave_moved, 100 * e.victim_share,
                                 100 * n.leave_moved),
                 100 * e.leave_moved, absl::StrFormat("~1/%d (%.0f%% +- 5)", N, 100 * ideal_leave),
                 std::fabs(e.leave_moved - ideal_leave) <= 0.05,
                 absl::StrFormat("%+.1f points from 1/%d", 100 * (e.leave_moved - ideal_leave), N));
  double ideal_join = 1.0 / N;
  report_.Judged("churn.join_moved", absl::StrFormat("Churn: member joins (%d -> %d), flows moved (emulated; ~1/%d)",
                                                     N - 1, N, N),
                 absl::StrFormat("%.1f%%, %.0f%% to the newcomer (native %.1f%%)", 100 * e.join_moved,
                                 100 * e.join_to_newcomer, 100 * n.join_moved),
                 100 * e.join_moved, absl::StrFormat("~1/%d (%.0f%% +- 5), >= 95%% to it", N, 100 * ideal_join),
                 std::fabs(e.join_moved - ideal_join) <= 0.05 && e.join_to_newcomer >= 0.95,
                 absl::StrFormat("%+.1f points from 1/%d", 100 * (e.join_moved - ideal_join), N));
  report_.Info("churn.stable", "Churn: flows moved with no change (emulated / native)",
               absl::StrFormat("%.2f%% / %.2f%%", 100 * e.stable_moved, 100 * n.stable_moved), e.stable_moved);
  report_.AddSection("churn", section);
  return true;
}

}  // namespace reuseport::bench
