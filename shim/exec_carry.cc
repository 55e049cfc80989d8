#include "exec_carry.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "member_table.h"
#include "process_life.h"
#include "raw_log.h"
#include "real_calls.h"
#include "reuseport/address_codec.h"

namespace reuseport::shim {

namespace {

constexpr char kCarryPrefix[] = "REUSEPORT_CARRY=";
constexpr size_t kCarryPrefixLen = sizeof(kCarryPrefix) - 1;
constexpr int kMaxCarried = 64;

// New image: what came with the exec and is not yet a member (channel -1:
// taken). Touched at start (one thread) and under TableLock after.
CarriedMember g_carried[kMaxCarried];
int g_carried_count = 0;

// Old image: the fds PrepareCarry took FD_CLOEXEC off, for UndoCarry.
int g_opened[kMaxCarried * 3];
int g_opened_count = 0;

// Appending to a fixed buffer; `ok` turns false once something did not fit.
struct Writer {
  char* at;
  char* end;
  bool ok = true;
  void Char(char c) {
    if (at + 1 >= end) {
      ok = false;
      return;
    }
    *at++ = c;
    *at = '\0';
  }
  void Uint(unsigned long long v) {
    char digits[24];
    int n = 0;
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n > 0) Char(digits[--n]);
  }
  void Int(long long v) {
    if (v < 0) {
      Char('-');
      Uint(static_cast<unsigned long long>(-v));
    } else {
      Uint(static_cast<unsigned long long>(v));
    }
  }
  void Hex(const void* bytes, size_t size) {
    static const char kDigits[] = "0123456789abcdef";
    const uint8_t* b = static_cast<const uint8_t*>(bytes);
    for (size_t i = 0; i < size; ++i) {
      Char(kDigits[b[i] >> 4]);
      Char(kDigits[b[i] & 15]);
    }
  }
};

// Reading one entry back; `ok` turns false at anything unexpected.
struct Reader {
  const char* at;
  bool ok = true;
  long long Int() {
    bool negative = *at == '-';
    if (negative) ++at;
    if (*at < '0' || *at > '9') ok = false;
    long long v = 0;
    while (*at >= '0' && *at <= '9' && v < (1ll << 60)) v = v * 10 + (*at++ - '0');
    return negative ? -v : v;
  }
  void Expect(char c) {
    if (*at == c) {
      ++at;
    } else {
      ok = false;
    }
  }
  void Hex(void* bytes, size_t size) {
    uint8_t* b = static_cast<uint8_t*>(bytes);
    for (size_t i = 0; i < size; ++i) {
      int hi = Nibble(*at), lo = hi < 0 ? -1 : Nibble(at[1]);
      if (hi < 0 || lo < 0) {
        ok = false;
        return;
      }
      b[i] = static_cast<uint8_t>(hi << 4 | lo);
      at += 2;
    }
  }
  static int Nibble(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  }
};

bool PassesOn(int fd) {
  int flags = Real().fcntl(fd, F_GETFD);
  return flags >= 0 && !(flags & FD_CLOEXEC);
}

bool OpenAcrossExec(int fd) {
  if (fd < 0) return true;
  int flags = Real().fcntl(fd, F_GETFD);
  if (flags < 0) return false;
  if (!(flags & FD_CLOEXEC)) return true;
  if (Real().fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) != 0) return false;
  if (g_opened_count < static_cast<int>(sizeof(g_opened) / sizeof(g_opened[0]))) g_opened[g_opened_count++] = fd;
  return true;
}

void WriteEntry(Writer* w, const CarriedMember& c) {
  w->Int(c.channel);
  w->Char(',');
  w->Int(c.peer);
  w->Char(',');
  w->Int(c.group);
  w->Char(',');
  w->Int(c.ring);
  w->Char(',');
  w->Uint(c.protocol);
  w->Char(',');
  w->Uint(c.v6only);
  w->Char(',');
  w->Uint(c.listening);
  w->Char(',');
  w->Int(c.backlog);
  w->Char(',');
  w->Uint(c.member_key);
  w->Char(',');
  w->Hex(&c.bound, sizeof(c.bound));
  w->Char(';');
}

