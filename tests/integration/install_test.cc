// The installation: `cmake --install` of this build tree into a temporary
// prefix, then the installed files and programs as an operator would meet
// them: every file in place, the default policy valid and granting nothing,
// the systemd unit valid and pointing into the prefix, the manual pages
// rendering, the pkg-config file usable, and the installed daemon started and
// stopped without systemd (as its unit would: readiness on $NOTIFY_SOCKET,
// only the unit's capabilities), serving two unmodified servers started by the
// installed reuseport-run, seen by the installed reuseportctl.
//
// Paths known at configure time come from CMake (tests/integration/CMakeLists.txt).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "host_features.h"
#include "json_value.h"
#include "load_client.h"
#include "member_paths.h"
#include "readiness.h"
#include "reuseport_fixture.h"
#include "status_client.h"
#include "status_macros.h"

namespace reuseport::testing {
namespace {

namespace fs = std::filesystem;

// ---- Running commands ----

struct CommandResult {
  int wait_status = -1;
  std::string out;
  std::string err;
  bool exited(int code) const { return WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == code; }
  std::string Describe() const {
    return absl::StrCat(DescribeWaitStatus(wait_status), "\nstdout:\n", out, "\nstderr:\n", err);
  }
};

absl::StatusOr<CommandResult> RunCommand(std::vector<std::string> argv,
                                         std::vector<std::pair<std::string, std::string>> env = {},
                                         absl::Duration timeout = absl::Seconds(60)) {
  SubprocessOptions options;
  options.argv = std::move(argv);
  options.env = std::move(env);
  options.unset_env = {"LD_PRELOAD", "REUSEPORT_SOCKET", "REUSEPORT_MODE", "REUSEPORT_PORTS", "NOTIFY_SOCKET"};
  absl::StatusOr<Subprocess> process = Subprocess::Start(options);
  if (!process.ok()) return process.status();
  absl::StatusOr<int> status = process->Wait(timeout);
  if (!status.ok()) return status.status();
  return CommandResult{*status, process->ReadStdout(), process->ReadStderr()};
}

// The program's path if `name` is found in PATH, else "".
std::string FindInPath(const std::string& name) {
  const char* path = getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path ? path : "/usr/bin:/bin", ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  for (const char* dir : {"/usr/sbin", "/sbin", "/usr/bin"}) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// ---- The installation ----

// What `cmake --install` must produce, relative to the prefix (GNUInstallDirs
// defaults for the prefix /usr/local this build was configured with).
const std::vector<std::string>& ExpectedFiles() {
  static const auto* files = new std::vector<std::string>{
      std::string(REUSEPORT_INSTALL_SBINDIR) + "/reuseportd",
      std::string(REUSEPORT_INSTALL_BINDIR) + "/reuseport-run",
      std::string(REUSEPORT_INSTALL_BINDIR) + "/reuseportctl",
      std::string(REUSEPORT_INSTALL_BINDIR) + "/reuseport-legacy-kernel",
      std::string(REUSEPORT_INSTALL_LIBDIR) + "/libreuseport.so",
      std::string(REUSEPORT_INSTALL_INCLUDEDIR) + "/reuseport/protocol.h",
      std::string(REUSEPORT_INSTALL_LIBDIR) + "/pkgconfig/reuseport.pc",
      std::string(REUSEPORT_INSTALL_UNITDIR) + "/reuseportd.service",
      std::string(REUSEPORT_INSTALL_SYSCONFDIR) + "/init.d/reuseportd",
      std::string(REUSEPORT_INSTALL_DATADIR) + "/reuseport/upstart/reuseportd.conf",
      std::string(REUSEPORT_INSTALL_SYSCONFDIR) + "/reuseport/policy.conf",
      std::string(REUSEPORT_INSTALL_MANDIR) + "/man8/reuseportd.8",
      std::string(REUSEPORT_INSTALL_MANDIR) + "/man8/libreuseport.8",
      std::string(REUSEPORT_INSTALL_MANDIR) + "/man1/reuseport-run.1",
      std::string(REUSEPORT_INSTALL_MANDIR) + "/man1/reuseportctl.1",
      std::string(REUSEPORT_INSTALL_MANDIR) + "/man1/reuseport-legacy-kernel.1",
  };
  return *files;
}

absl::StatusOr<CommandResult> Install(const std::string& prefix,
                                      std::vector<std::pair<std::string, std::string>> env = {}) {
  return RunCommand({REUSEPORT_INSTALL_CMAKE, "--install", REUSEPORT_INSTALL_BUILD_DIR, "--prefix", prefix},
                    std::move(env), absl::Seconds(120));
}

// A systemd unit file: section -> key -> values in order (a key may repeat).
using UnitFile = std::map<std::string, std::map<std::string, std::vector<std::string>>>;

absl::StatusOr<UnitFile> ParseUnitFile(const std::string& path) {
  absl::StatusOr<std::vector<std::string>> lines = ReadLines(path);
  if (!lines.ok()) return lines.status();
  UnitFile unit;
  std::string section;
  int n = 0;
  for (const std::string& raw : *lines) {
    ++n;
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[') {
      if (line.back() != ']') return absl::InvalidArgumentError(absl::StrCat(path, ":", n, ": bad section header"));
      section = std::string(line.substr(1, line.size() - 2));
      continue;
    }
    if (absl::EndsWith(line, "\\")) return absl::InvalidArgumentError(absl::StrCat(path, ":", n, ": continued lines are not expected"));
    size_t eq = line.find('=');
    if (eq == absl::string_view::npos || section.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", n, ": not key=value in a section: ", line));
    }
    std::string key(absl::StripAsciiWhitespace(line.substr(0, eq)));
    std::string value(absl::StripAsciiWhitespace(line.substr(eq + 1)));
    unit[section][key].push_back(value);
  }
  return unit;
}

std::string Last(const UnitFile& unit, const std::string& section, const std::string& key) {
  auto s = unit.find(section);
  if (s == unit.end()) return "";
  auto k = s->second.find(key);
  return k == s->second.end() || k->second.empty() ? "" : k->second.back();
}

// ---- Prometheus text exposition format (version 0.0.4) ----

struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

bool IsMetricName(absl::string_view s) {
  if (s.empty() || !(isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_' || s[0] == ':')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':'; });
}

bool IsLabelName(absl::string_view s) {
  if (s.empty() || !(isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

bool ParsePromValue(absl::string_view s, double* out) {
  if (s == "NaN" || s == "+Inf" || s == "-Inf") {
    *out = s == "NaN" ? 0 : (s[0] == '+' ? 1e308 : -1e308);
    return true;
  }
  return absl::SimpleAtod(s, out) && !s.empty() && (isdigit(static_cast<unsigned char>(s.back())) || s.back() == '.');
}

// Parses the whole exposition and returns what is wrong with it (empty: valid).
// Checks: every sample is `name[{label="value",...}] value [timestamp]` with
// valid names, label values escaped (only \\, \" and \n), numeric values; a
// `# HELP` and a `# TYPE` for its family before its first sample, each at most
// once; a family's samples together; no series twice; counters not negative.
std::vector<std::string> ParsePrometheusText(const std::string& text, std::vector<PromSample>* samples) {
  std::vector<std::string> problems;
  auto problem = [&](int line, const std::string& what) {
    if (problems.size() < 20) problems.push_back(absl::StrCat("line ", line, ": ", what));
  };
  if (!text.empty() && text.back() != '\n') problem(0, "the text does not end with a newline");
  std::map<std::string, std::string> help, type;
  std::set<std::string> families_done;
  std::string current_family;
  std::set<std::string> series;
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  int n = 0;
  for (const std::string& line : lines) {
    ++n;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::vector<std::string> words = absl::StrSplit(line, absl::MaxSplits(' ', 3));
      if (words.size() < 2 || (words[1] != "HELP" && words[1] != "TYPE")) continue;  // a plain comment
      if (words.size() < 3 || !IsMetricName(words[2])) {
        problem(n, absl::StrCat("bad metric name in ", line));
        continue;
      }
      const std::string& name = words[2];
      std::string rest = words.size() > 3 ? words[3] : "";
      if (words[1] == "HELP") {
        if (help.contains(name)) problem(n, absl::StrCat("second HELP for ", name));
        for (size_t i = 0; i < rest.size(); ++i) {
          if (rest[i] == '\\' && (i + 1 == rest.size() || (rest[i + 1] != '\\' && rest[i + 1] != 'n'))) {
            problem(n, "bad escape in HELP text");
          } else if (rest[i] == '\\') {
            ++i;
          }
        }
        help[name] = rest;
      } else {
        if (type.contains(name)) problem(n, absl::StrCat("second TYPE for ", name));
        if (families_done.contains(name) || current_family == name) problem(n, absl::StrCat("TYPE for ", name, " after its samples"));
        static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary", "untyped"};
        if (!kTypes.contains(rest)) problem(n, absl::StrCat("unknown type '", rest, "'"));
        type[name] = rest;
      }
      continue;
    }
    // A sample.
    PromSample sample;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    sample.name = line.substr(0, i);
    if (!IsMetricName(sample.name)) {
      problem(n, absl::StrCat("bad metric name '", sample.name, "'"));
      continue;
    }
    bool bad = false;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (!bad && i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos) {
          bad = true;
          break;
        }
        std::string label = line.substr(i, eq - i);
        if (!IsLabelName(label) || sample.labels.contains(label) || eq + 1 >= line.size() || line[eq + 1] != '"') {
          bad = true;
          break;
        }
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\') {
            if (j + 1 >= line.size()) {
              bad = true;
              break;
            }
            char e = line[++j];
            if (e == '\\') value += '\\';
            else if (e == '"') value += '"';
            else if (e == 'n') value += '\n';
            else bad = true;
          } else {
            value += line[j];
          }
        }
        if (bad || j >= line.size()) {
          bad = true;
          break;
        }
        sample.labels[label] = value;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (bad || i >= line.size() || line[i] != '}') {
        problem(n, absl::StrCat("bad label set in '", line, "'"));
        continue;
      }
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') {
      problem(n, absl::StrCat("no value in '", line, "'"));
      continue;
    }
    std::vector<std::string> tail = absl::StrSplit(line.substr(i + 1), ' ', absl::SkipEmpty());
    int64_t timestamp = 0;
    if (tail.empty() || tail.size() > 2 || !ParsePromValue(tail[0], &sample.value) ||
        (tail.size() == 2 && !absl::SimpleAtoi(tail[1], &timestamp))) {
      problem(n, absl::StrCat("bad value or timestamp in '", line, "'"));
      continue;
    }
    // The family: the name itself, or a histogram's or summary's base name.
    std::string family = sample.name;
    if (!type.contains(family)) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        if (absl::EndsWith(family, suffix)) {
          std::string base = family.substr(0, family.size() - strlen(suffix));
          if (type.contains(base) && (type[base] == "histogram" || type[base] == "summary")) family = base;
        }
      }
    }
    if (!help.contains(family)) problem(n, absl::StrCat("no HELP before the first sample of ", family));
    if (!type.contains(family)) problem(n, absl::StrCat("no TYPE before the first sample of ", family));
    if (family != current_family) {
      if (families_done.contains(family)) problem(n, absl::StrCat("samples of ", family, " are not together"));
      if (!current_family.empty()) families_done.insert(current_family);
      current_family = family;
    }
    if (type[family] == "counter" && sample.value < 0) problem(n, absl::StrCat("negative counter: ", line));
    std::string key = sample.name;
    for (const auto& [k, v] : sample.labels) absl::StrAppend(&key, "\x01", k, "\x02", v);
    if (!series.insert(key).second) problem(n, absl::StrCat("series given twice: ", line));
    samples->push_back(std::move(sample));
  }
  return problems;
}

// ---- A fixture with an installed tree ----

class InstallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // An absolute install directory would make `cmake --install --prefix
    // <temporary>` write into the real system.
    for (const char* dir : {REUSEPORT_INSTALL_BINDIR, REUSEPORT_INSTALL_SBINDIR, REUSEPORT_INSTALL_LIBDIR, REUSEPORT_INSTALL_INCLUDEDIR, REUSEPORT_INSTALL_SYSCONFDIR,
                            REUSEPORT_INSTALL_MANDIR, REUSEPORT_INSTALL_UNITDIR, REUSEPORT_INSTALL_DATADIR}) {
      if (dir[0] == '/') GTEST_SKIP() << "install directory " << dir << " is absolute; not installing outside a temporary prefix";
    }
    // The installed programs run from the prefix, copies of programs from
    // dir_: both are under TMPDIR (or /tmp), which may be mounted noexec.
    REUSEPORT_SKIP_IF_UNAVAILABLE(ExecUnavailableIn(prefix_.path()));
    REUSEPORT_SKIP_IF_UNAVAILABLE(ExecUnavailableIn(dir_.path()));
    absl::StatusOr<CommandResult> installed = Install(prefix_.path());
    ASSERT_TRUE(installed.ok()) << installed.status();
    ASSERT_TRUE(installed->exited(0)) << installed->Describe();
    install_output_ = installed->out;
  }

