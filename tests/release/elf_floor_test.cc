// The floor of every ELF file the release ships, read from the files
// themselves, in the tarball, the .deb and the .rpm:
//
// - libreuseport.so needs nothing newer than GLIBC_2.12 (RHEL 6) and nothing
//   but the C library: no libstdc++, no libgcc_s. Loaders before glibc 2.30
//   look a versioned symbol up in the file its requirement names, so dlsym and
//   pthread_create must be required from libdl.so.2 and libpthread.so.0.
// - reuseportd, reuseportctl, reuseport-run and reuseport-legacy-kernel are
//   static (no interpreter, no dynamic section) and their C library was built
//   for Linux 3.2 at most (NT_GNU_ABI_TAG).
//
// The shim of this build tree is checked too, release or not.
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "elf_file.h"
#include "gtest/gtest.h"
#include "release_files.h"
#include "release_test.h"
#include "status_macros.h"
#include "temp_dir.h"

namespace reuseport::testing {
namespace {

const std::vector<int> kGlibcFloor = {2, 12};
const std::vector<int> kKernelFloor = {3, 2, 0};

const std::set<std::string>& ShimMayNeed() {
  static const auto* needed =
      new std::set<std::string>{"libc.so.6", "libdl.so.2", "libpthread.so.0", "ld-linux-x86-64.so.2"};
  return *needed;
}

void ExpectShimWithinFloor(const std::string& where, const std::string& path) {
  SCOPED_TRACE(where);
  absl::StatusOr<ElfFacts> facts = ReadElfFacts(path);
  ASSERT_OK(facts);
  EXPECT_TRUE(facts->shared_object);
  for (const std::string& n : facts->needed) {
    EXPECT_TRUE(ShimMayNeed().contains(n)) << "the shim needs " << n << " (only the C library may be needed)";
  }
  std::set<std::string> seen;
  for (const ElfFacts::Requirement& r : facts->requirements) {
    seen.insert(absl::StrCat(r.file, " ", r.version));
    std::vector<int> v = GlibcVersion(r.version);
    EXPECT_NE(v, (std::vector<int>{0, 0})) << r.file << ": " << r.version << " is not a public GLIBC version";
    EXPECT_TRUE(VersionAtMost(v, kGlibcFloor)) << r.file << ": " << r.version << " is newer than GLIBC_2.12";
    EXPECT_TRUE(ShimMayNeed().contains(r.file)) << r.version << " from " << r.file;
  }
  EXPECT_TRUE(seen.contains("libdl.so.2 GLIBC_2.2.5")) << "dlsym must be required from libdl.so.2 (glibc < 2.30 "
                                                          "loaders look only there); requirements: "
                                                       << absl::StrJoin(seen, ", ");
  EXPECT_TRUE(seen.contains("libpthread.so.0 GLIBC_2.2.5")) << absl::StrJoin(seen, ", ");
}

void ExpectStaticWithinFloor(const std::string& where, const std::string& path) {
  SCOPED_TRACE(where);
  absl::StatusOr<ElfFacts> facts = ReadElfFacts(path);
  ASSERT_OK(facts);
  EXPECT_FALSE(facts->has_interpreter) << "dynamically linked";
  EXPECT_FALSE(facts->has_dynamic) << "has a dynamic section (static-pie or dynamic)";
  EXPECT_TRUE(facts->needed.empty()) << absl::StrJoin(facts->needed, ", ");
  EXPECT_TRUE(facts->requirements.empty());
  ASSERT_FALSE(facts->abi_kernel.empty()) << "no NT_GNU_ABI_TAG";
  std::vector<int> kernel;
  for (absl::string_view p : absl::StrSplit(facts->abi_kernel, '.')) kernel.push_back(std::stoi(std::string(p)));
  EXPECT_TRUE(VersionAtMost(kernel, kKernelFloor)) << "built for Linux " << facts->abi_kernel;
  ::testing::Test::RecordProperty(absl::StrCat(where, " kernel"), facts->abi_kernel);
}

// The ELF files under `root`, with `prefix` (where the package puts them)
// cut off: they must be exactly the release's five, each within its floor.
void CheckTree(const std::string& what, const std::string& root, const std::string& prefix) {
  std::set<std::string> elf;
  for (const std::string& file : RegularFiles(root)) {
    std::string path = absl::StrCat(root, "/", file);
    if (!IsElf(path)) continue;
    std::string relative = file;
    if (!prefix.empty()) {
      ASSERT_EQ(relative.rfind(prefix, 0), 0u) << what << ": " << file << " is outside " << prefix;
      relative = relative.substr(prefix.size());
    }
    elf.insert(relative);
    std::string where = absl::StrCat(what, ": ", relative);
    if (relative == "lib/libreuseport.so") {
      ExpectShimWithinFloor(where, path);
    } else {
      ExpectStaticWithinFloor(where, path);
    }
  }
  EXPECT_EQ(elf, (std::set<std::string>{"sbin/reuseportd", "bin/reuseportctl", "bin/reuseport-run",
                                        "bin/reuseport-legacy-kernel", "lib/libreuseport.so"}))
      << what;
}

TEST(ElfFloorTest, ThisBuildsShimNeedsNothingNewerThanGlibc212) {
  ExpectShimWithinFloor("build tree", REUSEPORT_TEST_BUILT_SHIM);
}

TEST(ElfFloorTest, ReadsWhatAProgramOfThisSystemNeeds) {
  // The reader itself, on a file whose answers are known: Debian 12's sh is
  // dynamic and needs GLIBC_2.34 (__libc_start_main).
  absl::StatusOr<ElfFacts> sh = ReadElfFacts("/bin/sh");
  ASSERT_OK(sh);
  EXPECT_TRUE(sh->has_interpreter);
  EXPECT_NE(std::find(sh->needed.begin(), sh->needed.end(), "libc.so.6"), sh->needed.end());
  bool newer = false;
  for (const auto& r : sh->requirements) newer |= !VersionAtMost(GlibcVersion(r.version), kGlibcFloor);
  EXPECT_TRUE(newer) << "a floor test that sees nothing above 2.12 in a Debian 12 program reads nothing";
  EXPECT_FALSE(IsElf(REUSEPORT_TEST_SOURCE_DIR "/release/elf_file.h"));
}

using ReleaseElfFloorTest = ReleaseTest;

TEST_F(ReleaseElfFloorTest, Tarball) {
  absl::StatusOr<UnpackedRelease> unpacked = UnpackedRelease::Unpack(release_);
  ASSERT_OK(unpacked);
  CheckTree("tarball", unpacked->prefix(), "");
}

TEST_F(ReleaseElfFloorTest, Deb) {
  absl::StatusOr<TempDir> dir = TempDir::Create("reuseport-deb");
  ASSERT_OK(dir);
  ASSERT_OK(ExtractDeb(release_.deb, dir->path()));
  CheckTree("deb", dir->path(), "usr/");
}

TEST_F(ReleaseElfFloorTest, Rpm) {
  absl::StatusOr<TempDir> dir = TempDir::Create("reuseport-rpm");
  ASSERT_OK(dir);
  ASSERT_OK(ExtractRpm(release_.rpm, dir->path()));
  CheckTree("rpm", dir->path(), "usr/");
}

}  // namespace
}  // namespace reuseport::testing
