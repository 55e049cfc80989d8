#include "log_check.h"

#include <map>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "readiness.h"

namespace reuseport::testing {
namespace {

// Collects discrepancies; keeps the first few and counts the rest.
class Problems {
 public:
  void Add(std::string problem) {
    if (count_++ < 10) examples_.push_back(std::move(problem));
  }
  absl::Status ToStatus(const std::string& what) const {
    if (count_ == 0) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": ", count_, " problem(s):\n  ", absl::StrJoin(examples_, "\n  ")));
  }

 private:
  int count_ = 0;
  std::vector<std::string> examples_;
};

}  // namespace

absl::Status CheckTcpLogs(const TcpLoadResult& result, const std::vector<MemberProcess>& members) {
  Problems problems;
  std::map<std::string, std::vector<std::string>> logged_by;  // token -> member ids
  for (const MemberProcess& member : members) {
    absl::StatusOr<std::vector<std::string>> lines = ReadLines(member.log_file);
    if (!lines.ok()) {
      if (lines.status().code() == absl::StatusCode::kNotFound) continue;  // served nothing
      return lines.status();
    }
    for (const std::string& token : *lines) logged_by[token].push_back(member.id);
  }
  for (const std::string& token : result.tokens) {
    auto logged = logged_by.find(token);
    auto reply = result.replies.find(token);
    if (reply == result.replies.end()) {
      problems.Add(absl::StrCat(token, ": no good reply"));
    } else if (logged == logged_by.end()) {
      problems.Add(absl::StrCat(token, ": answered by ", reply->second.responder, " but in no log"));
    } else if (logged->second.size() != 1 || logged->second[0] != reply->second.responder) {
      problems.Add(absl::StrCat(token, ": answered by ", reply->second.responder, " but logged by {",
                                absl::StrJoin(logged->second, ", "), "}"));
    }
    if (logged != logged_by.end()) logged_by.erase(logged);
  }
  for (const auto& [token, ids] : logged_by) {
    problems.Add(absl::StrCat(token, ": logged by {", absl::StrJoin(ids, ", "), "} but never sent"));
  }
  return problems.ToStatus("TCP logs disagree with the client");
}

absl::Status CheckUdpLogs(const UdpFlowResult& result, const std::vector<MemberProcess>& members) {
  Problems problems;
  std::map<uint16_t, int> flow_of_port;
  for (size_t f = 0; f < result.flow_source_ports.size(); f++) {
    if (result.flow_source_ports[f] != 0) flow_of_port[result.flow_source_ports[f]] = static_cast<int>(f);
  }
  int lines_total = 0;
  for (const MemberProcess& member : members) {
    absl::StatusOr<std::vector<std::string>> lines = ReadLines(member.log_file);
    if (!lines.ok()) {
      if (lines.status().code() == absl::StatusCode::kNotFound) continue;
      return lines.status();
    }
    for (const std::string& line : *lines) {
      lines_total++;
      // "<addr>:<port> <flow>-<seq>"; the port follows the last ':' before the space.
      size_t space = line.find(' ');
      size_t colon = line.rfind(':', space);
      size_t dash = line.find('-', space);
      uint32_t port = 0;
      int flow = -1;
      if (space == std::string::npos || colon == std::string::npos || dash == std::string::npos ||
          !absl::SimpleAtoi(line.substr(colon + 1, space - colon - 1), &port) ||
          !absl::SimpleAtoi(line.substr(space + 1, dash - space - 1), &flow)) {
        problems.Add(absl::StrCat(member.id, ": malformed log line '", line, "'"));
        continue;
      }
      auto known = flow_of_port.find(static_cast<uint16_t>(port));
      if (known == flow_of_port.end() || known->second != flow) {
        problems.Add(absl::StrCat(member.id, ": '", line, "' is not from flow ", flow, "'s port"));
      } else if (result.responders_by_flow[static_cast<size_t>(flow)].count(member.id) == 0) {
        problems.Add(absl::StrCat(member.id, ": logged '", line, "' but flow ", flow,
                                  " got no reply from it"));
      }
    }
  }
  if (lines_total != result.replies + result.late_replies) {
    problems.Add(absl::StrCat(lines_total, " log lines for ", result.replies + result.late_replies,
                              " replies received"));
  }
  return problems.ToStatus("UDP logs disagree with the client");
}

}  // namespace reuseport::testing
