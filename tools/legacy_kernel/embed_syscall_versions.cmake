# Turns syscall_versions.tsv into a C++ source defining SyscallIntroductions().
# Run at build time: cmake -DINPUT=<tsv> -DOUTPUT=<cc> -P embed_syscall_versions.cmake
# A malformed line stops the build rather than silently dropping a system call.

file(READ "${INPUT}" content)
# Semicolons separate CMake list items; only comments could hold one, so a comma will do.
string(REPLACE ";" "," content "${content}")
string(REPLACE "\n" ";" lines "${content}")
set(rows "")
set(source "unknown")
set(line_number 0)
foreach(line IN LISTS lines)
  math(EXPR line_number "${line_number} + 1")
  if(line MATCHES "^# source: (.*)$")
    set(source "${CMAKE_MATCH_1}")
  elseif(line STREQUAL "" OR line MATCHES "^#")
    continue()
  elseif(line MATCHES "^([a-z0-9_]+)\t([0-9]+(\\.[0-9]+)(\\.[0-9]+)?(\\.[0-9]+)?)$")
    set(name "${CMAKE_MATCH_1}")
    string(REPLACE "." ", " parts "${CMAKE_MATCH_2}")
    string(APPEND rows "    {\"${name}\", {${parts}}},\n")
  else()
    message(FATAL_ERROR "${INPUT}:${line_number}: expected 'name<TAB>X.Y[.Z[.W]]', got '${line}'")
  endif()
endforeach()
string(REPLACE "\"" "\\\"" source "${source}")

file(WRITE "${OUTPUT}.tmp" "// Generated from syscall_versions.tsv by embed_syscall_versions.cmake. Do not edit.
#include \"syscall_version_table.h\"

namespace reuseport::legacy_kernel {
namespace {
constexpr SyscallIntroduction kRows[] = {
${rows}};
}  // namespace

std::span<const SyscallIntroduction> SyscallIntroductions() { return kRows; }

absl::string_view SyscallTableSource() {
  return \"${source}\";
}

}  // namespace reuseport::legacy_kernel
")
# Only touch the output when it changed, so an unchanged table recompiles nothing.
execute_process(COMMAND "${CMAKE_COMMAND}" -E copy_if_different "${OUTPUT}.tmp" "${OUTPUT}")
file(REMOVE "${OUTPUT}.tmp")
