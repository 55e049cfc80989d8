#!/usr/bin/env bash
# The whole test suite, from nothing: installs packages, builds, runs ctest.
#
# Three builds: the normal one (build/), one with ASan+UBSan (build-asan/) and
# one with TSan (build-tsan/). The normal suite includes the tests
# sanitized.asan and sanitized.tsan, which run the unit and integration tests
# of the other two, so ctest's one summary covers everything.
# REUSEPORT_SANITIZERS=0 skips the sanitizer builds (and excludes those tests).
# Tests that need something this host may lack (IPv6, namespaces, root) skip
# with the reason; a program the suite runs that is missing is a failure here
# (REUSEPORT_REQUIRE_PROGRAMS=1), since setup.sh installs them all.
# Then the release (scripts/package.sh: build-release/, dist/), which the
# tests labelled release check: ELF floor, SysV script, .deb install, packages.
# ctest runs two tests at a time (REUSEPORT_TEST_JOBS); a sanitized suite,
# itself two at a time, takes both slots, and the benchmark runs alone.
# The everyday loop is much shorter: CONTRIBUTING.md.
# Usage: scripts/test.sh [ctest arguments...]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${REUSEPORT_BUILD_DIR:-$repo/build}"
"$repo/scripts/setup.sh"

exclude=()
if [ "${REUSEPORT_SANITIZERS:-1}" = "1" ]; then
  for kind in asan tsan; do
    case $kind in
      asan) sanitizer="address,undefined" ;;
      tsan) sanitizer="thread" ;;
    esac
    echo "test: building with $sanitizer in $build-$kind"
    cmake -S "$repo" -B "$build-$kind" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREUSEPORT_SANITIZER="$sanitizer" \
      -DREUSEPORT_BUILD_BENCHMARKS=OFF -DREUSEPORT_BUILD_FUZZERS=OFF >/dev/null
    cmake --build "$build-$kind" -j"$(nproc)" >/dev/null
  done
else
  exclude=(-LE sanitizer)
fi

# setup.sh installed every program the tests run (python3, nginx, dnsmasq,
# dig): here a missing one fails its tests instead of skipping them.
export REUSEPORT_REQUIRE_PROGRAMS="${REUSEPORT_REQUIRE_PROGRAMS:-1}"

bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)
if [ "${REUSEPORT_SANITIZERS:-1}" = "1" ] && [ "$bits" -gt 28 ]; then
  echo "test: vm.mmap_rnd_bits is $bits: the sanitized suites run through tests/run_sanitized.sh, which says what it does"
fi
echo "test: making the release (scripts/package.sh)"
REUSEPORT_RELEASE_BUILD_DIR="$build-release" "$repo/scripts/package.sh" >/dev/null

cd "$build"
ctest --output-on-failure --timeout 900 -j"${REUSEPORT_TEST_JOBS:-2}" "${exclude[@]}" "$@"
