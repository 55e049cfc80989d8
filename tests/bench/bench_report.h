// What a benchmark run produces: the targets with their verdicts (printed as
// a table), a JSON document of everything measured, and an SVG chart of the
// ratios to native SO_REUSEPORT.
#ifndef REUSEPORT_TESTS_BENCH_BENCH_REPORT_H_
#define REUSEPORT_TESTS_BENCH_BENCH_REPORT_H_

#include <stdio.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bench_stats.h"

namespace reuseport::bench {

std::string JsonQuote(std::string_view s);

// A JSON object built key by key (keys are written as given, in order).
class JsonObject {
 public:
  JsonObject& Number(std::string_view key, double v);  // NaN and infinities become null
  JsonObject& Integer(std::string_view key, int64_t v);
  JsonObject& String(std::string_view key, std::string_view v);
  JsonObject& Bool(std::string_view key, bool v);
  JsonObject& Raw(std::string_view key, std::string_view json);
  JsonObject& Numbers(std::string_view key, const std::vector<double>& v);
  // {"median":..,"min":..,"max":..,"values":[..]}
  JsonObject& SpreadOf(std::string_view key, const Spread& s);
  std::string str() const { return "{" + body_ + "}"; }
  bool empty() const { return body_.empty(); }

 private:
  void Key(std::string_view key);
  std::string body_;
};

std::string JsonArray(const std::vector<std::string>& items);
std::string JsonNumber(double v);

enum class Verdict { kMet, kNotMet, kInfo };

struct TargetRow {
  std::string id;        // stable key, e.g. "tcp_short.rate_ratio"
  std::string what;      // what is measured
  std::string measured;  // the figure as printed: "0.78 (0.74..0.81)"
  double value = 0;      // the figure compared with the goal
  std::string goal;      // ">= 0.85", "<= 20 us", "flat (max/min <= 1.25)"; empty for information
  Verdict verdict = Verdict::kInfo;
  std::string margin;    // "short by 0.07", "0.12 to spare"
};

// One bar of the chart: a ratio to native (median, with the min-max range of
// its trials) and the goal line, if any.
struct RatioBar {
  std::string group;  // "TCP", "UDP", "shim overhead"
  std::string label;
  Spread ratio;
  double goal = 0;         // 0: none
  bool higher_is_better = true;
  std::string series;      // "emulated", "shared", "shim": picks the colour
};

// Thread-compatible: one owner.
class Report {
 public:
  // value >= goal / value <= goal. `spread` gives the printed figure (median
  // and range); the verdict uses its median.
  void AtLeast(const std::string& id, const std::string& what, const Spread& spread, double goal, int decimals,
               const std::string& unit = "");
  void AtMost(const std::string& id, const std::string& what, const Spread& spread, double goal, int decimals,
              const std::string& unit = "");
  // A verdict decided by the caller (e.g. "about 1/N").
  void Judged(const std::string& id, const std::string& what, const std::string& measured, double value,
              const std::string& goal, bool met, const std::string& margin);
  void Info(const std::string& id, const std::string& what, const std::string& measured, double value);

  void AddSection(const std::string& name, const JsonObject& section) { sections_.emplace_back(name, section.str()); }
  void AddBar(const RatioBar& bar) { bars_.push_back(bar); }

  // The whole document: `header` (machine, options) first, then the targets and
  // the sections.
  std::string Json(const JsonObject& header) const;
  std::string Svg(const std::string& title, const std::string& subtitle) const;
  void PrintTable(FILE* out) const;
  int met() const;
  int missed() const;
  const std::vector<TargetRow>& rows() const { return rows_; }

 private:
  void Bound(const std::string& id, const std::string& what, const Spread& spread, double goal, int decimals,
             const std::string& unit, bool at_least);

  std::vector<TargetRow> rows_;
  std::vector<std::pair<std::string, std::string>> sections_;
  std::vector<RatioBar> bars_;
};

}  // namespace reuseport::bench

#endif  // REUSEPORT_TESTS_BENCH_BENCH_REPORT_H_
