#!/usr/bin/env bash
# The whole test suite, from nothing: installs packages, builds, runs ctest.
#
# Three builds: the normal one (build/), one with ASan+UBSan (build-asan/) and
# one with TSan (build-tsan/). The normal suite includes the tests
# sanitized.asan and sanitized.tsan, which run the unit and integration tests
# of the other two, so ctest's one summary covers everything.
# REUSEPORT_SANITIZERS=0 skips the sanitizer builds (and excludes those tests).
# Then the release (scripts/package.sh: build-release/, dist/), which the
# tests labelled release check: ELF floor, SysV script, .deb install, packages.
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

echo "test: making the release (scripts/package.sh)"
REUSEPORT_RELEASE_BUILD_DIR="$build-release" "$repo/scripts/package.sh" >/dev/null

cd "$build"
ctest --output-on-failure --timeout 900 -j"${REUSEPORT_TEST_JOBS:-1}" "${exclude[@]}" "$@"
