#!/usr/bin/env bash
# Boots a real Linux kernel in qemu (TCG: no KVM needed) with an initramfs of
# Debian's busybox-static, this build's programs and test programs and their
# shared libraries, runs the check suite inside, and reports per check.
#
# Usage: scripts/qemu-test.sh --kernel BZIMAGE [--kernel BZIMAGE...] | --from-env
#          [--build DIR] [--timeout SECONDS] [--memory MB] [--work DIR]
#          [--only checks|semantics] [--filter GTEST_FILTER] [--cases GLOB,...]
#
#   --kernel   a bzImage (x86_64); repeat to run the suite on several
#   --from-env the images named in REUSEPORT_TEST_KERNEL (':' between several);
#              without it set: says so and exits 77 (ctest's skip)
#   --build    the build tree (default: $REUSEPORT_BUILD_DIR or build/); built
#              with scripts/setup.sh first if its programs are missing
#   --timeout  a bound on each boot, whatever happens inside (default 1800)
#   --work     keep the image, console.log and results.txt there
#   --only     run only the gtest checks, or only the semantics cases
#   --filter   replace every check's gtest filter (e.g. 'TcpGroupTest.*')
#   --cases    only these reuseport_semantics cases (globs, comma-separated)
#
# Prints "PASS|FAIL|SKIP name[: why]" per check as the guest reports it, then
# "<kernel>: N passed, N failed, N skipped". Exit status: 0 when every boot
# ran its suite to the end without a failure, 1 otherwise, 2 usage.
# As root (it installs qemu-system-x86, busybox-static and cpio with apt if
# they are missing). docs/real-kernel.md says what it checks and why.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${REUSEPORT_BUILD_DIR:-$repo/build}"
kernels=() timeout=1800 memory=1024 work="" only="" filter="" cases=""

usage() {
  echo "qemu-test: $*" >&2
  sed -n '5,7p' "${BASH_SOURCE[0]}" | sed 's/^# //' >&2
  exit 2
}
while (($#)); do
  case $1 in
    --kernel) kernels+=("$(realpath "$2")"); shift 2 ;;
    --build) build=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --memory) memory=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --filter) filter=$2; shift 2 ;;
    --cases) cases=$2; shift 2 ;;
    --from-env)
      if [[ -z ${REUSEPORT_TEST_KERNEL:-} ]]; then
        echo "qemu-test: SKIP: REUSEPORT_TEST_KERNEL names no kernel image (docs/real-kernel.md)"
        exit 77
      fi
      IFS=: read -r -a from_env <<<"$REUSEPORT_TEST_KERNEL"
      for k in "${from_env[@]}"; do [[ -n $k ]] && kernels+=("$(realpath -m "$k")"); done
      shift ;;
    -h|--help) sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage "unknown argument '$1'" ;;
  esac
