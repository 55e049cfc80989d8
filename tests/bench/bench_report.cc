#include "bench_report.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace reuseport::bench {

std::string JsonQuote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) out += absl::StrFormat("\\u%04x", c);
        else out += c;
    }
  }
  return out + "\"";
}

std::string JsonNumber(double v) {
  if (std::isnan(v) || std::isinf(v)) return "null";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrFormat("%.0f", v);
  return absl::StrFormat("%.6g", v);
}

std::string JsonArray(const std::vector<std::string>& items) { return "[" + absl::StrJoin(items, ",") + "]"; }

void JsonObject::Key(std::string_view key) {
  if (!body_.empty()) body_ += ",";
  body_ += JsonQuote(key);
  body_ += ":";
}

JsonObject& JsonObject::Number(std::string_view key, double v) {
  Key(key);
  body_ += JsonNumber(v);
  return *this;
}

JsonObject& JsonObject::Integer(std::string_view key, int64_t v) {
  Key(key);
  body_ += absl::StrCat(v);
  return *this;
}

JsonObject& JsonObject::String(std::string_view key, std::string_view v) {
  Key(key);
  body_ += JsonQuote(v);
  return *this;
}

JsonObject& JsonObject::Bool(std::string_view key, bool v) {
  Key(key);
  body_ += v ? "true" : "false";
  return *this;
}

JsonObject& JsonObject::Raw(std::string_view key, std::string_view json) {
  Key(key);
  body_ += json;
  return *this;
}

JsonObject& JsonObject::Numbers(std::string_view key, const std::vector<double>& v) {
  std::vector<std::string> items;
  for (double d : v) items.push_back(JsonNumber(d));
  return Raw(key, JsonArray(items));
}

JsonObject& JsonObject::SpreadOf(std::string_view key, const Spread& s) {
  JsonObject o;
  o.Number("median", s.median).Number("min", s.min).Number("max", s.max).Numbers("values", s.values);
  return Raw(key, o.str());
}

namespace {

std::string WithUnit(const std::string& number, const std::string& unit) {
  return unit.empty() ? number : absl::StrCat(number, " ", unit);
}

}  // namespace

void Report::AtLeast(const std::string& id, const std::string& what, const Spread& s, double goal, int decimals,
                     const std::string& unit) {
  Bound(id, what, s, goal, decimals, unit, true);
}

void Report::AtMost(const std::string& id, const std::string& what, const Spread& s, double goal, int decimals,
                    const std::string& unit) {
  Bound(id, what, s, goal, decimals, unit, false);
}

void Report::Bound(const std::string& id, const std::string& what, const Spread& s, double goal, int decimals,
                   const std::string& unit, bool at_least) {
  TargetRow r;
  r.id = id;
  r.what = what;
  r.measured = WithUnit(FormatSpread(s, decimals), unit);
  r.value = s.median;
  r.goal = WithUnit(absl::StrCat(at_least ? ">= " : "<= ", FormatNumber(goal, decimals)), unit);
  bool met = s.n > 0 && (at_least ? s.median >= goal : s.median <= goal);
  r.verdict = met ? Verdict::kMet : Verdict::kNotMet;
  double d = std::fabs(s.median - goal);
  const char* sign = at_least ? (met ? "+" : "short by ") : (met ? "-" : "over by ");
  r.margin = s.n == 0 ? "not measured" : WithUnit(absl::StrCat(sign, FormatNumber(d, decimals)), unit);
  rows_.push_back(r);
}


void Report::Judged(const std::string& id, const std::string& what, const std::string& measured, double value,
                    const std::string& goal, bool met, const std::string& margin) {
  rows_.push_back({id, what, measured, value, goal, met ? Verdict::kMet : Verdict::kNotMet, margin});
}

void Report::Info(const std::string& id, const std::string& what, const std::string& measured, double value) {
  rows_.push_back({id, what, measured, value, "", Verdict::kInfo, ""});
}

int Report::met() const {
  return static_cast<int>(std::count_if(rows_.begin(), rows_.end(), [](const TargetRow& r) { return r.verdict == Verdict::kMet; }));
}

