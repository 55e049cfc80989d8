// reuseport-run: run a program with libreuseport.so, so that its sockets share
// ports through reuseportd on kernels without SO_REUSEPORT.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "program_check.h"
#include "reuseport/protocol.h"

#ifndef REUSEPORT_SHIM_INSTALL_PATH
#define REUSEPORT_SHIM_INSTALL_PATH "/usr/local/lib/libreuseport.so"
#endif

namespace {

constexpr char kUsage[] =
    "NAME\n"
    "  reuseport-run - run a program with SO_REUSEPORT emulation\n"
    "\n"
    "SYNOPSIS\n"
    "  reuseport-run [--ports LIST] [--socket PATH] [--mode auto|emulate] [--log_level LEVEL]\n"
    "                [--shim PATH] [--] PROGRAM [ARGS...]\n"
    "\n"
    "DESCRIPTION\n"
    "  Runs PROGRAM with libreuseport.so preloaded (appended to any LD_PRELOAD), so that\n"
    "  its sockets with SO_REUSEPORT, and its binds to the listed ports, share their\n"
    "  address and port with other programs through reuseportd, as on Linux 3.9+.\n"
    "  Refuses programs the shim cannot enter: setuid/setgid, statically linked, or of\n"
    "  another word size. Warns when no broker answers (the program then runs as on\n"
    "  this kernel).\n"
    "\n"
    "OPTIONS (--name VALUE or --name=VALUE)\n"
    "  --ports LIST   share these ports even if the program never asks (PORT, PORT/tcp,\n"
    "                 PORT/udp, comma-separated): run N copies of a legacy server on one port\n"
    "  --socket PATH  the broker's control socket (default $REUSEPORT_SOCKET, else " RP_DEFAULT_SOCKET ",\n"
    "                 or " RP_DEFAULT_SOCKET_VAR_RUN " where /run does not exist)\n"
    "  --mode MODE    auto: the kernel's SO_REUSEPORT where it works, else emulate (default);\n"
    "                 emulate: always through the broker\n"
    "  --log_level LEVEL  the shim's messages: quiet, error, warn (default), info, debug\n"
    "  --shim PATH    the libreuseport.so to load (default: the installed one)\n"
    "\n"
    "ENVIRONMENT\n"
    "  Sets REUSEPORT_SOCKET, REUSEPORT_MODE, REUSEPORT_PORTS and REUSEPORT_LOG for PROGRAM.\n"
    "\n"
    "EXIT STATUS\n"
    "  PROGRAM's own; 2 on usage errors; 126 when PROGRAM cannot run with the shim;\n"
    "  127 when it is not found.\n";

int Usage(const std::string& why) {
  fprintf(stderr, "reuseport-run: %s\n\n%s", why.c_str(), kUsage);
  return 2;
}

bool ValidPorts(const std::string& list) {
  for (absl::string_view item : absl::StrSplit(list, ',')) {
    absl::string_view port = item;
    size_t slash = item.find('/');
    if (slash != absl::string_view::npos) {
      absl::string_view proto = item.substr(slash + 1);
      if (proto != "tcp" && proto != "udp") return false;
      port = item.substr(0, slash);
    }
    int n = 0;
    if (!absl::SimpleAtoi(port, &n) || n < 1 || n > 65535) return false;
  }
  return !list.empty();
}

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// The installed shim, else one beside this executable (install tree or build tree).
std::string DefaultShim() {
  if (access(REUSEPORT_SHIM_INSTALL_PATH, R_OK) == 0) return REUSEPORT_SHIM_INSTALL_PATH;
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = '\0';
    std::string dir = Dirname(self);
    for (const char* rel : {"/../lib/libreuseport.so", "/../lib64/libreuseport.so", "/../../shim/libreuseport.so"}) {
      std::string candidate = dir + rel;
      char resolved[4096];
      if (realpath(candidate.c_str(), resolved) != nullptr && access(resolved, R_OK) == 0) return resolved;
    }
  }
  return REUSEPORT_SHIM_INSTALL_PATH;
}

