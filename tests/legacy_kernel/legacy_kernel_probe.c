/* legacy_kernel_probe: performs named kernel checks and prints one line per check,
 * "NAME=OK" or "NAME=<errno name>", e.g. "getrandom=ENOSYS", or "NAME=unavailable"
 * when this host cannot attempt the check at all (e.g. no i386 entry point).
 *
 * Usage: legacy_kernel_probe CHECK... ; CHECK is a name below or raw:N (system call N
 * with zero arguments; only for numbers where that is harmless).
 *
 * Every check goes through syscall(2) or the socket calls glibc maps one-to-one onto
 * system calls, so what is printed is what the kernel (or the seccomp filter in front
 * of it) answered, never a libc fallback. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <linux/kcmp.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* A check returns 0 on success or an errno value. */
typedef int (*check_fn)(void);

static int result_of(long ret) { return ret < 0 ? errno : 0; }

static int check_getrandom(void) {
  char buf[8];
  return result_of(syscall(SYS_getrandom, buf, sizeof buf, GRND_NONBLOCK));
}

static int check_memfd_create(void) {
  long fd = syscall(SYS_memfd_create, "legacy_kernel_probe", 0);
  if (fd >= 0) close((int)fd);
  return result_of(fd);
}

static int check_kcmp(void) {
  /* Compare fd 1 with itself: 0, or EPERM where ptrace is restricted. */
  return result_of(syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, 1, 1));
}

static int check_process_vm_readv(void) {
  char from[4] = "abc", to[4];
  struct iovec local = {to, sizeof to}, remote = {from, sizeof from};
  return result_of(syscall(SYS_process_vm_readv, getpid(), &local, 1, &remote, 1, 0));
}

static int check_io_uring_setup(void) {
  struct io_uring_params params;
  memset(&params, 0, sizeof params);
  long fd = syscall(SYS_io_uring_setup, 1, &params);
  if (fd >= 0) close((int)fd);
  return result_of(fd);
}

static int check_clone3(void) {
  /* A NULL argument block: EFAULT/EINVAL from a kernel that has clone3, never a child. */
  return result_of(syscall(SYS_clone3, NULL, 0));
}

/* A listening TCP socket on 127.0.0.1 with an ephemeral port, or -1 with errno set. */
static int loopback_listener(struct sockaddr_in *addr) {
  socklen_t len = sizeof *addr;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  memset(addr, 0, sizeof *addr);
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)addr, sizeof *addr) < 0 || listen(fd, 4) < 0 ||
      getsockname(fd, (struct sockaddr *)addr, &len) < 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

static int check_accept4(void) {
  struct sockaddr_in addr;
  int listener = loopback_listener(&addr), error = 0;
  if (listener < 0) return errno;
  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (client < 0 || connect(client, (struct sockaddr *)&addr, sizeof addr) < 0) {
    error = errno;
  } else {
    long fd = syscall(SYS_accept4, listener, NULL, NULL, SOCK_CLOEXEC);
    error = result_of(fd);
    if (fd >= 0) close((int)fd);
  }
  if (client >= 0) close(client);
  close(listener);
  return error;
}

/* sendmmsg then recvmmsg of one datagram over a socketpair; which failed is in *stage. */
static int mmsg_round_trip(const char **stage) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair) < 0) return errno;
  char out[] = "ping", in[8];
  struct iovec out_iov = {out, sizeof out}, in_iov = {in, sizeof in};
  struct mmsghdr sent = {.msg_hdr = {.msg_iov = &out_iov, .msg_iovlen = 1}};
  struct mmsghdr received = {.msg_hdr = {.msg_iov = &in_iov, .msg_iovlen = 1}};
  int error = 0;
  *stage = "sendmmsg";
  if (syscall(SYS_sendmmsg, pair[0], &sent, 1, 0) != 1) {
    error = errno;
  } else {
    *stage = "recvmmsg";
    if (syscall(SYS_recvmmsg, pair[1], &received, 1, 0, NULL) != 1) error = errno;
  }
  close(pair[0]);
  close(pair[1]);
  return error;
}

static int check_sendmmsg(void) {
  const char *stage = "";
  int error = mmsg_round_trip(&stage);
  return strcmp(stage, "sendmmsg") == 0 ? error : 0;
}

static int check_recvmmsg(void) {
  const char *stage = "";
  int error = mmsg_round_trip(&stage);
  return strcmp(stage, "recvmmsg") == 0 ? error : (error ? EIO : 0);
}

