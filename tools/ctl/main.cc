// reuseportctl: look at a running reuseportd.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "json_value.h"
#include "reuseport/protocol.h"
#include "status_client.h"
#include "watch_table.h"

namespace {

constexpr char kUsage[] =
    "NAME\n"
    "  reuseportctl - show how a reuseportd spreads load\n"
    "\n"
    "SYNOPSIS\n"
    "  reuseportctl [--socket PATH] status [--json]\n"
    "  reuseportctl [--socket PATH] metrics\n"
    "  reuseportctl [--socket PATH] watch [--interval 1s] [--count N]\n"
    "\n"
    "DESCRIPTION\n"
    "  status   groups (protocol, address, owner uid, network namespace) and their members\n"
    "           (pid, uid, command) with connections or datagrams handed to each, queued and\n"
    "           dropped; refusals by reason. --json prints the same as one JSON document.\n"
    "  metrics  the same counters in the Prometheus text exposition format.\n"
    "  watch    a table that refreshes every interval (default 1 s) with each member's rate\n"
    "           and share; --count stops after N refreshes.\n"
    "\n"
    "OPTIONS\n"
    "  --socket PATH  the broker's control socket (default $REUSEPORT_SOCKET, else " RP_DEFAULT_SOCKET ",\n"
    "                 or " RP_DEFAULT_SOCKET_VAR_RUN " where /run does not exist)\n"
    "\n"
    "EXIT STATUS\n"
    "  0 on success, 1 when the broker cannot be reached or answers with an error, 2 on usage errors.\n";

int Usage(const char* why) {
  if (why) fprintf(stderr, "reuseportctl: %s\n\n", why);
  fputs(kUsage, why ? stderr : stdout);
  return why ? 2 : 0;
}

int Print(const std::string& socket, rp_status_format format) {
  absl::StatusOr<std::string> text = reuseport::ctl::FetchStatus(socket, format);
  if (!text.ok()) {
    fprintf(stderr, "reuseportctl: %s\n", std::string(text.status().message()).c_str());
    return 1;
  }
  fwrite(text->data(), 1, text->size(), stdout);
  return 0;
}

int Watch(const std::string& socket, double interval, long count) {
  std::optional<reuseport::ctl::JsonValue> previous;
  bool tty = isatty(STDOUT_FILENO);
  for (long i = 0; count <= 0 || i < count; ++i) {
    if (i > 0) {
      struct timespec pause = {static_cast<time_t>(interval), static_cast<long>((interval - static_cast<long>(interval)) * 1e9)};
      nanosleep(&pause, nullptr);
    }
    absl::StatusOr<std::string> text = reuseport::ctl::FetchStatus(socket, RP_STATUS_JSON);
    if (!text.ok()) {
      fprintf(stderr, "reuseportctl: %s\n", std::string(text.status().message()).c_str());
      return 1;
    }
    absl::StatusOr<reuseport::ctl::JsonValue> doc = reuseport::ctl::ParseJson(*text);
    if (!doc.ok()) {
      fprintf(stderr, "reuseportctl: %s\n", std::string(doc.status().message()).c_str());
      return 1;
    }
    std::string table = reuseport::ctl::RenderWatchTable(*doc, previous ? &*previous : nullptr, interval);
    if (tty) fputs("\033[H\033[2J", stdout);
    printf("reuseportctl watch: %s, every %.1fs (Ctrl-C to stop)\n\n%s\n", socket.c_str(), interval, table.c_str());
    fflush(stdout);
    previous = std::move(*doc);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const char* env_socket = getenv("REUSEPORT_SOCKET");
  std::string socket = env_socket && *env_socket ? env_socket : rp_default_socket();
  std::vector<std::string> args(argv + 1, argv + argc);
  size_t i = 0;
  for (; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") return Usage(nullptr);
    if (args[i] == "--socket") {
      if (++i == args.size()) return Usage("--socket needs a path");
      socket = args[i];
    } else if (args[i].rfind("--socket=", 0) == 0) {
      socket = args[i].substr(9);
    } else {
      break;
    }
  }
  if (i == args.size()) return Usage("which command? status, metrics or watch");
  std::string command = args[i++];
  if (command == "status") {
    bool json = false;
    for (; i < args.size(); ++i) {
      if (args[i] == "--json") json = true;
      else return Usage(("unknown option for status: " + args[i]).c_str());
    }
    return Print(socket, json ? RP_STATUS_JSON : RP_STATUS_TEXT);
  }
  if (command == "metrics") {
    if (i != args.size()) return Usage("metrics takes no options");
    return Print(socket, RP_STATUS_PROMETHEUS);
  }
  if (command == "watch") {
    absl::Duration interval = absl::Seconds(1);
    long count = 0;
    for (; i < args.size(); ++i) {
      // --name value or --name=value, as every reuseport program takes them.
      std::string name = args[i], value;
      if (size_t eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name.resize(eq);
      } else if (i + 1 < args.size()) {
        value = args[i + 1];
      } else {
        return Usage(("option without a value: " + name).c_str());
      }
      if (name == args[i]) ++i;  // the value was the next argument
      if (name == "--interval") {
        // A duration ("500ms", "2s"); a bare number is seconds.
        double seconds;
        bool parsed = absl::SimpleAtod(value, &seconds) ? (interval = absl::Seconds(seconds), true)
                                                        : absl::ParseDuration(value, &interval);
        if (!parsed || interval < absl::Milliseconds(100)) return Usage("--interval must be a duration of at least 100ms");
      } else if (name == "--count") {
        if (!absl::SimpleAtoi(value, &count) || count < 1) return Usage("--count must be >= 1");
      } else {
        return Usage(("unknown option for watch: " + name).c_str());
      }
    }
    signal(SIGPIPE, SIG_DFL);
    return Watch(socket, absl::ToDoubleSeconds(interval), count);
  }
  return Usage(("unknown command: " + command).c_str());
}
