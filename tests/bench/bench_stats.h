// Small statistics for the report: percentiles, and the median with min-max
// of repeated trials.
#ifndef REUSEPORT_TESTS_BENCH_BENCH_STATS_H_
#define REUSEPORT_TESTS_BENCH_BENCH_STATS_H_

#include <string>
#include <vector>

namespace reuseport::bench {

// Nearest-rank percentile, p in [0, 1]; 0 for no values.
double Percentile(std::vector<double> values, double p);
double Median(std::vector<double> values);

// The median of repeated trials and their range.
struct Spread {
  double median = 0, min = 0, max = 0;
  int n = 0;
  std::vector<double> values;  // as measured, in order
};
Spread Summarize(const std::vector<double>& values);

// a / b of measurements made in pairs (a[i] right after or alongside b[i]):
// the ratio of the medians, with the range of the per-pair ratios.
Spread PairedRatio(const std::vector<double>& a, const std::vector<double>& b);

// "12,345 (12,001-12,777)" with `decimals` decimals; thousands separated.
std::string FormatSpread(const Spread& s, int decimals);
std::string FormatNumber(double v, int decimals);

// max/min of per-worker counts: infinity when a worker handled nothing while
// others did, 0 when none did.
double MaxOverMin(const std::vector<double>& counts);

}  // namespace reuseport::bench

#endif  // REUSEPORT_TESTS_BENCH_BENCH_STATS_H_
