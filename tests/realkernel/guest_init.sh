#!/bin/busybox sh
# /init of the initramfs that scripts/qemu-test.sh boots: sets up a minimal
# system on whatever kernel it finds, runs the check suite and powers off.
#
# Results go to the second serial port (/dev/ttyS1, a file on the host), one
# line each, and nothing else does:
#   INFO <fact>                  what this kernel has (release, IPv6, tmpfs...)
#   PASS|FAIL|SKIP <name>[: why] one per check
#   DONE                         the suite ran to its end
# Everything else (test output, kernel messages) goes to the console
# (/dev/ttyS0), which the harness keeps as console.log.
#
# The harness writes what to run: /etc/reuseport-qemu.checks has lines
# "<test binary> <gtest filter>"; /etc/reuseport-qemu.conf sets
#   SEMANTICS      "<run_semantics.sh> <args...>", or empty
#   RUNNER         reuseport-legacy-kernel, for the pass-through check
#   DRIVER         reuseport_semantics, for the bind matrix
#   CHECK_TIMEOUT  seconds for one test binary or the semantics run
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp /run
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
[ -e /dev/null ] || mknod /dev/null c 1 3
[ -e /dev/zero ] || mknod /dev/zero c 1 5
[ -e /dev/urandom ] || mknod /dev/urandom c 1 9
[ -e /dev/ttyS1 ] || mknod /dev/ttyS1 c 4 65
chmod 666 /dev/null /dev/zero /dev/urandom
tmpfs=no
if mount -t tmpfs -o mode=1777 tmpfs /tmp 2>/dev/null; then tmpfs=yes; fi
chmod 1777 /tmp
ip link set lo up

exec 3>/dev/ttyS1
report() { echo "$*" >&3; echo "== $*"; }

. /etc/reuseport-qemu.conf

report "INFO kernel $(uname -r) $(uname -v)"
if [ -e /proc/net/if_inet6 ]; then report "INFO ipv6 yes"; else report "INFO ipv6 no (kernel built without it)"; fi
# Without CONFIG_TMPFS the kernel still offers "tmpfs", as ramfs (no size
# limit, no swap): /proc/filesystems cannot tell, so say what mount did.
report "INFO tmpfs mount $tmpfs"
if [ -d /proc/sys/fs/inotify ]; then report "INFO inotify yes"; else report "INFO inotify no"; fi
if grep -q '^Seccomp:' /proc/self/status; then report "INFO seccomp $(grep '^Seccomp:' /proc/self/status)"; else report "INFO seccomp no Seccomp: line in /proc/self/status (before 3.8)"; fi
if [ -L /proc/self/ns/net ]; then
  report "INFO netns-id $(readlink /proc/self/ns/net)"
elif [ -e /proc/self/ns/net ]; then
  report "INFO netns-id none: /proc/self/ns/net is a file, inode $(stat -c %i /proc/self/ns/net) (per process before 3.8)"
else
  report "INFO netns-id none: no /proc/self/ns/net"
fi

# How this kernel answers overlapping binds without SO_REUSEPORT: which path
# the shim's first bind() takes depends on it.
if [ -n "${DRIVER:-}" ]; then
  "$DRIVER" --bind-matrix | while IFS= read -r line; do report "INFO $line"; done
fi

# Checks that only a real kernel can make.
release=$(uname -r)
if [ -n "${RUNNER:-}" ]; then
  seen=$("$RUNNER" --kernel 3.2 -- uname -r 2>&1)
  if [ "$seen" = "$release" ]; then
    report "PASS realkernel.runner-passes-through: the runner on $release runs the command as it is"
  else
    report "FAIL realkernel.runner-passes-through: uname -r under the runner said '$seen', the kernel '$release'"
  fi
fi

# One test binary with a filter; one result line per test, from gtest's own
# "[       OK ] Suite.Name (12 ms)" lines.
run_gtest() {
  binary=$1 filter=$2
  name=$(basename "$binary")
  if [ ! -x "$binary" ]; then
    report "FAIL $name: not in the image"
    return
  fi
  log=/tmp/gtest-$name.log
  timeout "$CHECK_TIMEOUT" "$binary" --gtest_filter="$filter" --gtest_color=no >"$log" 2>&1
  status=$?
  cat "$log"
  seen=0
  while IFS= read -r line; do
    case $line in
      "[       OK ] "*" ms)") set -- $line; report "PASS $4"; seen=$((seen + 1)) ;;
      "[  FAILED  ] "*" ms)") set -- $line; report "FAIL $4: see console.log"; seen=$((seen + 1)) ;;
      "[  SKIPPED ] "*" ms)")
        set -- $line
        why=$(grep -B3 -F "[  SKIPPED ] $4 " "$log" | grep -v '^\[' | grep -v '^$' | tail -n 1)
        report "SKIP $4: ${why:-skipped}"; seen=$((seen + 1)) ;;
    esac
  done <"$log"
  if [ "$status" -eq 124 ]; then
    report "FAIL $name ($filter): still running after ${CHECK_TIMEOUT}s"
  elif [ "$seen" -eq 0 ]; then
    report "FAIL $name ($filter): no test ran (status $status)"
  fi
}

while read -r binary filter; do
  [ -n "$binary" ] && run_gtest "$binary" "$filter" </dev/null
done </etc/reuseport-qemu.checks

if [ -n "${SEMANTICS:-}" ]; then
  set -f  # the --case globs are for the driver, not for the shell
  timeout "$CHECK_TIMEOUT" $SEMANTICS >/tmp/semantics.log 2>&1
  status=$?
  set +f
  cat /tmp/semantics.log
  grep -E '^(PASS|FAIL|SKIP) ' /tmp/semantics.log | sed 's/^\(PASS\|FAIL\|SKIP\) /\1 semantics./' | while IFS= read -r line; do
    report "$line"
  done
  case $status in
    0|1) ;;
    124) report "FAIL semantics: still running after ${CHECK_TIMEOUT}s" ;;
    *) report "FAIL semantics: run_semantics.sh ended with status $status" ;;
  esac
fi

report DONE
sync
# -no-reboot on the qemu side turns the reboot into qemu's exit.
reboot -f
