#include "bench_stats.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_format.h"

namespace reuseport::bench {

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t i = static_cast<size_t>(std::ceil(p * static_cast<double>(values.size()))) ;
  i = i == 0 ? 0 : i - 1;
  return values[std::min(i, values.size() - 1)];
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

Spread Summarize(const std::vector<double>& values) {
  Spread s;
  s.values = values;
  s.n = static_cast<int>(values.size());
  if (values.empty()) return s;
  s.median = Median(values);
  auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  s.min = *lo;
  s.max = *hi;
  return s;
}

std::string FormatNumber(double v, int decimals) {
  if (std::isnan(v)) return "-";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::string s = absl::StrFormat("%.*f", decimals, std::fabs(v));
  size_t dot = s.find('.');
  size_t int_end = dot == std::string::npos ? s.size() : dot;
  std::string out;
  for (size_t i = 0; i < int_end; ++i) {
    if (i > 0 && (int_end - i) % 3 == 0) out += ',';
    out += s[i];
  }
  out += s.substr(int_end);
  bool zero = true;
  for (char c : out) zero = zero && (c == '0' || c == '.' || c == ',');
  return (v < 0 && !zero ? "-" : "") + out;
}

std::string FormatSpread(const Spread& s, int decimals) {
  if (s.n == 0) return "-";
  if (s.n == 1) return FormatNumber(s.median, decimals);
  return absl::StrFormat("%s (%s..%s)", FormatNumber(s.median, decimals), FormatNumber(s.min, decimals),
                         FormatNumber(s.max, decimals));
}

double MaxOverMin(const std::vector<double>& counts) {
  if (counts.empty()) return 0;
  auto [lo, hi] = std::minmax_element(counts.begin(), counts.end());
  if (*hi <= 0) return 0;
  return *lo <= 0 ? std::numeric_limits<double>::infinity() : *hi / *lo;
}

Spread PairedRatio(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> paired;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (b[i] > 0) paired.push_back(a[i] / b[i]);
  }
  Spread s = Summarize(paired);
  double base = Median(b);
  s.median = base > 0 ? Median(a) / base : 0;
  return s;
}

}  // namespace reuseport::bench
