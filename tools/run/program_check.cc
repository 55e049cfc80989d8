#include "program_check.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace reuseport::run {

namespace {

bool ReadAt(int fd, off_t offset, void* out, size_t size) {
  return pread(fd, out, size, offset) == static_cast<ssize_t>(size);
}

// PT_INTERP present means the dynamic loader runs, and reads LD_PRELOAD.
template <typename Ehdr, typename Phdr>
absl::StatusOr<bool> HasInterpreter(int fd) {
  Ehdr eh;
  if (!ReadAt(fd, 0, &eh, sizeof(eh))) return absl::InvalidArgumentError("truncated ELF header");
  if (eh.e_phentsize != sizeof(Phdr)) return absl::InvalidArgumentError("unexpected program header size");
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    Phdr ph;
    if (!ReadAt(fd, static_cast<off_t>(eh.e_phoff + i * sizeof(Phdr)), &ph, sizeof(ph))) {
      return absl::InvalidArgumentError("truncated program headers");
    }
    if (ph.p_type == PT_INTERP) return true;
  }
  return false;
}

absl::Status Check(const std::string& path, int depth) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return absl::NotFoundError(absl::StrFormat("%s: %s", path, strerror(errno)));
  if (st.st_mode & (S_ISUID | S_ISGID)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s is set%s: the dynamic loader ignores LD_PRELOAD in such programs, so it would run without "
        "reuseport. Run a copy without the bit, or give it the capability it needs instead",
        path, (st.st_mode & S_ISUID) ? "uid" : "gid"));
  }
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::OkStatus();  // not readable: let exec report what it will
  unsigned char head[256] = {};
  ssize_t n = pread(fd, head, sizeof(head) - 1, 0);
  absl::Status result = absl::OkStatus();
  if (n >= 2 && head[0] == '#' && head[1] == '!') {
    close(fd);
    if (depth >= 4) return absl::OkStatus();
    std::string line(reinterpret_cast<char*>(head + 2), static_cast<size_t>(n - 2));
    line = line.substr(0, line.find('\n'));
    std::string interpreter(absl::StripAsciiWhitespace(line));
    interpreter = interpreter.substr(0, interpreter.find_first_of(" \t"));
    if (interpreter.empty()) return absl::OkStatus();
    return Check(interpreter, depth + 1);
  }
  if (n >= SELFMAG && memcmp(head, ELFMAG, SELFMAG) == 0) {
    bool program64 = head[EI_CLASS] == ELFCLASS64;
    bool we64 = sizeof(void*) == 8;
    if (program64 != we64) {
      result = absl::FailedPreconditionError(absl::StrFormat(
          "%s is a %d-bit program and this libreuseport.so is %d-bit: the loader would skip it", path,
          program64 ? 64 : 32, we64 ? 64 : 32));
    } else {
      absl::StatusOr<bool> dynamic = program64 ? HasInterpreter<Elf64_Ehdr, Elf64_Phdr>(fd)
                                               : HasInterpreter<Elf32_Ehdr, Elf32_Phdr>(fd);
      if (dynamic.ok() && !*dynamic) {
        result = absl::FailedPreconditionError(absl::StrFormat(
            "%s is statically linked: there is no dynamic loader to load libreuseport.so into it", path));
      }
    }
  }
  close(fd);
  return result;
}

}  // namespace

absl::StatusOr<std::string> FindProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (access(name.c_str(), F_OK) != 0) return absl::NotFoundError(absl::StrFormat("%s: %s", name, strerror(errno)));
    return name;
  }
  const char* path = getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path ? path : "/usr/local/bin:/usr/bin:/bin", ':')) {
    std::string candidate = absl::StrFormat("%s/%s", dir.empty() ? "." : dir, name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return absl::NotFoundError(absl::StrFormat("%s: command not found", name));
}

absl::Status CheckPreloadable(const std::string& path) { return Check(path, 0); }

}  // namespace reuseport::run