  std::string Path(const std::string& relative) const { return prefix_.path() + "/" + relative; }
  std::string Sbin(const std::string& name) const { return Path(std::string(REUSEPORT_INSTALL_SBINDIR) + "/" + name); }
  std::string Bin(const std::string& name) const { return Path(std::string(REUSEPORT_INSTALL_BINDIR) + "/" + name); }
  std::string PolicyPath() const { return Path(std::string(REUSEPORT_INSTALL_SYSCONFDIR) + "/reuseport/policy.conf"); }
  std::string UnitPath() const { return Path(std::string(REUSEPORT_INSTALL_UNITDIR) + "/reuseportd.service"); }

  TempDir prefix_ = [] {
    absl::StatusOr<TempDir> dir = TempDir::Create("reuseport-prefix", 0755);
    if (!dir.ok()) abort();
    return std::move(*dir);
  }();
  TempDir dir_ = MakeTestDir();  // sockets, logs, members' files
  std::string install_output_;
};

TEST_F(InstallTest, EveryExpectedFileIsInstalled) {
  for (const std::string& file : ExpectedFiles()) {
    struct stat st {};
    ASSERT_EQ(stat(Path(file).c_str(), &st), 0) << file << " is missing; cmake --install said:\n" << install_output_;
    EXPECT_TRUE(S_ISREG(st.st_mode)) << file;
    EXPECT_GT(st.st_size, 0) << file;
    bool program = absl::StartsWith(file, std::string(REUSEPORT_INSTALL_BINDIR) + "/") ||
                   absl::StartsWith(file, std::string(REUSEPORT_INSTALL_SBINDIR) + "/") ||
                   absl::EndsWith(file, "/init.d/reuseportd");
    if (program) {
      EXPECT_EQ(access(Path(file).c_str(), X_OK), 0) << file << " is not executable";
    }
    if (absl::EndsWith(file, ".conf") || absl::EndsWith(file, ".service")) {
      EXPECT_EQ(st.st_mode & 0022, 0u) << file << " must not be writable by others";
    }
  }
  // The installed programs run from the install tree alone (no build-tree RPATH
  // needed): each answers --help.
  for (const std::string& program : {Sbin("reuseportd"), Bin("reuseport-run"), Bin("reuseportctl"),
                                     Bin("reuseport-legacy-kernel")}) {
    absl::StatusOr<CommandResult> r = RunCommand({program, "--help"});
    ASSERT_TRUE(r.ok()) << r.status();
    // absl's --help exits 1 after printing; the others exit 0.
    EXPECT_TRUE(WIFEXITED(r->wait_status)) << program << ": " << r->Describe();
    EXPECT_FALSE(r->out.empty() && r->err.empty()) << program;
  }
}