done
((${#kernels[@]})) || usage "no --kernel given"
for k in "${kernels[@]}"; do [[ -r $k ]] || usage "cannot read kernel image $k"; done
case $only in ""|checks|semantics) ;; *) usage "--only checks|semantics" ;; esac
build=$(realpath -m "$build")

# --- What the machine needs --------------------------------------------------
packages=(qemu-system-x86 busybox-static cpio binutils)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "qemu-test: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The programs the guest runs, where the test binaries expect them (their
# paths are compiled in, so the image mirrors this build tree).
programs=(
  broker/reuseportd
  shim/libreuseport.so
  tools/legacy_kernel/reuseport-legacy-kernel
  tools/ctl/reuseportctl
  tools/run/reuseport-run
  tests/members/tcp_member
  tests/members/udp_member
  tests/integration/lifecycle_member
  tests/semantics/reuseport_semantics
)
# The checks: test binary and gtest filter. The suite's own tests, chosen for
# what a real old kernel can show: groups spreading TCP and UDP, members
# leaving and dying, the broker dying and coming back, the address rules, the
# broker's hardening on a kernel without seccomp filters, the shim without a
# broker. Left out: tests that need Python, nginx, dnsmasq, unshare or an
# install tree (none of them is in the image).
checks=(
  "tests/integration/tcp_group_test TcpGroupTest.FourBlockingMembersServeEveryConnectionExactlyOnce:TcpGroupTest.SelectLevelTriggeredOneshotAndThreadedMembers:TcpGroupTest.ListenerOptionsReachAcceptedSockets:TcpGroupTest.WithoutTheShimASecondListenerFailsAsOnAnOldKernel:TcpGroupTest.AnotherUidIsRefusedAndTheGroupKeepsServing:TcpGroupTest.Ipv6MembersShareAPort:TcpGroupTest.DualStackGroupServesIpv4AndIpv6:TcpGroupTest.V6onlyAndIpv4GroupsOnOnePortStaySeparate:TcpGroupTest.SpecificAddressBeatsWildcard:TcpGroupTest.Ipv4TrafficPrefersIpv4GroupOverDualStack:TcpGroupTest.MemberThatExitsLeavesAndTheOthersTakeItsShare:TcpGroupTest.KilledMemberLosesNoConnectionQueuedForIt"
  "tests/integration/udp_group_test UdpGroupTest.FourMembersSpreadAThousandFlowsWithAffinity:UdpGroupTest.Ipv6MembersShareAPort:UdpGroupTest.Ipv4PrefersIpv4GroupOverDualStack:UdpGroupTest.SpecificAddressBeatsWildcard:UdpGroupTest.MemberThatLeavesHandsItsFlowsToTheOthers"
  "tests/integration/broker_restart_test BrokerRestartTest.*"
  "tests/integration/hardening_test HardeningTest.OnLinux32TheBrokerSaysItRunsWithoutAFilter:HardeningTest.CapabilitiesAreDroppedAfterStart"
  "tests/integration/shim_fallback_test ShimFallbackTest.ListedPortWithoutBrokerBindsOnceThenAddressInUse"
  "tests/integration/stall_test StallTest.*"
  "tests/integration/process_life_test *ProcessLifeTest.*"
)
[[ $only == semantics ]] && checks=()
for c in "${checks[@]}"; do programs+=("${c%% *}"); done
need_build=0
for p in "${programs[@]}"; do [[ -e $build/$p ]] || need_build=1; done
if ((need_build)); then
  echo "qemu-test: building in $build"
  REUSEPORT_BUILD_DIR=$build "$repo/scripts/setup.sh"
fi

# --- The image -----------------------------------------------------------------
own_work=0
if [[ -z $work ]]; then
  work=$(mktemp -d /tmp/reuseport-qemu.XXXXXX)
  own_work=1
fi
mkdir -p "$work"
root=$work/root
rm -rf "$root"
mkdir -p "$root"/{bin,etc,proc,sys,dev,tmp,run}
cp /bin/busybox "$root/bin/busybox"
cp "$repo/tests/realkernel/guest_init.sh" "$root/init"
chmod 755 "$root/init"

declare -A copied=()
# Copies a file to the same absolute path in the image; ELF files lose their
# debug sections (the image shrinks several times) and bring their libraries.
add_file() {
  local src=$1 dst=$root$1
  [[ -n ${copied[$src]:-} ]] && return
  copied[$src]=1
  mkdir -p "$(dirname "$dst")"
  if [[ $(head -c4 "$src" | tr -d '\0' | tail -c3) == ELF ]]; then
    strip --strip-debug -o "$dst" "$src" 2>/dev/null || cp -L "$src" "$dst"
    chmod --reference="$src" "$dst"
    local lib
    while read -r lib; do
      [[ -n $lib ]] && add_file "$lib"
    done < <(ldd "$src" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p')
  else
    cp -L "$src" "$dst"
  fi
}
for p in "${programs[@]}"; do add_file "$build/$p"; done
add_file "$repo/tests/semantics/run_semantics.sh"
add_file "$repo/tests/semantics/kernel_reference.txt"
# The loader by the name binaries ask for (a symlink on the host).
if [[ -e /lib64/ld-linux-x86-64.so.2 && ! -e $root/lib64/ld-linux-x86-64.so.2 ]]; then
  mkdir -p "$root/lib64"
  cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
fi
# Users the tests switch to, and names for them.
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf 'hosts: files\n' >"$root/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' >"$root/etc/hosts"

for c in "${checks[@]}"; do
  f=${c#* }
  [[ -n $filter ]] && f=$filter
  echo "$build/${c%% *} $f"
done >"$root/etc/reuseport-qemu.checks"
semantics=""
if [[ $only != checks ]]; then
  # Slower than a host: give traffic more time to show up.
  semantics="$repo/tests/semantics/run_semantics.sh --mode real --build $build -- --wait-ms 5000"
  IFS=, read -r -a case_globs <<<"$cases"
  for g in "${case_globs[@]}"; do [[ -n $g ]] && semantics+=" --case $g"; done
fi
# Read by busybox sh: plain single-quoted values (paths have no quotes).
{
  echo "SEMANTICS='$semantics'"
  echo "CHECK_TIMEOUT='$((timeout - 120 > 60 ? timeout - 120 : 60))'"
  echo "RUNNER='$build/tools/legacy_kernel/reuseport-legacy-kernel'"
  echo "DRIVER='$build/tests/semantics/reuseport_semantics'"
} >"$root/etc/reuseport-qemu.conf"
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"$work/initramfs.cpio.gz"
echo "qemu-test: image $(du -h "$work/initramfs.cpio.gz" | cut -f1) in $work"

# --- Boot each kernel ----------------------------------------------------------
overall=0
for kernel in "${kernels[@]}"; do
  name=$(basename "$kernel")
  results=$work/$name.results.txt console=$work/$name.console.log
  : >"$results"
  echo "qemu-test: booting $kernel (timeout ${timeout}s)"
  start=$(date +%s)
  # TCG is what works everywhere; -no-reboot turns the guest's reboot (and a
  # panic, with panic=-1) into qemu's exit.
  timeout -k 10 "$timeout" qemu-system-x86_64 -machine pc -accel tcg -smp 1 -m "$memory" \
    -kernel "$kernel" -initrd "$work/initramfs.cpio.gz" \
    -append "console=ttyS0 quiet panic=-1 rdinit=/init" \
    -display none -monitor none -nic none -no-reboot \
    -serial "file:$console" -serial "file:$results" </dev/null &
  qemu=$!
  # Show the guest's verdicts as they come.
  tail -n +1 -f "$results" --pid "$qemu" 2>/dev/null | grep --line-buffered -E '^(PASS|FAIL|SKIP|INFO|DONE)' &
  follower=$!
  status=0
  wait "$qemu" || status=$?
  wait "$follower" 2>/dev/null || true
  elapsed=$(($(date +%s) - start))
  tr -d '\r' <"$results" >"$results.tmp" && mv "$results.tmp" "$results"
  passed=$(grep -c '^PASS ' "$results" || true)
  failed=$(grep -c '^FAIL ' "$results" || true)
  skipped=$(grep -c '^SKIP ' "$results" || true)
  if ! grep -q '^DONE' "$results"; then
    if ((status == 124)); then
      echo "FAIL $name: the suite did not finish within ${timeout}s"
    else
      echo "FAIL $name: the guest stopped before the end of the suite (qemu status $status)"
    fi
    echo "qemu-test: last console lines ($console):"
    tail -n 30 "$console" | tr -d '\r' | sed 's/^/  | /'
    failed=$((failed + 1))
  fi
  echo "$name: $passed passed, $failed failed, $skipped skipped (${elapsed}s)"
  ((failed == 0)) || overall=1
done
if ((own_work)) && ((overall == 0)); then
  rm -rf "$work"
else
  echo "qemu-test: console logs and results are in $work"
fi
exit "$overall"
