#include "probe.h"

#include <gtest/gtest.h>

#include <sstream>

namespace reuseport::legacy_kernel::testing {
namespace {

// Parses "name=ANSWER" lines; a probe that failed to run records a test failure and
// yields no answers, so every expectation on it fails too rather than passing vacuously.
ProbeAnswers Parse(const ChildResult& run) {
  ProbeAnswers answers;
  if (run.exit_code != 0) {
    ADD_FAILURE() << "probe exited " << run.exit_code << " (signal " << run.term_signal
                  << "), stderr:\n" << run.err;
    return answers;
  }
  std::istringstream lines(run.out);
  for (std::string line; std::getline(lines, line);) {
    const size_t equals = line.find('=');
    if (equals != std::string::npos) answers[line.substr(0, equals)] = line.substr(equals + 1);
  }
  return answers;
}

}  // namespace

ProbeAnswers ProbeDirectly(const std::vector<std::string>& checks) {
  std::vector<std::string> argv = {kProbe};
  argv.insert(argv.end(), checks.begin(), checks.end());
  return Parse(RunChild(argv));
}

ProbeAnswers ProbeUnder(const std::string& kernel, const std::vector<std::string>& checks) {
  std::vector<std::string> argv = {kTool, "--kernel", kernel, "--", kProbe};
  argv.insert(argv.end(), checks.begin(), checks.end());
  return Parse(RunChild(argv));
}

ChildResult RunTool(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kTool};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunChild(argv);
}

}  // namespace reuseport::legacy_kernel::testing
