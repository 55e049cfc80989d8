#!/usr/bin/env bash
# Runs a command (the sanitizer builds' ctest, see tests/CMakeLists.txt) with
# an address-space layout the sanitizer runtimes survive.
#
# GCC 12's ASan and TSan runtimes crash at random ("unexpected memory
# mapping", shadow memory clashes) when vm.mmap_rnd_bits is above 28, as
# Linux 6.x kernels set it on some machines (google/sanitizers#1614, #1716).
# Where it is, the command runs without address randomisation (setarch -R,
# which its children inherit); where that is refused (a container's seccomp
# profile may forbid personality()), a root run lowers the sysctl to 28 for
# the command's duration and restores it. It says which it did.
set -uo pipefail

bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)
if [ "$bits" -le 28 ]; then
  exec "$@"
fi
arch=$(uname -m)
if setarch "$arch" -R true 2>/dev/null; then
  echo "run_sanitized: vm.mmap_rnd_bits is $bits (> 28): running without address randomisation (setarch $arch -R)"
  exec setarch "$arch" -R "$@"
fi
if [ "$(id -u)" = 0 ] && echo 28 2>/dev/null > /proc/sys/vm/mmap_rnd_bits; then
  echo "run_sanitized: vm.mmap_rnd_bits is $bits (> 28) and setarch -R is refused: lowered it to 28 for this run"
  "$@"
  status=$?
  echo "$bits" > /proc/sys/vm/mmap_rnd_bits && echo "run_sanitized: vm.mmap_rnd_bits restored to $bits"
  exit "$status"
fi
echo "run_sanitized: vm.mmap_rnd_bits is $bits (> 28) and neither setarch -R nor lowering it works here:" \
     "the sanitizer runtimes may crash at random"
exec "$@"
