#!/usr/bin/env bash
# The benchmark suite in one command (as root, on Debian 12): installs packages
# and builds (scripts/setup.sh), then runs reuseport_bench, which compares this
# project under `reuseport-legacy-kernel --kernel 3.2` with native SO_REUSEPORT
# and a shared socket, interleaved, on loopback in a network namespace of its
# own, and writes:
#
#   bench/results.json   every figure (medians, min-max, per-trial values), the
#                        targets and whether each is met
#   bench/ratios.svg     a chart of the ratios to native, with the goals
#
# and prints a table of the targets on stdout (progress goes to stderr).
#
# Usage: scripts/bench.sh [--quick] [reuseport_bench options...]
#   --quick   the CI-sized run: about a minute of measuring instead of four
#   REUSEPORT_BUILD_DIR   build tree (default build/)
#   REUSEPORT_BENCH_OUT   where the results go (default bench/)
# Other options go to reuseport_bench (`reuseport_bench --help`), e.g.
# --phases tcp,udp or --strict (exit 1 when a target is missed).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${REUSEPORT_BUILD_DIR:-$repo/build}"
out="${REUSEPORT_BENCH_OUT:-$repo/bench}"

quick=0
for a in "$@"; do
  [ "$a" = "--quick" ] && quick=1
done
if [ "$(id -u)" != "0" ]; then
  echo "bench: run as root: the suite makes a network namespace and raises fd limits" >&2
  exit 2
fi

# Packages and the whole tree. If something the benchmark does not use fails to
# build, build just what it needs rather than give up.
if ! REUSEPORT_BUILD_DIR="$build" "$repo/scripts/setup.sh"; then
  echo "bench: the full build failed; building only what the benchmark needs" >&2
fi
cmake --build "$build" -j"$(nproc)" --target reuseport_bench reuseportd reuseport reuseport-legacy-kernel reuseportctl \
  >/dev/null

mkdir -p "$out"
# The suite bounds itself (every trial is timed, a watchdog ends it); this is
# the last line of defence.
limit=$((quick ? 240 : 600))
status=0
timeout --kill-after=10 "$limit" "$build/tests/bench/reuseport_bench" --json "$out/results.json" \
  --svg "$out/ratios.svg" "$@" || status=$?
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
  echo "bench: did not finish within $limit s" >&2
fi
exit "$status"