// Appends c if it fits whole and its ends can be kept open.
void Carry(Writer* w, const CarriedMember& c, int* carried) {
  char* mark = w->at;
  WriteEntry(w, c);
  if (!w->ok || !OpenAcrossExec(c.peer) || !OpenAcrossExec(c.group) || !OpenAcrossExec(c.ring)) {
    w->at = mark;
    *mark = '\0';
    w->ok = true;
    return;
  }
  ++*carried;
}

int SocketInt(int fd, int option) {
  int value = -1;
  socklen_t len = sizeof(value);
  if (Real().getsockopt(fd, SOL_SOCKET, option, &value, &len) != 0) return -1;
  return value;
}

bool IsUnixSeqpacket(int fd) { return SocketInt(fd, SO_DOMAIN) == AF_UNIX && SocketInt(fd, SO_TYPE) == SOCK_SEQPACKET; }

// The fds say what the variable says they are: it may be stale (a program
// that copied its environment into a child of its own).
bool Plausible(const CarriedMember& c) {
  int fds[4] = {c.channel, c.peer, c.group, c.ring};
  for (int i = 0; i < 4; ++i) {
    if (i == 3 && fds[i] == -1) continue;
    if (fds[i] < 3 || fds[i] >= kMaxTrackedFd) return false;
    for (int j = 0; j < i; ++j) {
      if (fds[j] == fds[i]) return false;
    }
  }
  if (c.protocol != RP_PROTO_TCP && c.protocol != RP_PROTO_UDP) return false;
  if (c.bound.family != AF_INET && c.bound.family != AF_INET6) return false;
  if (!IsUnixSeqpacket(c.channel) || !IsUnixSeqpacket(c.peer)) return false;
  int domain = SocketInt(c.group, SO_DOMAIN);
  if ((domain != AF_INET && domain != AF_INET6) ||
      SocketInt(c.group, SO_TYPE) != (c.protocol == RP_PROTO_TCP ? SOCK_STREAM : SOCK_DGRAM)) {
    return false;
  }
  struct stat st {};
  return c.ring < 0 || (fstat(c.ring, &st) == 0 && S_ISREG(st.st_mode));
}

CarriedMember* Find(int channel) {
  if (channel < 0) return nullptr;
  for (int i = 0; i < g_carried_count; ++i) {
    if (g_carried[i].channel == channel) return &g_carried[i];
  }
  return nullptr;
}

}  // namespace

bool IsCarryEntry(const char* entry) { return strncmp(entry, kCarryPrefix, kCarryPrefixLen) == 0; }

bool PrepareCarry(char* entry, size_t cap) {
  g_opened_count = 0;
  // A vfork child shares our memory but not our fd table: its table lock may
  // be held by a thread of the parent. Such children carry nothing.
  if (cap <= kCarryPrefixLen + 1 || InVforkChild()) return false;
  memcpy(entry, kCarryPrefix, kCarryPrefixLen + 1);
  Writer w{entry + kCarryPrefixLen, entry + cap};
  int carried = 0;
  TableLock lock;
  ForEachMember([&](Member* m) {
    bool settled = m->state == MemberState::kListening || m->state == MemberState::kDatagram;
    if (!settled || m->channel_peer_fd < 0 || m->group_fd < 0) return;
    int channel = FindProgramFdPassingOn(m);
    if (channel < 0) return;
    CarriedMember c{};
    c.channel = channel;
    c.peer = m->channel_peer_fd;
    c.group = m->group_fd;
    c.ring = m->ring_fd;
    c.protocol = m->protocol;
    c.v6only = m->v6only;
    c.listening = 1;
    c.backlog = m->backlog;
    c.member_key = m->member_id;
    rp_address_from_sockaddr(reinterpret_cast<const struct sockaddr*>(&m->bound), m->bound_len, &c.bound);
    Carry(&w, c, &carried);
  });
  // What this image was carried itself and has not made members of yet (no
  // broker since it started) goes on too.
  for (int i = 0; i < g_carried_count; ++i) {
    if (g_carried[i].channel >= 0 && PassesOn(g_carried[i].channel)) Carry(&w, g_carried[i], &carried);
  }
  if (carried == 0) {
    UndoCarry();
    return false;
  }
  return true;
}

