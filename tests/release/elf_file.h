// What a test needs to know about an ELF file: is it one, is it static, what
// does it need from the dynamic loader (DT_NEEDED, symbol versions), and for
// which kernel was its C library built (NT_GNU_ABI_TAG). x86-64 (ELF64,
// little-endian) only, as the release is.
#ifndef REUSEPORT_TESTS_RELEASE_ELF_FILE_H_
#define REUSEPORT_TESTS_RELEASE_ELF_FILE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace reuseport::testing {

struct ElfFacts {
  bool shared_object = false;  // ET_DYN without an interpreter: a library
  bool has_interpreter = false;  // PT_INTERP: the dynamic loader runs it
  bool has_dynamic = false;      // PT_DYNAMIC
  std::vector<std::string> needed;  // DT_NEEDED
  // Version requirements (.gnu.version_r): "libc.so.6: GLIBC_2.2.5".
  struct Requirement {
    std::string file;
    std::string version;
  };
  std::vector<Requirement> requirements;
  // NT_GNU_ABI_TAG: the oldest kernel the C library inside or needed was
  // built for, "3.2.0"; empty without the note.
  std::string abi_kernel;
};

// False (not an error) for files that are not ELF.
bool IsElf(const std::string& path);

absl::StatusOr<ElfFacts> ReadElfFacts(const std::string& path);

// "GLIBC_2.12" -> {2, 12}; {0, 0} for anything that is not a GLIBC_x.y[.z].
std::vector<int> GlibcVersion(const std::string& version_name);

// a <= b, comparing version vectors (missing parts count as 0).
bool VersionAtMost(const std::vector<int>& a, const std::vector<int>& b);

}  // namespace reuseport::testing

#endif  // REUSEPORT_TESTS_RELEASE_ELF_FILE_H_