static int with_tcp_socket(int (*use)(int fd)) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  int error = use(fd);
  close(fd);
  return error;
}

static int set_int_option(int fd, int name) {
  int one = 1;
  return result_of(setsockopt(fd, SOL_SOCKET, name, &one, sizeof one));
}

static int get_int_option(int fd, int name) {
  int value = 0;
  socklen_t len = sizeof value;
  return result_of(getsockopt(fd, SOL_SOCKET, name, &value, &len));
}

static int set_reuseport(int fd) { return set_int_option(fd, SO_REUSEPORT); }
static int get_reuseport(int fd) { return get_int_option(fd, SO_REUSEPORT); }
static int get_incoming_cpu(int fd) { return get_int_option(fd, SO_INCOMING_CPU); }

static int set_incoming_cpu(int fd) {
  int cpu = 0;
  return result_of(setsockopt(fd, SOL_SOCKET, SO_INCOMING_CPU, &cpu, sizeof cpu));
}

/* The kernel reads level and optname as ints; set junk in the upper halves of the
 * registers to prove the filter compares only what the kernel reads. */
static int set_reuseport_high_bits(int fd) {
  int one = 1;
  uint64_t junk = UINT64_C(0x5a5a5a5a) << 32;
  return result_of(syscall(SYS_setsockopt, fd, junk | SOL_SOCKET, junk | SO_REUSEPORT, &one, sizeof one));
}

/* The kernel attaches the program to the socket's reuseport group, so the socket
 * needs SO_REUSEPORT first. */
static int attach_reuseport_cbpf(int fd) {
  set_reuseport(fd);
  struct sock_filter accept_first[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
  struct sock_fprog program = {1, accept_first};
  return result_of(setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &program, sizeof program));
}

static int ioctl_siocgskns(int fd) {
  long ns = ioctl(fd, SIOCGSKNS, 0);
  if (ns >= 0) close((int)ns);
  return result_of(ns);
}

static int check_setsockopt_reuseport(void) { return with_tcp_socket(set_reuseport); }
static int check_getsockopt_reuseport(void) { return with_tcp_socket(get_reuseport); }
static int check_setsockopt_reuseport_high_bits(void) { return with_tcp_socket(set_reuseport_high_bits); }
static int check_getsockopt_incoming_cpu(void) { return with_tcp_socket(get_incoming_cpu); }
static int check_setsockopt_incoming_cpu(void) { return with_tcp_socket(set_incoming_cpu); }
static int check_attach_reuseport_cbpf(void) { return with_tcp_socket(attach_reuseport_cbpf); }
static int check_ioctl_siocgskns(void) { return with_tcp_socket(ioctl_siocgskns); }

/* What a server does to share a port: SO_REUSEPORT (its result ignored, as portable
 * servers do), bind; twice. Reports the second bind: OK where the kernel shares ports,
 * EADDRINUSE where it does not. */