TEST_F(InstallTest, DefaultPolicyIsValidAndGrantsNothing) {
  absl::StatusOr<CommandResult> r = RunCommand({Sbin("reuseportd"), "--check_config", "--policy", PolicyPath()});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->exited(0)) << r->Describe();
  EXPECT_NE(r->out.find("0 allow rule(s)"), std::string::npos) << r->out;
  EXPECT_NE(r->out.find("default limits: groups=256 members=1024 links=2048 queued=4096"), std::string::npos) << r->out;
  EXPECT_EQ(r->out.find("; uid "), std::string::npos) << "no per-uid limits: " << r->out;
  // Every line is a comment or blank: uncommenting is the administrator's act.
  absl::StatusOr<std::vector<std::string>> lines = ReadLines(PolicyPath());
  ASSERT_TRUE(lines.ok());
  for (const std::string& line : *lines) {
    absl::string_view l = absl::StripAsciiWhitespace(line);
    EXPECT_TRUE(l.empty() || l[0] == '#') << "policy.conf has a rule: " << line;
  }
  // Its commented examples are valid rules once uncommented.
  std::string examples;
  for (const std::string& line : *lines) {
    if (absl::StartsWith(line, "#allow ") || absl::StartsWith(line, "#limit ")) absl::StrAppend(&examples, line.substr(1), "\n");
  }
  ASSERT_FALSE(examples.empty());
  std::string uncommented = dir_.File("examples.conf");
  std::ofstream(uncommented) << examples;
  absl::StatusOr<CommandResult> e = RunCommand({Sbin("reuseportd"), "--check_config", "--policy", uncommented});
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->exited(0)) << examples << e->Describe();
}

TEST_F(InstallTest, UnitFileIsValidAndPointsIntoThePrefix) {
  absl::StatusOr<UnitFile> unit = ParseUnitFile(UnitPath());
  ASSERT_TRUE(unit.ok()) << unit.status();
  EXPECT_EQ(Last(*unit, "Service", "Type"), "notify");
  EXPECT_EQ(Last(*unit, "Service", "RuntimeDirectory"), "reuseport");
  std::vector<std::string> exec = absl::StrSplit(Last(*unit, "Service", "ExecStart"), ' ', absl::SkipEmpty());
  ASSERT_FALSE(exec.empty());
  EXPECT_EQ(exec[0], Sbin("reuseportd"));
  EXPECT_EQ(access(exec[0].c_str(), X_OK), 0);
  // The flags it passes are the daemon's: --check_config accepts the same line.
  auto flag = [&](const std::string& name) -> std::string {
    for (size_t i = 1; i + 1 < exec.size(); ++i) {
      if (exec[i] == name) return exec[i + 1];
    }
    return "";
  };
  EXPECT_EQ(flag("--socket"), "/run/reuseport/reuseportd.sock") << "inside RuntimeDirectory";
  EXPECT_EQ(flag("--policy"), PolicyPath());
  std::vector<std::string> check = exec;
  check.push_back("--check_config");
  absl::StatusOr<CommandResult> c = RunCommand(check);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->exited(0)) << c->Describe();

  // Hardening that keeps the broker working (see the comments in the unit).
  EXPECT_EQ(Last(*unit, "Service", "NoNewPrivileges"), "yes");
  EXPECT_EQ(Last(*unit, "Service", "ProtectSystem"), "strict");
  EXPECT_NE(Last(*unit, "Service", "PrivateNetwork"), "yes") << "members' sockets live in the host's namespace";
  EXPECT_NE(Last(*unit, "Service", "PrivateUsers"), "yes") << "uids and capabilities are judged in the host's user namespace";
  EXPECT_NE(Last(*unit, "Service", "ProtectProc"), "invisible") << "it reads other processes' /proc/PID";
  EXPECT_NE(Last(*unit, "Service", "ProcSubset"), "pid");
  std::vector<std::string> caps = absl::StrSplit(Last(*unit, "Service", "CapabilityBoundingSet"), ' ', absl::SkipEmpty());
  for (const char* needed : {"CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"}) {
    EXPECT_NE(std::find(caps.begin(), caps.end(), needed), caps.end()) << needed;
  }
  std::vector<std::string> families = absl::StrSplit(Last(*unit, "Service", "RestrictAddressFamilies"), ' ', absl::SkipEmpty());
  for (const char* needed : {"AF_UNIX", "AF_INET", "AF_INET6"}) {
    EXPECT_NE(std::find(families.begin(), families.end(), needed), families.end()) << needed;
  }
  EXPECT_EQ(Last(*unit, "Install", "WantedBy"), "multi-user.target");

  // systemd's own check, where systemd's tools are installed (they run without
  // systemd as init). The man: links resolve through the installed pages.
  std::string analyze = FindInPath("systemd-analyze");
  if (analyze.empty()) {
    GTEST_SKIP() << "systemd-analyze is not installed; checked the unit's keys only";
  }
  absl::StatusOr<CommandResult> verify = RunCommand({analyze, "verify", UnitPath()},
                                                    {{"MANPATH", Path(REUSEPORT_INSTALL_MANDIR)}, {"SYSTEMD_LOG_COLOR", "0"}});
  ASSERT_TRUE(verify.ok()) << verify.status();
  EXPECT_TRUE(verify->exited(0)) << verify->Describe();
  EXPECT_EQ(verify->err, "") << "systemd-analyze verify complained";
}

