#include "program_exec.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "exec_carry.h"
#include "exported_hooks.h"
#include "member_table.h"
#include "process_life.h"
#include "raw_log.h"
#include "real_calls.h"
#include "settings.h"

namespace reuseport::shim {

namespace {

// The exec family is resolved here rather than in real_calls: only these
// hooks call them, and they run once per process image.
struct RealExec {
  int (*execve)(const char*, char* const[], char* const[]);
  int (*execvpe)(const char*, char* const[], char* const[]);
  int (*fexecve)(int, char* const[], char* const[]);
};
RealExec g_exec;
pthread_once_t g_exec_once = PTHREAD_ONCE_INIT;

template <typename Fn>
void ResolveExec(Fn*& slot, const char* name, void* self) {
  void* fn = dlsym(RTLD_NEXT, name);
  if (fn == nullptr || fn == self) {
    RawLog(kLogError).Str("cannot resolve ").Str(name).Str(fn ? ": RTLD_NEXT returned the shim's own hook" : ": not found").Emit();
    abort();
  }
  slot = reinterpret_cast<Fn*>(fn);
}

void ResolveAllExec() {
  ResolveExec(g_exec.execve, "execve", reinterpret_cast<void*>(&::execve));
  ResolveExec(g_exec.execvpe, "execvpe", reinterpret_cast<void*>(&::execvpe));
  ResolveExec(g_exec.fexecve, "fexecve", reinterpret_cast<void*>(&::fexecve));
}

const RealExec& Exec() {
  pthread_once(&g_exec_once, ResolveAllExec);
  return g_exec;
}

// The variables the shim started with, as "NAME=value", and its own path.
constexpr const char* kOwnVariables[] = {"REUSEPORT_SOCKET", "REUSEPORT_MODE", "REUSEPORT_PORTS", "REUSEPORT_LOG"};
constexpr int kOwnCount = sizeof(kOwnVariables) / sizeof(kOwnVariables[0]);
char g_own[kOwnCount][512];
char g_shim_path[1024];
constexpr char kPreload[] = "LD_PRELOAD=";
constexpr size_t kPreloadLen = sizeof(kPreload) - 1;
// Environments longer than this are built in an anonymous mapping, not on the stack.
constexpr size_t kStackEntries = 512;

bool HasPrefix(const char* s, const char* name, size_t name_len) {
  return strncmp(s, name, name_len) == 0 && s[name_len] == '=';
}

// True if the LD_PRELOAD list (':' or ' ' separated) names the shim.
bool PreloadsShim(const char* list) {
  size_t want = strlen(g_shim_path);
  for (const char* p = list; *p != '\0';) {
    while (*p == ':' || *p == ' ') ++p;
    const char* end = p;
    while (*end != '\0' && *end != ':' && *end != ' ') ++end;
    if (static_cast<size_t>(end - p) == want && memcmp(p, g_shim_path, want) == 0) return true;
    p = end;
  }
  return false;
}

// Does any member fd (or inherited channel not yet used) stay open in the new image?
bool MemberSurvivesExec() {
  if (!ShimEngaged()) return false;
  return ProgramFdSurvivesExec() || InheritedChannelSurvivesExec();
}

// Fills `out` with envp plus what the shim needs (and `carry`, if not null,
// in place of any REUSEPORT_CARRY envp has); returns the entries used
// (without the terminating null), or -1 if `cap` is too small. `preload` holds
// a rewritten LD_PRELOAD entry when one is needed.
int AddShimVariables(char* const envp[], char** out, size_t cap, char* preload, size_t preload_cap, char* carry) {
  size_t n = 0;
  bool have[kOwnCount] = {};
  bool have_preload = false;
  for (size_t i = 0; envp != nullptr && envp[i] != nullptr; ++i) {
    if (n + 1 >= cap) return -1;
    char* entry = envp[i];
    if (IsCarryEntry(entry)) continue;  // this image's own, not the next one's
    if (strncmp(entry, kPreload, kPreloadLen) == 0 && !have_preload) {
      have_preload = true;
      const char* list = entry + kPreloadLen;
      if (!PreloadsShim(list)) {
        size_t list_len = strlen(list), path_len = strlen(g_shim_path);
        if (kPreloadLen + list_len + 1 + path_len + 1 > preload_cap) return -1;
        memcpy(preload, kPreload, kPreloadLen);
        memcpy(preload + kPreloadLen, list, list_len);
        size_t at = kPreloadLen + list_len;
        if (list_len > 0) preload[at++] = ':';
        memcpy(preload + at, g_shim_path, path_len + 1);
        entry = preload;
      }
    }
    for (int v = 0; v < kOwnCount; ++v) {
      if (HasPrefix(entry, kOwnVariables[v], strlen(kOwnVariables[v]))) have[v] = true;
    }
    out[n++] = entry;
  }
  if (n + kOwnCount + 3 > cap) return -1;
  if (!have_preload) {
    size_t path_len = strlen(g_shim_path);
    if (kPreloadLen + path_len + 1 > preload_cap) return -1;
    memcpy(preload, kPreload, kPreloadLen);
    memcpy(preload + kPreloadLen, g_shim_path, path_len + 1);
    out[n++] = preload;
  }
  for (int v = 0; v < kOwnCount; ++v) {
    if (!have[v] && g_own[v][0] != '\0') out[n++] = g_own[v];
  }
  if (carry != nullptr) out[n++] = carry;
  out[n] = nullptr;
  return static_cast<int>(n);
}

size_t CountEntries(char* const envp[]) {
  size_t n = 0;
  while (envp != nullptr && envp[n] != nullptr) ++n;
  return n;
}

// Calls `run` with the environment the new image should get.
template <typename Run>
int WithShimEnvironment(char* const envp[], Run run) {
  if (g_shim_path[0] == '\0' || GetSettings().mode == Mode::kOff || !MemberSurvivesExec()) return run(envp);
  size_t cap = CountEntries(envp) + kOwnCount + 3;
  char preload[8192];
  char carry[8192];
  char* stack_list[kStackEntries];
  char** list = stack_list;
  void* mapped = MAP_FAILED;
  size_t mapped_size = cap * sizeof(char*);
  if (cap > kStackEntries) {
    mapped = mmap(nullptr, mapped_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) return run(envp);
    list = static_cast<char**>(mapped);
  }
  int r;
  bool carrying = PrepareCarry(carry, sizeof(carry));
  if (AddShimVariables(envp, list, cap, preload, sizeof(preload), carrying ? carry : nullptr) < 0) {
    static int warned;
    if (FirstTime(&warned)) {
      RawLog(kLogWarn).Str("exec: LD_PRELOAD too long to add the shim; inherited listeners will not work in the new program").Emit();
    }
    if (carrying) UndoCarry();
    carrying = false;
    r = run(envp);
  } else {
    static int told;
    if (FirstTime(&told)) RawLog(kLogDebug).Str("exec: listeners are inherited; the new image keeps the shim").Emit();
    r = run(list);
  }
  int err = errno;
  if (carrying) UndoCarry();  // still here: the exec failed
  if (mapped != MAP_FAILED) munmap(mapped, mapped_size);
  errno = err;
  return r;
}

}  // namespace

void CaptureExecEnvironment() {
  for (int v = 0; v < kOwnCount; ++v) {
    const char* value = getenv(kOwnVariables[v]);
    size_t name_len = strlen(kOwnVariables[v]);
    if (value == nullptr || name_len + 1 + strlen(value) + 1 > sizeof(g_own[v])) continue;
    memcpy(g_own[v], kOwnVariables[v], name_len);
    g_own[v][name_len] = '=';
    strcpy(g_own[v] + name_len + 1, value);
  }
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&CaptureExecEnvironment), &info) != 0 && info.dli_fname != nullptr &&
      info.dli_fname[0] == '/' && strlen(info.dli_fname) < sizeof(g_shim_path)) {
    strcpy(g_shim_path, info.dli_fname);
  }
}

int Execve(const char* path, char* const argv[], char* const envp[]) {
  return WithShimEnvironment(envp, [&](char* const* env) { return Exec().execve(path, argv, env); });
}

int Execvpe(const char* file, char* const argv[], char* const envp[]) {
  return WithShimEnvironment(envp, [&](char* const* env) { return Exec().execvpe(file, argv, env); });
}

int Fexecve(int fd, char* const argv[], char* const envp[]) {
  return WithShimEnvironment(envp, [&](char* const* env) { return Exec().fexecve(fd, argv, env); });
}

}  // namespace reuseport::shim
