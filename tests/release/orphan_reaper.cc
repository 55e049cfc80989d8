#include "orphan_reaper.h"

#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/time/clock.h"

namespace reuseport::testing {

namespace {

// From /proc/PID/stat: state, parent and session (after the command name,
// which may itself hold spaces and parentheses).
bool ReadStat(pid_t pid, char* state, pid_t* ppid, pid_t* session) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  size_t close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(line.substr(close + 1));
  pid_t pgrp = 0;
  return static_cast<bool>(rest >> *state >> *ppid >> pgrp >> *session);
}

}  // namespace

OrphanReaper::OrphanReaper() : thread_([this] { Run(); }) {}

OrphanReaper::~OrphanReaper() {
  stop_ = true;
  thread_.join();
}

void OrphanReaper::Run() {
  const pid_t self = getpid();
  const pid_t our_session = getsid(0);
  while (!stop_) {
    if (DIR* proc = opendir("/proc")) {
      while (struct dirent* e = readdir(proc)) {
        char* end = nullptr;
        long pid = strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end != '\0') continue;
        char state = 0;
        pid_t ppid = 0, session = 0;
        if (!ReadStat(static_cast<pid_t>(pid), &state, &ppid, &session)) continue;
        if (state == 'Z' && ppid == self && session != our_session) {
          if (waitpid(static_cast<pid_t>(pid), nullptr, WNOHANG) == pid) ++reaped_;
        }
      }
      closedir(proc);
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

}  // namespace reuseport::testing