// The SysV script and the upstart job (packaging/init/): valid shell, LSB and
// chkconfig headers, and every path they name is the installed one. Their
// behaviour is tested on the release (tests/release/sysv_init_test.cc).
TEST_F(InstallTest, InitFilesAreValidAndPointIntoThePrefix) {
  std::string sysv = Path(std::string(REUSEPORT_INSTALL_SYSCONFDIR) + "/init.d/reuseportd");
  std::string upstart = Path(std::string(REUSEPORT_INSTALL_DATADIR) + "/reuseport/upstart/reuseportd.conf");
  absl::StatusOr<CommandResult> syntax = RunCommand({"/bin/sh", "-n", sysv});
  ASSERT_TRUE(syntax.ok());
  EXPECT_TRUE(syntax->exited(0)) << syntax->Describe();
  absl::StatusOr<std::string> script = ReadFile(sysv);
  ASSERT_TRUE(script.ok());
  EXPECT_FALSE(std::regex_search(*script, std::regex("@[A-Z_]+@"))) << "an unconfigured @VARIABLE@ is left";
  EXPECT_NE(script->find("\nDAEMON=" + Sbin("reuseportd") + "\n"), std::string::npos);
  EXPECT_NE(script->find("\nPOLICY=" + PolicyPath() + "\n"), std::string::npos);
  // LSB (insserv, update-rc.d) and chkconfig read these.
  for (const char* line : {"### BEGIN INIT INFO", "# Provides:          reuseportd", "# Default-Start:     2 3 4 5",
                           "# Default-Stop:      0 1 6", "### END INIT INFO", "# chkconfig: 2345 20 80"}) {
    EXPECT_NE(script->find(std::string("\n") + line + "\n"), std::string::npos) << line;
  }

  absl::StatusOr<std::vector<std::string>> job = ReadLines(upstart);
  ASSERT_TRUE(job.ok());
  bool exec_seen = false;
  for (const std::string& line : *job) {
    EXPECT_EQ(line.find('@'), std::string::npos) << line;
    absl::string_view l = absl::StripLeadingAsciiWhitespace(line);
    if (absl::StartsWith(l, "exec ")) {
      exec_seen = true;
      EXPECT_TRUE(absl::StartsWith(l, "exec " + Sbin("reuseportd") + " ")) << line;
    }
    if (absl::StartsWith(l, "POLICY=")) {
      EXPECT_EQ(l, "POLICY=" + PolicyPath());
    }
  }
  EXPECT_TRUE(exec_seen);
}

TEST_F(InstallTest, ManualPagesRender) {
  std::string man = FindInPath("man");
  if (man.empty()) GTEST_SKIP() << "man is not installed";
  for (const std::string& file : ExpectedFiles()) {
    if (!absl::StrContains(file, "/man1/") && !absl::StrContains(file, "/man8/")) continue;
    absl::StatusOr<CommandResult> r =
        RunCommand({man, "--warnings=w", "-l", Path(file)}, {{"MANWIDTH", "80"}, {"LC_ALL", "C.UTF-8"}, {"MAN_KEEP_FORMATTING", ""}});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->exited(0)) << file << ": " << r->Describe();
    EXPECT_EQ(r->err, "") << file << ": groff warnings";
    std::vector<std::string> sections = {"NAME", "SYNOPSIS", "DESCRIPTION", "ENVIRONMENT", "FILES", "EXIT STATUS",
                                         "EXAMPLES", "SEE ALSO"};
    if (!absl::StrContains(file, "libreuseport")) sections.push_back("OPTIONS");  // a library has none
    for (const std::string& section : sections) {
      EXPECT_NE(r->out.find("\n" + section + "\n"), std::string::npos) << file << " has no " << section << " section";
    }
  }
  // man finds them by name through the prefix's MANPATH.
  absl::StatusOr<CommandResult> where = RunCommand({man, "-w", "reuseportd"}, {{"MANPATH", Path(REUSEPORT_INSTALL_MANDIR)}});
  ASSERT_TRUE(where.ok());
  EXPECT_TRUE(where->exited(0)) << where->Describe();
  EXPECT_EQ(absl::StripAsciiWhitespace(where->out), Path(std::string(REUSEPORT_INSTALL_MANDIR) + "/man8/reuseportd.8"));
}

TEST_F(InstallTest, PkgConfigFileCompilesAgainstTheHeader) {
  std::string pkg_config = FindInPath("pkg-config");
  std::string cc = FindInPath("cc");
  if (pkg_config.empty() || cc.empty()) GTEST_SKIP() << "pkg-config or cc is not installed";
  std::vector<std::pair<std::string, std::string>> env = {
      {"PKG_CONFIG_PATH", Path(std::string(REUSEPORT_INSTALL_LIBDIR) + "/pkgconfig")}, {"PKG_CONFIG_LIBDIR", ""}};
  absl::StatusOr<CommandResult> version = RunCommand({pkg_config, "--modversion", "reuseport"}, env);
  ASSERT_TRUE(version.ok());
  EXPECT_TRUE(version->exited(0)) << version->Describe();
  EXPECT_EQ(absl::StripAsciiWhitespace(version->out), REUSEPORT_INSTALL_VERSION);
  absl::StatusOr<CommandResult> cflags = RunCommand({pkg_config, "--cflags", "reuseport"}, env);
  ASSERT_TRUE(cflags.ok());
  ASSERT_TRUE(cflags->exited(0)) << cflags->Describe();
  EXPECT_EQ(absl::StripAsciiWhitespace(cflags->out), "-I" + Path(REUSEPORT_INSTALL_INCLUDEDIR));
  absl::StatusOr<CommandResult> libs = RunCommand({pkg_config, "--libs", "reuseport"}, env);
  ASSERT_TRUE(libs.ok());
  EXPECT_EQ(absl::StripAsciiWhitespace(libs->out), "") << "header only: nothing to link";

  // A client compiles with just those flags, as C.
  std::string source = dir_.File("client.c");
  std::ofstream(source) << "#include <reuseport/protocol.h>\n"
                           "int main(void) { struct rp_header h; (void)h; return sizeof(RP_DEFAULT_SOCKET) > 1 ? 0 : 1; }\n";
  std::vector<std::string> compile = {cc, "-std=c11", "-Wall", "-Werror", "-fsyntax-only"};
  for (absl::string_view f : absl::StrSplit(cflags->out, absl::ByAnyChar(" \n"), absl::SkipEmpty())) compile.emplace_back(f);
  compile.push_back(source);
  absl::StatusOr<CommandResult> compiled = RunCommand(compile);
  ASSERT_TRUE(compiled.ok());
  EXPECT_TRUE(compiled->exited(0)) << compiled->Describe();
}