static int check_reuseport_second_bind(void) {
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int first = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (first < 0) return EIO;
  socklen_t len = sizeof addr;
  set_reuseport(first);
  if (bind(first, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(first, 4) < 0 ||
      getsockname(first, (struct sockaddr *)&addr, &len) < 0) {
    close(first);
    return EIO; /* not the answer under test */
  }
  int second = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  set_reuseport(second);
  int error = result_of(bind(second, (struct sockaddr *)&addr, sizeof addr));
  close(second);
  close(first);
  return error;
}

static int check_epoll_exclusive(void) {
  int epfd = epoll_create1(EPOLL_CLOEXEC), pipefd[2];
  if (epfd < 0 || pipe2(pipefd, O_CLOEXEC) < 0) return EIO;
  struct epoll_event event = {.events = EPOLLIN | EPOLLEXCLUSIVE};
  int error = result_of(epoll_ctl(epfd, EPOLL_CTL_ADD, pipefd[0], &event));
  close(pipefd[0]);
  close(pipefd[1]);
  close(epfd);
  return error;
}

/* A check's answer when the host cannot even attempt it (an entry point or
 * instruction it does not deliver): printed as "unavailable", which tests treat
 * as a reason to skip, never as a result. */
#define UNAVAILABLE (-1)

static sigjmp_buf fault_jump;
static volatile sig_atomic_t fault_signal;

static void on_fault(int sig) {
  fault_signal = sig;
  siglongjmp(fault_jump, 1);
}

/* getpid through the i386 entry point (int 0x80, i386 number 20) of a 64-bit process.
 * Some hosts (hypervisors that do not forward the vector, kernels booted with
 * ia32_emulation=0) answer `int $0x80` with SIGSEGV instead of a system call: that is
 * the host lacking the ABI, reported as UNAVAILABLE; any other crash still fails. */
static struct sigaction saved_fault_actions[3];
static const int kFaultSignals[3] = {SIGSEGV, SIGILL, SIGBUS};

static void catch_faults(int catch) {
  struct sigaction fault = {.sa_handler = on_fault};
  sigemptyset(&fault.sa_mask);
  for (int i = 0; i < 3; ++i) {
    if (catch) {
      sigaction(kFaultSignals[i], &fault, &saved_fault_actions[i]);
    } else {
      sigaction(kFaultSignals[i], &saved_fault_actions[i], NULL);
    }
  }
}

static int check_i386_getpid(void) {
#if defined(__x86_64__)
  catch_faults(1);
  if (sigsetjmp(fault_jump, 1) != 0) {
    catch_faults(0);
    fprintf(stderr, "legacy_kernel_probe: int $0x80 raised %s: no i386 entry point on this host\n",
            strsignal(fault_signal));
    return UNAVAILABLE;
  }
  long ret;
  /* The 64-bit kernel zeroes r8-r11 on return from int 0x80. */
  __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory", "r8", "r9", "r10", "r11");
  catch_faults(0);
  return ret < 0 ? (int)-ret : 0;
#else
  return ENOTSUP;
#endif
}

/* getpid through the x32 ABI: x86_64 number 39 with bit 0x40000000 set. */
static int check_x32_getpid(void) { return result_of(syscall(0x40000000L | 39)); }

static const struct {
  const char *name;
  check_fn run;
} kChecks[] = {
    {"getrandom", check_getrandom},
    {"memfd_create", check_memfd_create},
    {"kcmp", check_kcmp},
    {"process_vm_readv", check_process_vm_readv},
    {"io_uring_setup", check_io_uring_setup},
    {"clone3", check_clone3},
    {"accept4", check_accept4},
    {"sendmmsg", check_sendmmsg},
    {"recvmmsg", check_recvmmsg},
    {"setsockopt_reuseport", check_setsockopt_reuseport},
    {"getsockopt_reuseport", check_getsockopt_reuseport},
    {"setsockopt_reuseport_high_bits", check_setsockopt_reuseport_high_bits},
    {"reuseport_second_bind", check_reuseport_second_bind},
    {"getsockopt_incoming_cpu", check_getsockopt_incoming_cpu},
    {"setsockopt_incoming_cpu", check_setsockopt_incoming_cpu},
    {"attach_reuseport_cbpf", check_attach_reuseport_cbpf},
    {"ioctl_siocgskns", check_ioctl_siocgskns},
    {"epoll_exclusive", check_epoll_exclusive},
    {"i386_getpid", check_i386_getpid},
    {"x32_getpid", check_x32_getpid},
};

static void print_result(const char *name, int error) {
  const char *errno_name = error > 0 ? strerrorname_np(error) : NULL;
  if (error == UNAVAILABLE) {
    printf("%s=unavailable\n", name);
  } else if (error == 0) {
    printf("%s=OK\n", name);
  } else if (errno_name != NULL) {
    printf("%s=%s\n", name, errno_name);
  } else {
    printf("%s=errno%d\n", name, error);
  }
}

/* "raw:N": system call N with zero arguments. */
static int run_raw(const char *check) {
  const char *digits = check + strlen("raw:");
  char *end;
  long number = strtol(digits, &end, 10);
  if (*digits == '\0' || *end != '\0') return -1;
  print_result(check, result_of(syscall(number, 0, 0, 0, 0, 0, 0)));
  return 0;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; ++i) {
    if (strncmp(argv[i], "raw:", 4) == 0) {
      if (run_raw(argv[i]) != 0) {
        fprintf(stderr, "legacy_kernel_probe: bad raw check '%s'\n", argv[i]);
        return 2;
      }
      continue;
    }
    size_t k = 0;
    while (k < sizeof kChecks / sizeof kChecks[0] && strcmp(kChecks[k].name, argv[i]) != 0) ++k;
    if (k == sizeof kChecks / sizeof kChecks[0]) {
      fprintf(stderr, "legacy_kernel_probe: unknown check '%s'\n", argv[i]);
      return 2;
    }
    print_result(argv[i], kChecks[k].run());
  }
  return 0;
}
