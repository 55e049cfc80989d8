#include "peer_identity.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

#ifndef SIOCGSKNS
#define SIOCGSKNS 0x894C
#endif
#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

namespace reuseport::broker {

absl::StatusOr<PeerCredentials> ReadPeerCredentials(int fd) {
  struct ucred cred {};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return absl::InternalError(absl::StrFormat("SO_PEERCRED: %s", strerror(errno)));
  }
  return PeerCredentials{cred.pid, cred.uid, cred.gid};
}

bool PeerIdentity::InGroup(gid_t gid) const {
  if (creds.gid == gid) return true;
  for (gid_t g : groups) {
    if (g == gid) return true;
  }
  return false;
}

namespace {

// The supplementary groups the kernel recorded at connect() (Linux 4.13+).
bool PeerGroupsFromSocket(int fd, std::vector<gid_t>* out) {
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 4; ++attempt) {
    socklen_t len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
      groups.resize(len / sizeof(gid_t));
      *out = std::move(groups);
      return true;
    }
    if (errno != ERANGE) return false;  // ENOPROTOOPT before 4.13
    groups.resize(len / sizeof(gid_t) + 16);
  }
  return false;
}

// The groups /proc shows for pid, if its effective uid and gid are still the
// peer's: a process that changed identity, or a pid reused by another, is
// not trusted with more than SO_PEERCRED says.
bool PeerGroupsFromProc(const PeerCredentials& creds, std::vector<gid_t>* out) {
  std::ifstream in(absl::StrFormat("/proc/%d/status", creds.pid));
  std::string line;
  bool uid_ok = false, gid_ok = false;
  std::vector<gid_t> groups;
  while (std::getline(in, line)) {
    absl::string_view v = line;
    unsigned real = 0, effective = 0;
    if (absl::ConsumePrefix(&v, "Uid:")) {
      uid_ok = sscanf(std::string(v).c_str(), "%u %u", &real, &effective) == 2 && effective == creds.uid;
    } else if (absl::ConsumePrefix(&v, "Gid:")) {
      gid_ok = sscanf(std::string(v).c_str(), "%u %u", &real, &effective) == 2 && effective == creds.gid;
    } else if (absl::ConsumePrefix(&v, "Groups:")) {
      for (absl::string_view g : absl::StrSplit(v, absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
        uint32_t id = 0;
        if (absl::SimpleAtoi(g, &id)) groups.push_back(id);
      }
    }
  }
  if (!uid_ok || !gid_ok) return false;
  *out = std::move(groups);
  return true;
}

}  // namespace

absl::StatusOr<PeerIdentity> ReadPeerIdentity(int fd) {
  absl::StatusOr<PeerCredentials> creds = ReadPeerCredentials(fd);
  if (!creds.ok()) return creds.status();
  PeerIdentity id;
  id.creds = *creds;
  if (!PeerGroupsFromSocket(fd, &id.groups)) PeerGroupsFromProc(id.creds, &id.groups);
  id.may_bind_privileged = HasCapabilityInOurNamespace(id.creds.pid, id.creds.uid, CAP_NET_BIND_SERVICE);
  return id;
}

std::string CommandName(pid_t pid) {
  std::ifstream in(absl::StrFormat("/proc/%d/comm", pid));
  std::string name;
  if (!std::getline(in, name) || name.empty()) return "?";
  return name;
}

namespace {

NamespaceId IdOf(const struct stat& st) { return NamespaceId{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)}; }

std::string ReadWhole(const std::string& path, bool* ok) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  *ok = static_cast<bool>(in) || in.eof();
  return text.str();
}

// Is pid in the broker's user namespace? Its uid_map, as the broker reads it,
// equals the broker's own only then: a namespace made by an unprivileged user
// maps a single uid, never the broker's whole range. (Comparing
// /proc/PID/ns/user would need ptrace access to other users' processes,
// which the broker gives up where it can.)
bool InOurUserNamespace(pid_t pid) {
  bool have_own = false, have_theirs = false;
  std::string own = ReadWhole("/proc/self/uid_map", &have_own);
  if (!have_own || own.empty()) return true;  // no user namespaces (before 3.5): there is one
  std::string theirs = ReadWhole(absl::StrFormat("/proc/%d/uid_map", pid), &have_theirs);
  return have_theirs && theirs == own;
}

}  // namespace

bool HasCapabilityInOurNamespace(pid_t pid, uid_t uid, int capability) {
  if (!InOurUserNamespace(pid)) return false;
  std::ifstream in(absl::StrFormat("/proc/%d/status", pid));
  std::string line;
  bool uid_matches = false;
  while (std::getline(in, line)) {
    absl::string_view v = line;
    if (absl::ConsumePrefix(&v, "Uid:")) {
      unsigned real = 0, effective = 0;
      std::string fields(v);
      uid_matches = sscanf(fields.c_str(), "%u %u", &real, &effective) == 2 && effective == uid;
      continue;
    }
    if (!absl::ConsumePrefix(&v, "CapEff:")) continue;
    v = absl::StripAsciiWhitespace(v);
    uint64_t caps = 0;
    if (!uid_matches || !absl::SimpleHexAtoi(v, &caps)) return false;
    return (caps >> capability) & 1;
  }
  return false;
}

bool UidMayBeUnmapped(uid_t uid) {
  // Read once: neither changes for a running process (uid_map is written once).
  static const uid_t overflow = [] {
    unsigned v = 65534;
    std::ifstream in("/proc/sys/kernel/overflowuid");
    if (!(in >> v)) v = 65534;
    return static_cast<uid_t>(v);
  }();
  static const bool maps_every_uid = [] {
    std::ifstream in("/proc/self/uid_map");
    if (!in) return true;  // no user namespaces (or before 3.5): one namespace, every uid real
    uint64_t inside = 0, outside = 0, count = 0, covered = 0;
    while (in >> inside >> outside >> count) covered += count;
    return covered >= 0xffffffffull;
  }();
  return !maps_every_uid && uid == overflow;
}

NamespaceId OwnNetworkNamespace() {
  struct stat st {};
  if (stat("/proc/self/ns/net", &st) == 0) return IdOf(st);
  return NamespaceId{};
}

namespace {

// Before 3.8 the inodes under /proc/PID/ns are per process, not per namespace.
bool NamespaceInodesAreIdentities() {
  static const bool stable = [] {
    struct utsname u {};
    if (uname(&u) != 0) return true;
    int major = 0, minor = 0;
    if (sscanf(u.release, "%d.%d", &major, &minor) != 2) return true;
    return major > 3 || (major == 3 && minor >= 8);
  }();
  return stable;
}

}  // namespace

bool SocketNamespacesNeedProc() {
  static const bool need = [] {
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return NamespaceInodesAreIdentities();
    int ns = ioctl(fd, SIOCGSKNS);
    close(fd);
    if (ns >= 0) {
      close(ns);
      return false;
    }
    return NamespaceInodesAreIdentities();
  }();
  return need;
}

std::optional<NamespaceId> SocketNetworkNamespace(int socket_fd, pid_t peer_pid) {
  int ns = ioctl(socket_fd, SIOCGSKNS);
  if (ns >= 0) {
    struct stat st {};
    bool ok = fstat(ns, &st) == 0;
    close(ns);
    if (ok) return IdOf(st);
  }
  struct stat st {};
  if (!NamespaceInodesAreIdentities()) return OwnNetworkNamespace();
  if (peer_pid > 0 && stat(absl::StrFormat("/proc/%d/ns/net", peer_pid).c_str(), &st) == 0) return IdOf(st);
  return std::nullopt;
}

}  // namespace reuseport::broker