TEST_F(InstallTest, StagedInstallForAPackageNamesTheFinalPaths) {
  // A package build: DESTDIR stages the files, the unit names where they will
  // be once the package is installed, and /usr puts the policy under /etc.
  TempDir stage = MakeTestDir();
  absl::StatusOr<CommandResult> r = RunCommand(
      {REUSEPORT_INSTALL_CMAKE, "--install", REUSEPORT_INSTALL_BUILD_DIR, "--prefix", "/usr"}, {{"DESTDIR", stage.path()}},
      absl::Seconds(120));
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->exited(0)) << r->Describe();
  std::string unit_path = stage.path() + "/usr/" + REUSEPORT_INSTALL_UNITDIR + "/reuseportd.service";
  const std::string sbin = std::string("/usr/") + REUSEPORT_INSTALL_SBINDIR + "/reuseportd";
  absl::StatusOr<UnitFile> unit = ParseUnitFile(unit_path);
  ASSERT_TRUE(unit.ok()) << unit.status();
  EXPECT_TRUE(absl::StartsWith(Last(*unit, "Service", "ExecStart"),
                               sbin + " --socket /run/reuseport/reuseportd.sock --policy /etc/reuseport/policy.conf"))
      << Last(*unit, "Service", "ExecStart");
  EXPECT_EQ(access((stage.path() + "/etc/reuseport/policy.conf").c_str(), R_OK), 0);
  EXPECT_NE(access((stage.path() + "/usr/etc").c_str(), F_OK), 0) << "/usr/etc must not be created";
  absl::StatusOr<std::string> pc = ReadFile(stage.path() + "/usr/" + REUSEPORT_INSTALL_LIBDIR + "/pkgconfig/reuseport.pc");
  ASSERT_TRUE(pc.ok());
  EXPECT_NE(pc->find("includedir=/usr/include\n"), std::string::npos) << *pc;
}

TEST_F(InstallTest, ReinstallKeepsAnEditedPolicyFile) {
  std::string edited = "# mine\nallow uid=nobody port=81\n";
  std::ofstream(PolicyPath(), std::ios::trunc) << edited;
  absl::StatusOr<CommandResult> again = Install(prefix_.path());
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(again->exited(0)) << again->Describe();
  absl::StatusOr<std::string> now = ReadFile(PolicyPath());
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(*now, edited);
  absl::StatusOr<std::string> dist = ReadFile(PolicyPath() + ".dist");
  ASSERT_TRUE(dist.ok()) << "the new default goes beside it";
  EXPECT_NE(dist->find("grants nothing"), std::string::npos);
}

// ---- The installed programs at work ----

// reuseportd from the install tree, started the way its unit starts it but
// without systemd: readiness on $NOTIFY_SOCKET (a datagram socket of ours) and
// on --ready_fd, under the unit's capability bounding set and no_new_privs
// (setpriv(1)) when we can apply them, and under the 3.2 runner.
struct InstalledBroker {
  std::optional<Subprocess> process;
  std::string socket_path;
  std::string notify_message;  // what arrived on NOTIFY_SOCKET
  std::string capabilities;    // the bounding set applied, "" if none
};

absl::StatusOr<std::string> UnitCapabilitiesForSetpriv(const std::string& unit_path) {
  absl::StatusOr<UnitFile> unit = ParseUnitFile(unit_path);
  if (!unit.ok()) return unit.status();
  std::string set = "-all";
  for (absl::string_view cap : absl::StrSplit(Last(*unit, "Service", "CapabilityBoundingSet"), ' ', absl::SkipEmpty())) {
    if (!absl::ConsumePrefix(&cap, "CAP_")) return absl::InvalidArgumentError(absl::StrCat("odd capability ", cap));
    std::string lower(cap);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    absl::StrAppend(&set, ",+", lower);
  }
  return set;
}

absl::StatusOr<InstalledBroker> StartInstalledBroker(const std::string& sbin, const std::string& unit_path,
                                                     const std::string& policy, const std::string& dir) {
  InstalledBroker broker;
  static int starts = 0;
  broker.socket_path = dir + "/s.sock";
  std::string notify_path = absl::StrCat(dir, "/notify", ++starts, ".sock");
  int notify = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (notify < 0) return absl::ErrnoToStatus(errno, "socket");
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, notify_path.c_str(), sizeof(addr.sun_path) - 1);
  if (bind(notify, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(notify);
    return absl::ErrnoToStatus(errno, "bind " + notify_path);
  }
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) {
    close(notify);
    return absl::ErrnoToStatus(errno, "pipe2");
  }
  SubprocessOptions p;
  p.argv = {sbin + "/reuseportd", "--socket", broker.socket_path, "--policy", policy, "--ready_fd", "3",
            "--log_level", "info"};
  UnderLegacyKernel(&p);
  std::string setpriv = FindInPath("setpriv");
  if (!setpriv.empty() && geteuid() == 0) {
    absl::StatusOr<std::string> caps = UnitCapabilitiesForSetpriv(unit_path);
    if (!caps.ok()) return caps.status();
    broker.capabilities = *caps;
    p.argv.insert(p.argv.begin(), {setpriv, "--no-new-privs", "--inh-caps", "-all", "--bounding-set", *caps, "--"});
  }
  p.env = {{"NOTIFY_SOCKET", notify_path}};
  p.unset_env = {"LD_PRELOAD", "REUSEPORT_SOCKET", "REUSEPORT_MODE", "REUSEPORT_PORTS"};
  p.stdout_path = dir + "/reuseportd.log";
  p.stderr_path = dir + "/reuseportd.log";
  p.inherited_fds = {{ready[1], 3}};
  absl::StatusOr<Subprocess> process = Subprocess::Start(p);
  close(ready[1]);
  if (!process.ok()) {
    close(ready[0]);
    close(notify);
    return process.status();
  }
  broker.process.emplace(std::move(*process));
  struct pollfd pfd = {ready[0], POLLIN, 0};
  char buf[64] = {};
  ssize_t n = poll(&pfd, 1, 10000) == 1 ? read(ready[0], buf, sizeof(buf) - 1) : -1;
  close(ready[0]);
  if (n <= 0 || !absl::StrContains(buf, "READY=1")) {
    close(notify);
    return absl::UnavailableError(absl::StrCat("the installed reuseportd did not become ready: ", broker.process->ReadStdout()));
  }
  // The sd_notify datagram follows the ready fd's line at once.
  pfd = {notify, POLLIN, 0};
  char message[512] = {};
  n = poll(&pfd, 1, 10000) == 1 ? recv(notify, message, sizeof(message) - 1, MSG_DONTWAIT) : -1;
  close(notify);
  if (n > 0) broker.notify_message.assign(message, static_cast<size_t>(n));
  return broker;
}

class InstalledProgramsTest : public InstallTest {
 protected:
  void StartBroker() {
    absl::StatusOr<InstalledBroker> b = StartInstalledBroker(Path(REUSEPORT_INSTALL_SBINDIR), UnitPath(), PolicyPath(), dir_.path());
    ASSERT_TRUE(b.ok()) << b.status();
    broker_.emplace(std::move(*b));
  }

