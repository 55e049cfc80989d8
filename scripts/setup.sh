#!/usr/bin/env bash
# Installs what reuseport needs on Debian 12 (as root), then configures and
# builds it. Run by scripts/test.sh, scripts/demo.sh and scripts/package.sh;
# safe to rerun. --packages-only: install the packages, build nothing.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${REUSEPORT_BUILD_DIR:-$repo/build}"

packages=(
  build-essential cmake pkg-config
  libabsl-dev libseccomp-dev libgtest-dev
  python3 iproute2 util-linux procps curl
  nginx-light dnsmasq-base bind9-dnsutils
  haproxy unbound python3-gunicorn openssl
  manpages-dev
  clang libclang-rt-14-dev llvm-14
  rpm cpio                  # scripts/package.sh (rpmbuild) and the package tests (rpm -qp, rpm2cpio)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's nginx, haproxy and unbound packages start their services where
  # they can; we only want the binaries (tests/realprograms runs its own), so
  # keep services from starting during the install.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

[ "${1:-}" = "--packages-only" ] && exit 0

cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE="${REUSEPORT_BUILD_TYPE:-RelWithDebInfo}" ${REUSEPORT_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j"$(nproc)"
