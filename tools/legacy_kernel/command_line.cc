#include "command_line.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace reuseport::legacy_kernel {

absl::StatusOr<Options> ParseCommandLine(int argc, char** argv) {
  Options options;
  int i = 1;
  for (; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg == "--help" || arg == "-h") {
      options.help = true;
    } else if (arg == "--list") {
      options.list = true;
    } else if (arg == "--explain") {
      options.explain = true;
    } else if (arg == "--kernel" || absl::StartsWith(arg, "--kernel=")) {
      absl::string_view value;
      if (arg == "--kernel") {
        if (i + 1 >= argc) return absl::InvalidArgumentError("--kernel needs a version, e.g. --kernel 3.2");
        value = argv[++i];
      } else {
        value = arg.substr(absl::string_view("--kernel=").size());
      }
      absl::StatusOr<KernelVersion> version = ParseKernelVersion(value);
      if (!version.ok()) return version.status();
      options.kernel = *version;
    } else if (absl::StartsWith(arg, "-") && arg != "-") {
      return absl::InvalidArgumentError(absl::StrCat("unknown option '", arg, "'"));
    } else {
      break;  // the command starts here
    }
  }
  options.command.assign(argv + i, argv + argc);
  if (options.command.empty() && !options.help && !options.list) {
    return absl::InvalidArgumentError("missing command to run");
  }
  return options;
}

}  // namespace reuseport::legacy_kernel