  // An unmodified TCP server that never asks for SO_REUSEPORT (tcp_member
  // --no-reuseport, or a copy of it under another name), through the installed
  // reuseport-run --ports, under the 3.2 runner.
  MemberOptions RunTcpServer(const std::string& id, uint16_t port, const std::string& program = TcpMemberPath()) {
    MemberOptions m;
    m.process.argv = {Bin("reuseport-run"), "--socket", broker_->socket_path, "--ports", absl::StrCat(port, "/tcp"), "--",
                      program, "--no-reuseport", "--reuseaddr", "--host", "127.0.0.1", "--port", absl::StrCat(port)};
    m.process.unset_env = {"LD_PRELOAD", "REUSEPORT_SOCKET", "REUSEPORT_MODE", "REUSEPORT_PORTS"};
    UnderLegacyKernel(&m.process);
    m.id = id;
    m.dir = dir_.path();
    return m;
  }

  // Two servers on one port; another free port if someone took ours meanwhile.
  std::vector<MemberProcess> StartTwoServers(const std::string& prefix, const std::string& second_program = TcpMemberPath()) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      uint16_t port = FreeLoopbackPort();
      absl::StatusOr<MemberProcess> first = StartMember(RunTcpServer(absl::StrCat(prefix, attempt, "a"), port));
      if (!first.ok()) {
        if (absl::StrContains(first.status().message(), "EADDRINUSE")) continue;
        ADD_FAILURE() << first.status();
        return {};
      }
      absl::StatusOr<MemberProcess> second =
          StartMember(RunTcpServer(absl::StrCat(prefix, attempt, "b"), port, second_program));
      if (!second.ok()) {
        ADD_FAILURE() << second.status() << "\nbroker log:\n" << broker_->process->ReadStdout();
        return {};
      }
      std::vector<MemberProcess> both;
      both.push_back(std::move(*first));
      both.push_back(std::move(*second));
      return both;
    }
    ADD_FAILURE() << "no free port in three attempts";
    return {};
  }

  absl::StatusOr<ctl::JsonValue> StatusJson() {
    absl::StatusOr<CommandResult> r = RunCommand({Bin("reuseportctl"), "--socket", broker_->socket_path, "status", "--json"});
    if (!r.ok()) return r.status();
    if (!r->exited(0)) return absl::InternalError(r->Describe());
    return ctl::ParseJson(r->out);
  }

  // Bounded wait until the broker counts `members` members (a condition read
  // from the broker, 2 ms apart; the ready files already mean joined).
  absl::Status WaitForMembers(int members) {
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    int seen = -1;
    while (absl::Now() < deadline) {
      absl::StatusOr<std::string> text = ctl::FetchStatus(broker_->socket_path, RP_STATUS_JSON);
      if (!text.ok()) return text.status();
      absl::StatusOr<ctl::JsonValue> doc = ctl::ParseJson(*text);
      if (!doc.ok()) return doc.status();
      seen = 0;
      for (const auto& g : (*doc)["groups"].array) seen += static_cast<int>(g["members"].array.size());
      if (seen == members) return absl::OkStatus();
      usleep(2000);
    }
    return absl::DeadlineExceededError(absl::StrCat("broker has ", seen, " members, expected ", members));
  }

  std::optional<InstalledBroker> broker_;
};

TEST_F(InstalledProgramsTest, DaemonStartsServesAndStopsWithoutSystemd) {
  ASSERT_NO_FATAL_FAILURE(StartBroker());
  EXPECT_NE(broker_->notify_message.find("READY=1"), std::string::npos) << "NOTIFY_SOCKET got: " << broker_->notify_message;
  EXPECT_NE(broker_->notify_message.find(absl::StrCat("MAINPID=", broker_->process->pid())), std::string::npos)
      << broker_->notify_message;
  if (broker_->capabilities.empty()) {
    RecordProperty("capabilities", "setpriv unavailable or not root: full capabilities");
  } else {
    RecordProperty("capabilities", broker_->capabilities);
    // The broker really runs with only the unit's capabilities.
    absl::StatusOr<std::string> status = ReadFile(absl::StrCat("/proc/", broker_->process->pid(), "/status"));
    ASSERT_TRUE(status.ok());
    EXPECT_NE(status->find("NoNewPrivs:\t1"), std::string::npos);
    uint64_t effective = 0;
    size_t at = status->find("CapEff:\t");
    ASSERT_NE(at, std::string::npos);
    ASSERT_TRUE(absl::SimpleHexAtoi(status->substr(at + 8, 16), &effective)) << *status;
    EXPECT_TRUE(effective & (1ull << 12)) << "CAP_NET_ADMIN";
    EXPECT_FALSE(effective & (1ull << 21)) << "CAP_SYS_ADMIN must be gone";
  }

  std::vector<MemberProcess> servers = StartTwoServers("srv");
  ASSERT_EQ(servers.size(), 2u);
  ASSERT_OK(WaitForMembers(2)) << broker_->process->ReadStdout();

  // The installed reuseport-run loaded the installed shim (unless a shim is
  // installed system-wide at the configured path, which it prefers).
  if (access(REUSEPORT_INSTALL_CONFIGURED_SHIM, F_OK) != 0) {
    absl::StatusOr<std::string> maps = ReadFile(absl::StrCat("/proc/", servers[0].process.pid(), "/maps"));
    ASSERT_TRUE(maps.ok());
    std::string shim = fs::canonical(Path(std::string(REUSEPORT_INSTALL_LIBDIR) + "/libreuseport.so")).string();
    EXPECT_NE(maps->find(shim), std::string::npos) << "the server did not load " << shim;
  }

  absl::StatusOr<ctl::JsonValue> before = StatusJson();
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_EQ((*before)["groups"].array.size(), 1u);
  const ctl::JsonValue& group = (*before)["groups"].array[0];
  EXPECT_EQ(group["protocol"].AsString(), "tcp");
  EXPECT_EQ(group["port"].AsNumber(), servers[0].port);
  std::set<int> pids;
  for (const auto& m : group["members"].array) pids.insert(static_cast<int>(m["pid"].AsNumber()));
  EXPECT_EQ(pids, (std::set<int>{servers[0].process.pid(), servers[1].process.pid()}));

  TcpLoadOptions load;
  load.port = servers[0].port;
  load.connections = 300;
  absl::StatusOr<Rerouted> rerouted_before = ReadRerouted(broker_->socket_path, load.port);
  ASSERT_TRUE(rerouted_before.ok()) << rerouted_before.status();
  TcpLoadResult r = RunTcpLoad(load);
  absl::StatusOr<Rerouted> rerouted_after = ReadRerouted(broker_->socket_path, load.port);
  ASSERT_TRUE(rerouted_after.ok()) << rerouted_after.status();
  EXPECT_EQ(r.successes, 300) << r.Summary();
  absl::StatusOr<std::map<std::string, std::vector<std::string>>> logs = ReadMemberLogs(servers);
  ASSERT_TRUE(logs.ok());
  EXPECT_EQ(CheckServedExactlyOnce(r.tokens, *logs), "");
  ExpectSharesFair(r.per_member, r.successes, 0.25, 0.75, 2, *rerouted_after - *rerouted_before);

  absl::StatusOr<ctl::JsonValue> after = StatusJson();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ((*after)["groups"].array[0]["accepted"].AsNumber(), 300);

  // SIGTERM: exit status 0, socket file removed.
  ASSERT_OK(broker_->process->Signal(SIGTERM));
  absl::StatusOr<int> exited = broker_->process->Wait(absl::Seconds(10));
  ASSERT_TRUE(exited.ok()) << exited.status();
  EXPECT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0) << DescribeWaitStatus(*exited) << "\n"
                                                                << broker_->process->ReadStdout();
  struct stat st {};
  EXPECT_NE(stat(broker_->socket_path.c_str(), &st), 0) << "the socket file is left behind";
  EXPECT_EQ(errno, ENOENT);
}