int Report::missed() const {
  return static_cast<int>(
      std::count_if(rows_.begin(), rows_.end(), [](const TargetRow& r) { return r.verdict == Verdict::kNotMet; }));
}

std::string Report::Json(const JsonObject& header) const {
  std::string out = header.str();
  out.pop_back();  // reopen the header object
  std::vector<std::string> targets;
  for (const TargetRow& r : rows_) {
    JsonObject o;
    o.String("id", r.id).String("what", r.what).String("measured", r.measured).Number("value", r.value);
    if (r.verdict == Verdict::kInfo) {
      o.Raw("met", "null");
    } else {
      o.String("goal", r.goal).Bool("met", r.verdict == Verdict::kMet).String("margin", r.margin);
    }
    targets.push_back(o.str());
  }
  absl::StrAppend(&out, header.empty() ? "" : ",", "\"targets\":", JsonArray(targets), ",\"sections\":{");
  for (size_t i = 0; i < sections_.size(); ++i) {
    absl::StrAppend(&out, i ? "," : "", JsonQuote(sections_[i].first), ":", sections_[i].second);
  }
  JsonObject summary;
  summary.Integer("met", met()).Integer("missed", missed());
  absl::StrAppend(&out, "},\"summary\":", summary.str(), "}\n");
  return out;
}

void Report::PrintTable(FILE* out) const {
  size_t what_w = 10, measured_w = 8, goal_w = 4;
  for (const TargetRow& r : rows_) {
    what_w = std::max(what_w, r.what.size());
    measured_w = std::max(measured_w, r.measured.size());
    goal_w = std::max(goal_w, r.goal.size());
  }
  fprintf(out, "%-*s  %-*s  %-*s  %s\n", static_cast<int>(what_w), "target", static_cast<int>(measured_w),
          "measured", static_cast<int>(goal_w), "goal", "result");
  fprintf(out, "%s\n", std::string(what_w + measured_w + goal_w + 30, '-').c_str());
  for (const TargetRow& r : rows_) {
    std::string result = r.verdict == Verdict::kMet      ? absl::StrCat("met (", r.margin, ")")
                         : r.verdict == Verdict::kNotMet ? absl::StrCat("NOT MET (", r.margin, ")")
                                                         : "(information)";
    fprintf(out, "%-*s  %-*s  %-*s  %s\n", static_cast<int>(what_w), r.what.c_str(), static_cast<int>(measured_w),
            r.measured.c_str(), static_cast<int>(goal_w), r.goal.c_str(), result.c_str());
  }
  fprintf(out, "%d met, %d not met\n", met(), missed());
}

namespace {

std::string XmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

const char* SeriesColour(const std::string& series) {
  if (series == "emulated") return "#2b6cb0";
  if (series == "shared") return "#a0aec0";
  return "#319795";
}

}  // namespace

