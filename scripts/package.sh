#!/usr/bin/env bash
# The release, in one command (as root on Debian 12: it installs what it needs
# with apt, like scripts/setup.sh). Builds the programs statically
# (REUSEPORT_STATIC_PROGRAMS) in their own tree and writes to dist/:
#
#   reuseport-VERSION-linux-x86_64.tar.gz   an install prefix (sbin/, bin/, lib/,
#                                            etc/, share/) configured for /usr/local
#   reuseport_VERSION_amd64.deb             for Debian 7 and later, Ubuntu 12.04 and later
#   reuseport-VERSION-1.x86_64.rpm          for RHEL/CentOS 6 and later, SLES 11 and later
#   SHA256SUMS
#
# The programs run on any x86-64 Linux from 3.2 (static glibc 2.36); the shim
# loads into programs of any glibc from 2.12. scripts/test.sh runs this before
# ctest; the release tests (ctest -L release) check what it made.
#
#   REUSEPORT_RELEASE_BUILD_DIR   the release build tree (default build-release/)
#   REUSEPORT_DIST_DIR            where the files go (default dist/)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${REUSEPORT_RELEASE_BUILD_DIR:-$repo/build-release}"
dist="${REUSEPORT_DIST_DIR:-$repo/dist}"
jobs="$(nproc)"

"$repo/scripts/setup.sh" --packages-only

echo "package: building the release in $build"
# -O2 as the tested builds, without debug information (the files ship stripped).
cmake -S "$repo" -B "$build" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" \
  -DREUSEPORT_STATIC_PROGRAMS=ON -DREUSEPORT_BUILD_TESTS=OFF -DREUSEPORT_BUILD_BENCHMARKS=OFF \
  -DREUSEPORT_BUILD_FUZZERS=OFF \
  -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_LIBDIR=lib >/dev/null
cmake --build "$build" -j"$jobs" >/dev/null
version="$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")"
name="reuseport-$version-linux-x86_64"
# Archive timestamps: the last commit's time, not the build's (the binaries still embed
# their build paths, so two builds in different directories differ).
epoch="$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)"
export SOURCE_DATE_EPOCH="$epoch"

rm -rf "$dist"
mkdir -p "$dist"

echo "package: $name.tar.gz"
stage="$build/stage-tarball"
rm -rf "$stage"
DESTDIR="$stage" cmake --install "$build" --prefix /usr/local --strip >/dev/null
mv "$stage/usr/local" "$stage/$name"
tar --create --gzip --file "$dist/$name.tar.gz" --directory "$stage" \
  --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" "$name"
rm -rf "$stage"

echo "package: .deb and .rpm (cpack)"
rm -rf "$build/cpack"
(cd "$build" && cpack --config CPackConfig.cmake -B "$build/cpack" >"$build/cpack.log" 2>&1) || {
  cat "$build/cpack.log" >&2
  exit 1
}
cp "$build/cpack/"*.deb "$build/cpack/"*.rpm "$dist/"

(cd "$dist" && sha256sum -- * >SHA256SUMS)
echo "package: wrote $dist:"
ls -l "$dist"