void UndoCarry() {
  for (int i = 0; i < g_opened_count; ++i) {
    int flags = Real().fcntl(g_opened[i], F_GETFD);
    if (flags >= 0) Real().fcntl(g_opened[i], F_SETFD, flags | FD_CLOEXEC);
  }
  g_opened_count = 0;
}

void LoadCarried() {
  const char* value = getenv("REUSEPORT_CARRY");
  if (value == nullptr) return;
  Reader r{value};
  int ignored = 0;
  while (*r.at != '\0' && r.ok) {
    CarriedMember c{};
    c.channel = static_cast<int>(r.Int());
    r.Expect(',');
    c.peer = static_cast<int>(r.Int());
    r.Expect(',');
    c.group = static_cast<int>(r.Int());
    r.Expect(',');
    c.ring = static_cast<int>(r.Int());
    r.Expect(',');
    c.protocol = static_cast<uint8_t>(r.Int());
    r.Expect(',');
    c.v6only = static_cast<uint8_t>(r.Int());
    r.Expect(',');
    c.listening = static_cast<uint8_t>(r.Int());
    r.Expect(',');
    c.backlog = static_cast<int>(r.Int());
    r.Expect(',');
    c.member_key = static_cast<uint64_t>(r.Int());
    r.Expect(',');
    r.Hex(&c.bound, sizeof(c.bound));
    r.Expect(';');
    if (!r.ok) break;
    if (g_carried_count >= kMaxCarried || Find(c.channel) != nullptr || !Plausible(c)) {
      ++ignored;
      continue;
    }
    // Private again: shielded from the program, closed at the next exec
    // unless carried on.
    int ends[3] = {c.peer, c.group, c.ring};
    for (int fd : ends) {
      if (fd < 0) continue;
      MarkUnownedPrivateFd(fd);
      int flags = Real().fcntl(fd, F_GETFD);
      if (flags >= 0) Real().fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }
    g_carried[g_carried_count++] = c;
  }
  if (!r.ok || ignored > 0) {
    RawLog(kLogWarn).Str("REUSEPORT_CARRY does not match this process's fds; ignored ").Int(ignored + (r.ok ? 0 : 1))
        .Str(" entr").Str(ignored + (r.ok ? 0 : 1) == 1 ? "y" : "ies").Emit();
  }
  unsetenv("REUSEPORT_CARRY");
}

bool IsCarriedEnd(int fd) {
  for (int i = 0; i < g_carried_count; ++i) {
    const CarriedMember& c = g_carried[i];
    if (c.channel >= 0 && (c.peer == fd || c.group == fd || (c.ring >= 0 && c.ring == fd))) return true;
  }
  return false;
}

bool TakeCarried(int channel, CarriedMember* out) {
  CarriedMember* c = Find(channel);
  if (c == nullptr) return false;
  *out = *c;
  int ends[3] = {c->peer, c->group, c->ring};
  for (int fd : ends) {
    if (fd >= 0) UnmarkPrivateFd(fd);
  }
  c->channel = -1;
  return true;
}

void CloseCarried(int channel) {
  CarriedMember c;
  if (!TakeCarried(channel, &c)) return;
  int ends[3] = {c.peer, c.group, c.ring};
  for (int fd : ends) {
    if (fd >= 0) Real().close(fd);
  }
}

void CarriedEndMoved(int old_fd, int new_fd) {
  for (int i = 0; i < g_carried_count; ++i) {
    CarriedMember& c = g_carried[i];
    if (c.channel < 0) continue;
    int* ends[3] = {&c.peer, &c.group, &c.ring};
    for (int* fd : ends) {
      if (*fd == old_fd) *fd = new_fd;
    }
  }
}

}  // namespace reuseport::shim