bool BrokerAnswers(const std::string& path) {
  struct sockaddr_un addr {};
  if (path.size() >= sizeof(addr.sun_path)) return false;
  addr.sun_family = AF_UNIX;
  strcpy(addr.sun_path, path.c_str());
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool ok = connect(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  std::string ports, mode, log_level, shim;
  const char* env_socket = getenv("REUSEPORT_SOCKET");
  std::string socket_path = env_socket && *env_socket ? env_socket : rp_default_socket();
  int i = 1;
  // Options as every reuseport program spells them: --name value or
  // --name=value, words joined by underscores.
  std::string inline_value;
  bool has_inline_value = false;
  auto value = [&]() -> const char* {
    if (has_inline_value) return inline_value.c_str();
    if (i + 1 >= argc) return nullptr;
    return argv[++i];
  };
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a == "--help" || a == "-h") {
      fputs(kUsage, stdout);
      return 0;
    }
    has_inline_value = false;
    if (size_t eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = a.substr(eq + 1);
      has_inline_value = true;
      a.resize(eq);
    }
    const char* v = nullptr;
    if (a == "--ports") {
      if (!(v = value())) return Usage("--ports needs a list");
      ports = v;
      if (!ValidPorts(ports)) return Usage("--ports: '" + ports + "' is not PORT[/tcp|/udp][,...]");
    } else if (a == "--socket") {
      if (!(v = value())) return Usage("--socket needs a path");
      socket_path = v;
    } else if (a == "--mode") {
      if (!(v = value())) return Usage("--mode needs auto or emulate");
      mode = v;
      if (mode != "auto" && mode != "emulate") return Usage("--mode must be auto or emulate");
    } else if (a == "--log_level" || a == "--log") {  // --log: the spelling of 0.1.0
      if (!(v = value())) return Usage("--log_level needs a level");
      log_level = v;
    } else if (a == "--shim") {
      if (!(v = value())) return Usage("--shim needs a path");
      shim = v;
    } else if (!a.empty() && a[0] == '-') {
      return Usage("unknown option " + a);
    } else {
      break;
    }
  }
  if (i >= argc) return Usage("which program?");

  absl::StatusOr<std::string> program = reuseport::run::FindProgram(argv[i]);
  if (!program.ok()) {
    fprintf(stderr, "reuseport-run: %s\n", std::string(program.status().message()).c_str());
    return 127;
  }
  if (absl::Status s = reuseport::run::CheckPreloadable(*program); !s.ok()) {
    fprintf(stderr, "reuseport-run: refusing to run %s: %s\n", program->c_str(), std::string(s.message()).c_str());
    return absl::IsNotFound(s) ? 127 : 126;
  }
  if (shim.empty()) shim = DefaultShim();
  if (shim[0] != '/') {
    char resolved[4096];
    if (realpath(shim.c_str(), resolved) != nullptr) shim = resolved;
  }
  if (access(shim.c_str(), R_OK) != 0) {
    fprintf(stderr, "reuseport-run: cannot read the shim %s: %s\n", shim.c_str(), strerror(errno));
    return 126;
  }
  const char* existing = getenv("LD_PRELOAD");
  std::string preload = existing && *existing ? std::string(existing) + " " + shim : shim;
  setenv("LD_PRELOAD", preload.c_str(), 1);
  setenv("REUSEPORT_SOCKET", socket_path.c_str(), 1);
  if (!mode.empty()) setenv("REUSEPORT_MODE", mode.c_str(), 1);
  if (!ports.empty()) setenv("REUSEPORT_PORTS", ports.c_str(), 1);
  if (!log_level.empty()) setenv("REUSEPORT_LOG", log_level.c_str(), 1);
  if (!BrokerAnswers(socket_path)) {
    fprintf(stderr,
            "reuseport-run: warning: no broker answers at %s; %s will behave as on this kernel "
            "(start reuseportd, or pass --socket)\n",
            socket_path.c_str(), program->c_str());
  }
  execv(program->c_str(), argv + i);
  int err = errno;
  fprintf(stderr, "reuseport-run: cannot run %s: %s\n", program->c_str(), strerror(err));
  return err == ENOENT ? 127 : 126;
}
