#!/usr/bin/env bash
# The whole test suite, from nothing: installs packages, builds, runs ctest.
# Usage: scripts/test.sh [ctest arguments...]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/setup.sh"
cd "${REUSEPORT_BUILD_DIR:-$repo/build}"
ctest --output-on-failure --timeout 600 -j"${REUSEPORT_TEST_JOBS:-1}" "$@"
