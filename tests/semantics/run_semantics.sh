#!/bin/sh
# Runs reuseport_semantics in one of three settings and judges every case
# against the reference (lines recorded on a kernel with SO_REUSEPORT):
#
#   native     the kernel's own SO_REUSEPORT (the reference itself; skipped,
#              status 77, on a kernel older than 3.9)
#   emulated   reuseportd and the program under reuseport-legacy-kernel
#              --kernel 3.2, the program with libreuseport.so preloaded
#   real       reuseportd and the program with the shim, no runner: for a
#              real old kernel (the qemu harness runs this inside the guest)
#
# Plain POSIX sh: it also runs under busybox inside the harness's guest.
#
# Usage: run_semantics.sh --mode native|emulated|real [--build DIR]
#          [--broker PATH] [--shim PATH] [--runner PATH] [--driver PATH]
#          [--reference FILE] [--kernel X.Y] [--work DIR] [--] [driver args...]
# Driver args are passed on, e.g. --case 'tcp.*' or --wait-ms 5000.
# Exit status: the driver's (0 every case passed, 1 some failed), 77 skipped,
# 2 usage or setup error.
set -u
here=$(cd "$(dirname "$0")" && pwd)
mode="" build="" broker="" shim="" runner="" driver="" kernel=3.2 work=""
reference="$here/kernel_reference.txt"
while [ $# -gt 0 ]; do
  case $1 in
    --mode) mode=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --broker) broker=$2; shift 2 ;;
    --shim) shim=$2; shift 2 ;;
    --runner) runner=$2; shift 2 ;;
    --driver) driver=$2; shift 2 ;;
    --reference) reference=$2; shift 2 ;;
    --kernel) kernel=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
if [ -n "$build" ]; then
  : "${broker:=$build/broker/reuseportd}" "${shim:=$build/shim/libreuseport.so}"
  : "${runner:=$build/tools/legacy_kernel/reuseport-legacy-kernel}"
  : "${driver:=$build/tests/semantics/reuseport_semantics}"
fi
fail() { echo "run_semantics: $*" >&2; exit 2; }
[ -x "$driver" ] || fail "no driver (give --build DIR or --driver PATH)"
[ -r "$reference" ] || fail "no reference file $reference"

case $mode in
  native)
    # SO_REUSEPORT arrived in 3.9.
    release=$(uname -r)
    major=${release%%.*} rest=${release#*.} minor=${rest%%.*}
    if [ "$major" -lt 3 ] || { [ "$major" -eq 3 ] && [ "$minor" -lt 9 ]; }; then
      echo "run_semantics: SKIP: kernel $release has no SO_REUSEPORT (3.9+), so it cannot be the reference"
      exit 77
    fi
    exec "$driver" --expect "$reference" "$@"
    ;;
  emulated|real) ;;
  *) fail "--mode native|emulated|real" ;;
esac
[ -x "$broker" ] || fail "no broker at $broker"
[ -r "$shim" ] || fail "no shim at $shim"
wrap=""
if [ "$mode" = emulated ]; then
  [ -x "$runner" ] || fail "no reuseport-legacy-kernel at $runner"
  wrap="$runner --kernel $kernel --"
fi

own_work=""
if [ -z "$work" ]; then
  work=$(mktemp -d /tmp/reuseport-semantics.XXXXXX) || fail "mktemp"
  own_work=1
fi
socket="$work/reuseportd.sock"
rm -f "$work/ready" "$socket"
mkfifo "$work/ready" || fail "mkfifo"
# Readiness by the broker's own word on an fd (READY=1, then it closes it);
# end of file instead means it died first.
# shellcheck disable=SC2086
$wrap "$broker" --socket "$socket" --ready_fd 3 --log_level info 3>"$work/ready" >"$work/reuseportd.log" 2>&1 &
broker_pid=$!
ready=""
read -r ready <"$work/ready" || true
cleanup() {
  kill "$broker_pid" 2>/dev/null
  wait "$broker_pid" 2>/dev/null
  if [ -n "$own_work" ]; then rm -rf "$work"; fi
}
if [ "$ready" != "READY=1" ]; then
  cat "$work/reuseportd.log" >&2
  cleanup
  fail "reuseportd did not become ready"
fi

# shellcheck disable=SC2086
LD_PRELOAD="$shim" REUSEPORT_SOCKET="$socket" REUSEPORT_MODE=auto REUSEPORT_LOG=error \
  $wrap "$driver" --expect "$reference" "$@"
status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then
  echo "run_semantics: the driver ended with status $status; broker log:" >&2
  tail -n 40 "$work/reuseportd.log" >&2
fi
cleanup
exit "$status"
