#include "uname_supervisor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "absl/strings/str_cat.h"

namespace reuseport::legacy_kernel {
namespace {

// Closes every fd but `keep`, and puts /dev/null on 0, 1 and 2: the
// supervisor must hold none of the command's pipes open (a reader waiting for
// end of file on the command's output would wait for it too).
void CloseAllBut(int keep) {
  std::vector<int> fds;
  if (DIR* dir = opendir("/proc/self/fd")) {
    const int own = dirfd(dir);
    while (struct dirent* entry = readdir(dir)) {
      const int fd = atoi(entry->d_name);
      if (entry->d_name[0] != '.' && fd != keep && fd != own) fds.push_back(fd);
    }
    closedir(dir);
  } else {
    for (int fd = 0; fd < 1024; ++fd) {
      if (fd != keep) fds.push_back(fd);
    }
  }
  for (int fd : fds) close(fd);
  const int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    for (int fd = 0; fd < 3; ++fd) {
      if (fd != null) dup2(null, fd);
    }
    if (null > 2) close(null);
  }
}

int ReceiveListener(int socket) {
  char data = 0;
  struct iovec iov = {&data, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n <= 0 || (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0) return -1;
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (c == nullptr || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
      c->cmsg_len != CMSG_LEN(sizeof(int))) {
    return -1;
  }
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof(fd));
  return fd;
}

// Answers one notified call: the pretended utsname written into the caller's
// buffer, or the real call where that cannot be done.
void Answer(int listener, const struct seccomp_notif& request, struct seccomp_notif_resp* response,
            const std::string& release) {
  response->id = request.id;
  response->val = 0;
  response->error = 0;
  response->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;  // unless answered below
  if (request.data.nr != seccomp_syscall_resolve_name("uname")) return;

  struct utsname names;
  if (uname(&names) != 0) return;
  memset(names.release, 0, sizeof(names.release));
  snprintf(names.release, sizeof(names.release), "%s", release.c_str());

  // seccomp_unotify(2): open the memory first, then check that the request is
  // still live, so that the pid cannot have been reused by another process.
  const std::string path = absl::StrCat("/proc/", request.pid, "/mem");
  const int mem = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (mem < 0) return;  // not ours to write (not dumpable, Yama): the real call
  if (seccomp_notify_id_valid(listener, request.id) != 0) {
    close(mem);
    return;  // the caller is gone; the response will be refused anyway
  }
  const ssize_t written = pwrite(mem, &names, sizeof(names), static_cast<off_t>(request.data.args[0]));
  close(mem);
  response->flags = 0;
  if (written != static_cast<ssize_t>(sizeof(names))) {
    response->error = -EFAULT;  // what the kernel's copy_to_user failure gives
  }
}

[[noreturn]] void Supervise(int socket, const std::string& release) {
  setsid();  // out of the command's session and process group
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU}) signal(sig, SIG_IGN);
  prctl(PR_SET_NAME, "reuseport-uname");
  if (chdir("/") != 0) {
    // Nothing depends on the directory; only a mount must not be held busy.
  }
  CloseAllBut(socket);
  const int listener = ReceiveListener(socket);
  close(socket);
  if (listener < 0) _exit(0);

  struct seccomp_notif* request = nullptr;
  struct seccomp_notif_resp* response = nullptr;
  if (seccomp_notify_alloc(&request, &response) != 0) _exit(1);
  for (;;) {
    struct pollfd p = {listener, POLLIN, 0};
    if (poll(&p, 1, -1) < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    if ((p.revents & POLLIN) == 0) _exit(0);  // POLLHUP: nobody uses the filter any more
    // The kernel refuses a buffer that is not all zeros.
    memset(request, 0, sizeof(*request));
    if (seccomp_notify_receive(listener, request) != 0) continue;  // e.g. the caller was killed
    memset(response, 0, sizeof(*response));
    Answer(listener, *request, response, release);
    seccomp_notify_respond(listener, response);  // ENOENT: the caller is gone
  }
}

}  // namespace

bool CanSuperviseUname(const KernelVersion& running) { return running >= KernelVersion{5, 8}; }

std::string PretendedRelease(const KernelVersion& kernel) {
  return absl::StrCat(kernel.major, ".", kernel.minor, ".", kernel.patch);
}

absl::StatusOr<int> StartUnameSupervisor(const std::string& release) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    return absl::ErrnoToStatus(errno, "socketpair for the uname supervisor");
  }
  const pid_t middle = fork();
  if (middle < 0) {
    const int error = errno;
    close(pair[0]);
    close(pair[1]);
    return absl::ErrnoToStatus(error, "fork of the uname supervisor");
  }
  if (middle == 0) {
    // The middle process exits at once, so the supervisor is handed to init
    // (or the nearest subreaper) instead of becoming the command's child.
    close(pair[0]);
    const pid_t supervisor = fork();
    if (supervisor == 0) Supervise(pair[1], release);
    _exit(supervisor < 0 ? 1 : 0);
  }
  close(pair[1]);
  int status = 0;
  while (waitpid(middle, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    close(pair[0]);
    return absl::InternalError("the uname supervisor could not be started");
  }
  return pair[0];
}

absl::Status HandOverUnameListener(int socket, int listener) {
  char data = 'L';
  struct iovec iov = {&data, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &listener, sizeof(listener));
  ssize_t n;
  do {
    n = sendmsg(socket, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  const int error = errno;
  close(listener);
  close(socket);
  if (n != 1) return absl::ErrnoToStatus(error, "handing the uname listener to its supervisor");
  return absl::OkStatus();
}

}  // namespace reuseport::legacy_kernel
