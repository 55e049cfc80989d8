#include "facility_rules.h"

#include <errno.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/socket.h>

namespace reuseport::legacy_kernel {
namespace {

// The kernel reads `level`, `optname` (int) and the ioctl `cmd` (unsigned int) from the
// low 32 bits of 64-bit registers and ignores the rest. Comparing all 64 bits would let
// a caller slip past the rule by setting high bits, so every match masks to 32.
constexpr uint64_t kLow32 = 0xffffffffu;

constexpr ArgumentMatch SocketLevel() { return {1, kLow32, SOL_SOCKET}; }
constexpr ArgumentMatch OptionName(int name) { return {2, kLow32, static_cast<uint64_t>(name)}; }

// Versions: socket(7) and epoll_ctl(2) of man-pages 6.03; SIOCGSKNS is not in man-pages
// and came with "net: add an ioctl to get a socket network namespace" (Linux 4.9).
// Old answers, from the Linux 3.0 sources: sock_setsockopt() and sock_getsockopt() end
// in "default: -ENOPROTOOPT"; an unknown socket ioctl falls through inet_ioctl() and
// sock_do_ioctl() to dev_ioctl(), whose default case is "return -ENOTTY".
constexpr FacilityRule kRules[] = {
    {"SO_REUSEPORT", "setsockopt", {3, 9}, ENOPROTOOPT,
     {SocketLevel(), OptionName(SO_REUSEPORT)}, 2, true,
     "setsockopt(SOL_SOCKET, SO_REUSEPORT): unknown option, ENOPROTOOPT"},
    {"SO_REUSEPORT", "getsockopt", {3, 9}, ENOPROTOOPT,
     {SocketLevel(), OptionName(SO_REUSEPORT)}, 2, true,
     "getsockopt(SOL_SOCKET, SO_REUSEPORT): unknown option, ENOPROTOOPT"},
    // socket(7): "gettable since Linux 3.19, settable since Linux 4.4".
    {"SO_INCOMING_CPU", "getsockopt", {3, 19}, ENOPROTOOPT,
     {SocketLevel(), OptionName(SO_INCOMING_CPU)}, 2, true,
     "getsockopt(SOL_SOCKET, SO_INCOMING_CPU): unknown option, ENOPROTOOPT"},
    {"SO_INCOMING_CPU", "setsockopt", {4, 4}, ENOPROTOOPT,
     {SocketLevel(), OptionName(SO_INCOMING_CPU)}, 2, true,
     "setsockopt(SOL_SOCKET, SO_INCOMING_CPU): unknown option, ENOPROTOOPT"},
    {"SO_ATTACH_REUSEPORT_CBPF", "setsockopt", {4, 5}, ENOPROTOOPT,
     {SocketLevel(), OptionName(SO_ATTACH_REUSEPORT_CBPF)}, 2, true,
     "setsockopt(SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF): unknown option, ENOPROTOOPT"},
    {"SO_ATTACH_REUSEPORT_EBPF", "setsockopt", {4, 5}, ENOPROTOOPT,
     {SocketLevel(), OptionName(SO_ATTACH_REUSEPORT_EBPF)}, 2, true,
     "setsockopt(SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF): unknown option, ENOPROTOOPT"},
    // Matched on any fd: seccomp cannot tell a socket from a file, and an unknown ioctl
    // gets ENOTTY from both. (A 3.x socket first copied a struct ifreq from the third
    // argument, so a bad pointer there gave EFAULT; callers treat both as "unsupported".)
    {"SIOCGSKNS", "ioctl", {4, 9}, ENOTTY,
     {{1, kLow32, SIOCGSKNS}}, 1, true,
     "ioctl(SIOCGSKNS): unknown socket ioctl, ENOTTY"},
    // prctl(2): PR_SET_NO_NEW_PRIVS and SECCOMP_MODE_FILTER both arrived in Linux 3.5;
    // prctl_set_seccomp() and the prctl switch answered EINVAL for what they did not know.
    {"PR_SET_NO_NEW_PRIVS", "prctl", {3, 5}, EINVAL,
     {{0, kLow32, 38 /* PR_SET_NO_NEW_PRIVS */}}, 1, true,
     "prctl(PR_SET_NO_NEW_PRIVS): unknown option, EINVAL"},
    {"SECCOMP_MODE_FILTER", "prctl", {3, 5}, EINVAL,
     {{0, kLow32, 22 /* PR_SET_SECCOMP */}, {1, kLow32, 2 /* SECCOMP_MODE_FILTER */}}, 2, true,
     "prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER): unknown mode, EINVAL"},
    // The flag travels inside struct epoll_event, behind a pointer seccomp cannot read.
    // Nothing is lost by not filtering: before 4.5 epoll_ctl() did not check event bits,
    // so a program asking for EPOLLEXCLUSIVE got success and ordinary wake-ups.
    {"EPOLLEXCLUSIVE", "epoll_ctl", {4, 5}, 0,
     {}, 0, false,
     "epoll_ctl(EPOLLEXCLUSIVE): bit ignored, call succeeds (not filtered: behind a pointer)"},
};

}  // namespace

std::span<const FacilityRule> FacilityRules() { return kRules; }

}  // namespace reuseport::legacy_kernel
