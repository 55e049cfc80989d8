// The .deb and the .rpm as the old package managers will read them, from the
// files themselves (no installation here; deb_install_test installs the .deb):
//
//   Debian 7's dpkg 1.16: ar members debian-binary, control.tar.gz and a data
//   tar compressed with gzip or xz (control.tar.xz needs dpkg 1.17.6).
//   RHEL 6's rpm 4.8: no payload but gzip/bzip2/xz/lzma, file digests MD5 or
//   SHA-256, and no rpmlib() feature it lacks.
//
// Both carry the same files, the same configuration files and scripts that
// enable the SysV script at boot and clean up on removal.
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "elf_file.h"
#include "gtest/gtest.h"
#include "release_files.h"
#include "release_test.h"
#include "status_macros.h"
#include "temp_dir.h"

namespace reuseport::testing {
namespace {

// What both packages install.
const std::set<std::string>& PackagedFiles() {
  static const auto* files = new std::set<std::string>{
      "/etc/init.d/reuseportd",
      "/etc/reuseport/policy.conf",
      "/usr/bin/reuseport-legacy-kernel",
      "/usr/bin/reuseport-run",
      "/usr/bin/reuseportctl",
      "/usr/include/reuseport/address_codec.h",
      "/usr/include/reuseport/datagram_ring.h",
      "/usr/include/reuseport/errno_name.h",
      "/usr/include/reuseport/fd_passing.h",
      "/usr/include/reuseport/protocol.h",
      "/usr/lib/cmake/reuseport/reuseportConfig.cmake",
      "/usr/lib/cmake/reuseport/reuseportConfigVersion.cmake",
      "/usr/lib/cmake/reuseport/reuseportTargets.cmake",
      "/usr/lib/libreuseport.so",
      "/usr/lib/pkgconfig/reuseport.pc",
      "/usr/lib/systemd/system/reuseportd.service",
      "/usr/sbin/reuseportd",
      "/usr/share/man/man1/reuseport-legacy-kernel.1",
      "/usr/share/man/man1/reuseport-run.1",
      "/usr/share/man/man1/reuseportctl.1",
      "/usr/share/man/man8/libreuseport.8",
      "/usr/share/man/man8/reuseportd.8",
      "/usr/share/reuseport/upstart/reuseportd.conf",
  };
  return *files;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view l : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    out.emplace_back(absl::StripAsciiWhitespace(l));
  }
  return out;
}

// Runs a command that must succeed; its output.
std::string Output(const std::vector<std::string>& argv) {
  std::string out;
  absl::StatusOr<int> s = RunToCompletion(argv, &out);
  EXPECT_TRUE(s.ok() && ExitedWith(*s, 0)) << argv[0] << " " << (argv.size() > 1 ? argv[1] : "") << ":\n" << out;
  return out;
}

// `sh -n` of a script's text: it parses.
void ExpectShellParses(const std::string& what, const std::string& text) {
  absl::StatusOr<TempDir> dir = TempDir::Create("reuseport-script");
  ASSERT_OK(dir);
  std::string path = dir->File("script");
  FILE* f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs(text.c_str(), f);
  fclose(f);
  std::string out;
  absl::StatusOr<int> s = RunToCompletion({"/bin/sh", "-n", path}, &out);
  ASSERT_OK(s);
  EXPECT_TRUE(ExitedWith(*s, 0)) << what << ": " << out << "\n" << text;
}

using PackageFormatTest = ReleaseTest;

TEST_F(PackageFormatTest, DebIsOneDebian7sDpkgReads) {
  // ar members, in order: what dpkg 1.16 accepts.
  std::vector<std::string> members = Lines(Output({"ar", "t", release_.deb}));
  ASSERT_EQ(members.size(), 3u);
  EXPECT_EQ(members[0], "debian-binary");
  EXPECT_EQ(members[1], "control.tar.gz") << "dpkg before 1.17.6 reads only a gzip control archive";
  EXPECT_TRUE(members[2] == "data.tar.xz" || members[2] == "data.tar.gz") << members[2];
  EXPECT_EQ(Output({"ar", "p", release_.deb, "debian-binary"}), "2.0\n");

  auto field = [&](const std::string& name) {
    return std::string(absl::StripAsciiWhitespace(Output({"dpkg-deb", "-f", release_.deb, name})));
  };
  EXPECT_EQ(field("Package"), "reuseport");
  EXPECT_EQ(field("Version"), release_.version);
  EXPECT_EQ(field("Architecture"), "amd64");
  EXPECT_EQ(field("Depends"), "libc6") << "static programs; the shim needs only the C library";

  // Files, owners and modes.
  std::set<std::string> files;
  for (const std::string& line : Lines(Output({"dpkg-deb", "-c", release_.deb}))) {
    std::vector<std::string> cols = absl::StrSplit(line, ' ', absl::SkipEmpty());
    ASSERT_GE(cols.size(), 6u) << line;
    EXPECT_EQ(cols[1], "root/root") << line;
    std::string path = cols.back();
    if (cols[0][0] != '-') continue;
    files.insert(path.substr(1));  // "./usr/..." -> "/usr/..."
    if (absl::StartsWith(path, "./usr/sbin/") || absl::StartsWith(path, "./usr/bin/") || path == "./etc/init.d/reuseportd") {
      EXPECT_EQ(cols[0], "-rwxr-xr-x") << line;
    }
  }
  EXPECT_EQ(files, PackagedFiles());

  // Control files: configuration files, maintainer scripts that parse.
  absl::StatusOr<TempDir> control = TempDir::Create("reuseport-control");
  ASSERT_OK(control);
  Output({"dpkg-deb", "-e", release_.deb, control->File("DEBIAN")});
  std::string conffiles = Output({"cat", control->File("DEBIAN/conffiles")});
  EXPECT_EQ(Lines(conffiles), (std::vector<std::string>{"/etc/reuseport/policy.conf", "/etc/init.d/reuseportd"}));
  for (const char* script : {"postinst", "prerm", "postrm"}) {
    std::string text = Output({"cat", control->File(absl::StrCat("DEBIAN/", script))});
    ExpectShellParses(script, text);
  }
  EXPECT_TRUE(absl::StrContains(Output({"cat", control->File("DEBIAN/postinst")}), "update-rc.d reuseportd defaults"));
  EXPECT_TRUE(absl::StrContains(Output({"cat", control->File("DEBIAN/postrm")}), "update-rc.d reuseportd remove"));
}

TEST_F(PackageFormatTest, RpmIsOneRhel6sRpmReads) {
  if (access("/usr/bin/rpm", X_OK) != 0) GTEST_SKIP() << "rpm is not installed (scripts/setup.sh installs it)";
  std::string info = Output({"rpm", "-qp", "--qf",
                             "%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{PAYLOADCOMPRESSOR} %{FILEDIGESTALGO}\\n",
                             release_.rpm});
  // xz: rpm 4.8 reads it (zstd, the default of newer rpm, it cannot). File
  // digest algorithm 8 is SHA-256 (rpm 4.6+); 1 would be MD5.
  EXPECT_EQ(info, absl::StrCat("reuseport ", release_.version, " 1 x86_64 xz 8\n"));

  // Files, with the configuration ones marked.
  std::set<std::string> files, dirs;
  for (const std::string& line :
       Lines(Output({"rpm", "-qp", "--qf", "[%{FILEMODES:perms} %{FILENAMES} %{FILEFLAGS:fflags}\\n]", release_.rpm}))) {
    std::vector<std::string> cols = absl::StrSplit(line, ' ', absl::SkipEmpty());
    ASSERT_GE(cols.size(), 2u) << line;
    std::string flags = cols.size() > 2 ? cols[2] : "";
    if (cols[0][0] == 'd') {
      dirs.insert(cols[1]);
    } else {
      files.insert(cols[1]);
    }
    if (cols[1] == "/etc/reuseport/policy.conf") {
      EXPECT_EQ(flags, "cn") << "%config(noreplace)";
    }
    if (cols[1] == "/etc/init.d/reuseportd") {
      EXPECT_EQ(flags, "c") << "%config";
    }
  }
  EXPECT_EQ(files, PackagedFiles());
  // Only its own directories: /etc/init.d is a symbolic link on RHEL (owned by
  // chkconfig), /usr/sbin, /usr/share/man, /usr/lib/systemd, /usr/lib/cmake
  // belong to others; claiming them would conflict at install.
  EXPECT_EQ(dirs, (std::set<std::string>{"/etc/reuseport", "/usr/include/reuseport", "/usr/lib/cmake/reuseport",
                                         "/usr/share/reuseport", "/usr/share/reuseport/upstart"}));

  // What it requires: rpmlib features rpm 4.8 has, a C library 2.12 has.
  const std::set<std::string> rpm48 = {
      "rpmlib(CompressedFileNames)", "rpmlib(PayloadFilesHavePrefix)", "rpmlib(FileDigests)",
      "rpmlib(PayloadIsXz)",         "rpmlib(PayloadIsBzip2)",         "rpmlib(PayloadIsLzma)",
      "rpmlib(VersionedDependencies)", "rpmlib(ScriptletInterpreterArgs)", "rpmlib(PartialHardlinkSets)"};
  for (const std::string& line : Lines(Output({"rpm", "-qp", "--requires", release_.rpm}))) {
    std::string name = line.substr(0, line.find(' '));
    if (absl::StartsWith(name, "rpmlib(")) {
      EXPECT_TRUE(rpm48.contains(name)) << line << " is unknown to rpm 4.8";
    }
    EXPECT_FALSE(absl::StrContains(line, "libstdc++") || absl::StrContains(line, "libgcc_s")) << line;
    size_t glibc = line.find("(GLIBC_");
    if (glibc != std::string::npos) {
      std::string version = line.substr(glibc + 1, line.find(')', glibc) - glibc - 1);
      EXPECT_TRUE(VersionAtMost(GlibcVersion(version), {2, 12})) << line;
    }
  }
  std::string requires_text = Output({"rpm", "-qp", "--requires", release_.rpm});
  EXPECT_FALSE(absl::StrContains(requires_text, "PayloadIsZstd"));

  // Scripts: register with chkconfig, stop and unregister on erase, restart
  // on upgrade; each parses.
  auto scriptlet = [&](const std::string& tag) { return Output({"rpm", "-qp", "--qf", "%{" + tag + "}", release_.rpm}); };
  std::string post = scriptlet("POSTIN"), preun = scriptlet("PREUN"), postun = scriptlet("POSTUN");
  EXPECT_TRUE(absl::StrContains(post, "/sbin/chkconfig --add reuseportd")) << post;
  EXPECT_TRUE(absl::StrContains(preun, "/etc/init.d/reuseportd stop")) << preun;
  EXPECT_TRUE(absl::StrContains(preun, "/sbin/chkconfig --del reuseportd")) << preun;
  EXPECT_TRUE(absl::StrContains(postun, "/etc/init.d/reuseportd try-restart")) << postun;
  for (const auto& [name, text] : {std::pair<std::string, std::string>{"%post", post}, {"%preun", preun}, {"%postun", postun}}) {
    ExpectShellParses(name, text);
  }
  // No build-id links (rpm 4.14+ would add /usr/lib/.build-id/...).
  EXPECT_FALSE(absl::StrContains(Output({"rpm", "-qlp", release_.rpm}), ".build-id"));
}

}  // namespace
}  // namespace reuseport::testing