// Connections in the accept queue of a TCP listener on 127.0.0.1:port
// (/proc/net/tcp: a listener's rx_queue is its accept backlog).
int AcceptQueue(uint16_t port) {
  absl::StatusOr<std::vector<std::string>> lines = ReadLines("/proc/net/tcp");
  if (!lines.ok()) return -1;
  std::string local = absl::StrFormat("0100007F:%04X", port);
  for (const std::string& line : *lines) {
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 5 || f[1] != local || f[3] != "0A") continue;
    std::vector<std::string> queues = absl::StrSplit(f[4], ':');
    uint32_t rx = 0;
    if (queues.size() == 2 && absl::SimpleHexAtoi(queues[1], &rx)) return static_cast<int>(rx);
  }
  return -1;
}

TEST_F(InstalledProgramsTest, RestartedDaemonGetsItsMembersBack) {
  // What docs/operations.md promises for `systemctl restart`: members keep
  // their sockets while the broker is gone, connections wait in the kernel's
  // backlog, and the members rejoin the next broker on the same path.
  ASSERT_NO_FATAL_FAILURE(StartBroker());
  std::vector<MemberProcess> servers = StartTwoServers("srv");
  ASSERT_EQ(servers.size(), 2u);
  ASSERT_OK(WaitForMembers(2));
  const uint16_t port = servers[0].port;

  ASSERT_OK(broker_->process->Signal(SIGTERM));
  absl::StatusOr<int> exited = broker_->process->Wait(absl::Seconds(10));
  ASSERT_TRUE(exited.ok()) << exited.status();
  ASSERT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0) << DescribeWaitStatus(*exited);

  // Clients arrive while no broker runs: the kernel completes their handshakes
  // and queues them on the group's socket, as many as its backlog holds
  // (the member asks for SOMAXCONN; net.core.somaxconn caps it).
  int somaxconn = 4096;
  if (absl::StatusOr<std::string> text = ReadFile("/proc/sys/net/core/somaxconn"); text.ok()) {
    (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &somaxconn);
  }
  const int kWaiting = std::min(40, somaxconn);
  RecordProperty("clients_waiting", kWaiting);
  TcpLoadResult waiting;
  std::thread clients([&] {
    TcpLoadOptions load;
    load.port = port;
    load.connections = kWaiting;
    load.concurrency = kWaiting;
    load.connection_timeout = absl::Seconds(20);
    waiting = RunTcpLoad(load);
  });
  struct JoinOnExit {
    std::thread& thread;
    ~JoinOnExit() {
      if (thread.joinable()) thread.join();
    }
  } join_on_exit{clients};  // also when an assertion below returns early
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  int queued = 0;
  while ((queued = AcceptQueue(port)) < kWaiting && absl::Now() < deadline) usleep(2000);
  EXPECT_EQ(queued, kWaiting) << "the clients' connections did not reach the accept queue";

  absl::StatusOr<InstalledBroker> next = StartInstalledBroker(Path(REUSEPORT_INSTALL_SBINDIR), UnitPath(), PolicyPath(), dir_.path());
  ASSERT_TRUE(next.ok()) << next.status();
  broker_.emplace(std::move(*next));
  absl::Status rejoined = WaitForMembers(2);
  clients.join();
  ASSERT_OK(rejoined) << broker_->process->ReadStdout();
  EXPECT_EQ(waiting.successes, kWaiting) << waiting.Summary();

  TcpLoadOptions load;
  load.port = port;
  load.connections = 200;
  absl::StatusOr<Rerouted> rerouted_before = ReadRerouted(broker_->socket_path, port);
  ASSERT_TRUE(rerouted_before.ok()) << rerouted_before.status();
  TcpLoadResult after = RunTcpLoad(load);
  absl::StatusOr<Rerouted> rerouted_after = ReadRerouted(broker_->socket_path, port);
  ASSERT_TRUE(rerouted_after.ok()) << rerouted_after.status();
  EXPECT_EQ(after.successes, 200) << after.Summary();
  ExpectSharesFair(after.per_member, after.successes, 0.25, 0.75, 2, *rerouted_after - *rerouted_before);
}

TEST_F(InstalledProgramsTest, RunRefusesASetuidProgram) {
  std::string copy = dir_.File("setuid-true");
  fs::copy_file("/bin/true", copy);
  ASSERT_EQ(chmod(copy.c_str(), 04755), 0);
  absl::StatusOr<CommandResult> r = RunCommand({Bin("reuseport-run"), "--socket", dir_.File("none.sock"), "--", copy});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->exited(126)) << r->Describe();
  EXPECT_NE(r->err.find("refusing to run " + copy), std::string::npos) << r->err;
  EXPECT_NE(r->err.find("setuid"), std::string::npos) << r->err;
  EXPECT_NE(r->err.find("LD_PRELOAD"), std::string::npos) << "the reason: " << r->err;
}

TEST_F(InstalledProgramsTest, RunRefusesAStaticallyLinkedProgram) {
  std::string program = REUSEPORT_INSTALL_STATIC_PROGRAM;
  if (program.empty()) GTEST_SKIP() << "no static C library to build a static program with (libc6-dev)";
  // It is a real program: it runs on its own.
  absl::StatusOr<CommandResult> alone = RunCommand({program});
  ASSERT_TRUE(alone.ok());
  ASSERT_TRUE(alone->exited(0)) << alone->Describe();
  absl::StatusOr<CommandResult> r = RunCommand({Bin("reuseport-run"), "--socket", dir_.File("none.sock"), "--", program});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->exited(126)) << r->Describe();
  EXPECT_NE(r->err.find("refusing to run " + program), std::string::npos) << r->err;
  EXPECT_NE(r->err.find("statically linked"), std::string::npos) << r->err;
}