// A horizontal bar per ratio, grouped; the native level (1.0) as a vertical
// line, each goal as a red tick on its bar's row, min-max of the trials as a
// whisker. Written by hand: no plotting package needed.
std::string Report::Svg(const std::string& title, const std::string& subtitle) const {
  const int width = 1060, label_w = 360, left = label_w + 20, right_pad = 250, row_h = 24, top = 70;
  double x_max = 1.2;
  for (const RatioBar& b : bars_) x_max = std::max({x_max, b.ratio.max * 1.05, b.goal * 1.05});
  x_max = std::ceil(x_max * 5) / 5;
  const int plot_w = width - left - right_pad;
  auto X = [&](double v) { return left + static_cast<int>(std::lround(std::clamp(v, 0.0, x_max) / x_max * plot_w)); };

  std::vector<std::string> groups;
  for (const RatioBar& b : bars_) {
    if (std::find(groups.begin(), groups.end(), b.group) == groups.end()) groups.push_back(b.group);
  }
  int rows = static_cast<int>(bars_.size() + groups.size());
  int height = top + rows * row_h + 70;
  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
      "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
      "<text x=\"20\" y=\"26\" font-size=\"17\" font-weight=\"bold\">%s</text>\n"
      "<text x=\"20\" y=\"46\" fill=\"#4a5568\">%s</text>\n",
      width, height, width, height, XmlEscape(title), XmlEscape(subtitle));
  int plot_bottom = top + rows * row_h;
  // Grid and axis.
  for (double t = 0; t <= x_max + 1e-9; t += 0.2) {
    int x = X(t);
    absl::StrAppendFormat(&svg, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#edf2f7\"/>\n", x, top - 6, x,
                          plot_bottom);
    absl::StrAppendFormat(&svg, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#4a5568\">%.1f</text>\n", x,
                          plot_bottom + 16, t);
  }
  absl::StrAppendFormat(&svg,
                        "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#1a202c\" stroke-width=\"1.5\"/>\n"
                        "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"11\">native = 1.0</text>\n",
                        X(1), top - 8, X(1), plot_bottom, X(1), top - 12);
  int y = top;
  for (const std::string& g : groups) {
    absl::StrAppendFormat(&svg, "<text x=\"20\" y=\"%d\" font-weight=\"bold\">%s</text>\n", y + 16, XmlEscape(g));
    y += row_h;
    for (const RatioBar& b : bars_) {
      if (b.group != g) continue;
      int bar_y = y + 5, bar_h = row_h - 10;
      absl::StrAppendFormat(&svg, "<text x=\"32\" y=\"%d\">%s</text>\n", y + 16, XmlEscape(b.label));
      absl::StrAppendFormat(&svg, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/>\n", left, bar_y,
                            std::max(1, X(b.ratio.median) - left), bar_h, SeriesColour(b.series));
      if (b.ratio.n > 1) {
        int cy = bar_y + bar_h / 2;
        absl::StrAppendFormat(&svg,
                              "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#1a202c\"/>"
                              "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#1a202c\"/>"
                              "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#1a202c\"/>\n",
                              X(b.ratio.min), cy, X(b.ratio.max), cy, X(b.ratio.min), cy - 4, X(b.ratio.min), cy + 4,
                              X(b.ratio.max), cy - 4, X(b.ratio.max), cy + 4);
      }
      std::string verdict;
      if (b.goal > 0) {
        bool met = b.higher_is_better ? b.ratio.median >= b.goal : b.ratio.median <= b.goal;
        verdict = met ? "  met" : "  not met";
        absl::StrAppendFormat(&svg,
                              "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#e53e3e\" stroke-width=\"2.5\"/>\n",
                              X(b.goal), y + 1, X(b.goal), y + row_h - 1);
        verdict = absl::StrCat(verdict, " (goal ", b.higher_is_better ? ">= " : "<= ", FormatNumber(b.goal, 2), ")");
      }
      absl::StrAppendFormat(&svg, "<text x=\"%d\" y=\"%d\">%s%s</text>\n", width - right_pad + 8, y + 16,
                            FormatNumber(b.ratio.median, 3), XmlEscape(verdict));
      y += row_h;
    }
  }
  int ly = plot_bottom + 40;
  absl::StrAppendFormat(&svg,
                        "<rect x=\"20\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"38\" y=\"%d\">"
                        "reuseport on the emulated old kernel / native</text>\n"
                        "<rect x=\"330\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"348\" y=\"%d\">"
                        "shared socket / native</text>\n"
                        "<rect x=\"510\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"528\" y=\"%d\">"
                        "with the shim / without</text>\n"
                        "<line x1=\"690\" y1=\"%d\" x2=\"690\" y2=\"%d\" stroke=\"#e53e3e\" stroke-width=\"2.5\"/>"
                        "<text x=\"698\" y=\"%d\">goal; whiskers: min-max of the trials</text>\n",
                        ly, SeriesColour("emulated"), ly + 11, ly, SeriesColour("shared"), ly + 11, ly,
                        SeriesColour("shim"), ly + 11, ly - 1, ly + 13, ly + 11);
  svg += "</svg>\n";
  return svg;
}

}  // namespace reuseport::bench