TEST_F(InstalledProgramsTest, MetricsAreValidPrometheusTextAndAgreeWithStatusJson) {
  ASSERT_NO_FATAL_FAILURE(StartBroker());
  // One server's command name needs escaping in both formats: a quote and a
  // backslash (/proc/PID/comm is the file name, at most 15 bytes).
  const std::string odd_name = "tcp\"odd\\name";
  std::string odd = dir_.File(odd_name);
  fs::copy_file(TcpMemberPath(), odd);
  ASSERT_EQ(chmod(odd.c_str(), 0755), 0);
  std::vector<MemberProcess> tcp = StartTwoServers("tcp", odd);
  ASSERT_EQ(tcp.size(), 2u);

  // A UDP group too: udp_member asks for SO_REUSEPORT itself.
  std::vector<MemberProcess> udp;
  uint16_t udp_port = 0;
  for (int i = 0; i < 2; ++i) {
    MemberOptions m;
    m.process.argv = {Bin("reuseport-run"), "--socket", broker_->socket_path, "--", UdpMemberPath(), "--host", "127.0.0.1",
                      "--port", absl::StrCat(udp_port)};
    m.process.unset_env = {"LD_PRELOAD", "REUSEPORT_SOCKET", "REUSEPORT_MODE", "REUSEPORT_PORTS"};
    UnderLegacyKernel(&m.process);
    m.id = absl::StrCat("udp", i);
    m.dir = dir_.path();
    absl::StatusOr<MemberProcess> started = StartMember(m);
    ASSERT_TRUE(started.ok()) << started.status() << "\n" << broker_->process->ReadStdout();
    udp_port = started->port;
    udp.push_back(std::move(*started));
  }
  ASSERT_OK(WaitForMembers(4));

  TcpLoadOptions load;
  load.port = tcp[0].port;
  load.connections = 200;
  TcpLoadResult t = RunTcpLoad(load);
  ASSERT_EQ(t.successes, 200) << t.Summary();
  UdpFlowOptions flows;
  flows.port = udp_port;
  flows.flows = 40;
  flows.datagrams_per_flow = 3;
  flows.retries = 3;
  UdpFlowResult u = RunUdpFlows(flows);
  ASSERT_EQ(u.lost, 0) << u.Summary();

  absl::StatusOr<CommandResult> metrics = RunCommand({Bin("reuseportctl"), "--socket", broker_->socket_path, "metrics"});
  ASSERT_TRUE(metrics.ok());
  ASSERT_TRUE(metrics->exited(0)) << metrics->Describe();
  std::vector<PromSample> samples;
  std::vector<std::string> problems = ParsePrometheusText(metrics->out, &samples);
  EXPECT_TRUE(problems.empty()) << absl::StrJoin(problems, "\n") << "\n" << metrics->out;
  ASSERT_FALSE(samples.empty());

  absl::StatusOr<ctl::JsonValue> status = StatusJson();
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_EQ((*status)["groups"].array.size(), 2u);

  auto find = [&](const std::string& name, const std::map<std::string, std::string>& match) -> const PromSample* {
    for (const PromSample& s : samples) {
      if (s.name != name) continue;
      bool all = true;
      for (const auto& [k, v] : match) {
        auto it = s.labels.find(k);
        all = all && it != s.labels.end() && it->second == v;
      }
      if (all) return &s;
    }
    return nullptr;
  };
  const PromSample* up = find("reuseport_up", {});
  ASSERT_NE(up, nullptr);
  EXPECT_EQ(up->value, 1);

  // Every group and member of the JSON document has its samples, with the same numbers.
  int odd_seen = 0;
  for (const ctl::JsonValue& g : (*status)["groups"].array) {
    std::string group = absl::StrCat(static_cast<int>(g["id"].AsNumber()));
    const PromSample* members = find("reuseport_group_members", {{"group", group}});
    ASSERT_NE(members, nullptr) << "group " << group;
    EXPECT_EQ(members->value, g["members"].array.size());
    EXPECT_EQ(members->labels.at("protocol"), g["protocol"].AsString());
    EXPECT_EQ(members->labels.at("address"), g["address"].AsString());
    bool is_tcp = g["protocol"].AsString() == "tcp";
    double handled = 0;
    for (const ctl::JsonValue& m : g["members"].array) {
      std::string member = absl::StrCat(static_cast<int>(m["id"].AsNumber()));
      const PromSample* s = find(is_tcp ? "reuseport_connections_dispatched_total" : "reuseport_datagrams_dispatched_total",
                                 {{"group", group}, {"member", member}});
      ASSERT_NE(s, nullptr) << "member " << member;
      EXPECT_EQ(s->value, m[is_tcp ? "connections" : "datagrams"].AsNumber());
      EXPECT_EQ(s->labels.at("pid"), absl::StrCat(static_cast<int>(m["pid"].AsNumber())));
      // The same command name through both escapings.
      EXPECT_EQ(s->labels.at("command"), m["command"].AsString());
      if (m["command"].AsString() == odd_name) ++odd_seen;
      handled += s->value;
    }
    if (is_tcp) {
      EXPECT_EQ(handled, 200);
      const PromSample* accepted = find("reuseport_connections_accepted_total", {{"group", group}});
      ASSERT_NE(accepted, nullptr);
      EXPECT_EQ(accepted->value, 200);
    } else {
      EXPECT_EQ(handled, g["datagrams"].AsNumber());
      EXPECT_GE(handled, flows.flows * flows.datagrams_per_flow);
    }
  }
  EXPECT_EQ(odd_seen, 1) << "the server named " << odd_name << " is not in both outputs";
}

// The parser above must itself reject what Prometheus rejects.
TEST(PrometheusTextParserTest, RejectsMalformedExpositions) {
  std::vector<PromSample> s;
  EXPECT_TRUE(ParsePrometheusText("# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"\\\\\\n\"} 3\n", &s).empty());
  EXPECT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].labels["x"], "1\"\\\n");
  for (const char* bad : {
           "a 1\n",                                                        // no HELP/TYPE
           "# HELP a A.\n# TYPE a gauge\na{x=\"\\q\"} 1\n",                // bad escape
           "# HELP a A.\n# TYPE a gauge\na{x=\"1} 1\n",                    // unterminated value
           "# HELP a A.\n# TYPE a gauge\na{x=\"1\"} one\n",                // not a number
           "# HELP a A.\n# TYPE a gauge\na 1\na 2\n",                      // same series twice
           "# HELP a A.\n# TYPE a gauge\na 1\n# HELP b B.\n# TYPE b gauge\nb 1\na{x=\"y\"} 1\n",  // not together
           "# HELP a A.\n# TYPE a counter\na -1\n",                        // negative counter
           "# HELP a A.\n# TYPE a gauge\n# TYPE a gauge\na 1\n",           // TYPE twice
           "# HELP a A.\n# TYPE a gauge\na 1",                             // no final newline
           "# HELP 1a A.\n# TYPE 1a gauge\n1a 1\n",                        // bad name
       }) {
    s.clear();
    EXPECT_FALSE(ParsePrometheusText(bad, &s).empty()) << bad;
  }
}

}  // namespace
}  // namespace reuseport::testing
