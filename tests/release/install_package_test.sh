#!/bin/sh
# Installs the build tree into a temporary prefix and builds a client of the
# installed CMake package against it (tests/release/package_client).
# Usage: install_package_test.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
source=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$source/tests/release/package_client" -B "$work/client" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/client" >/dev/null
out=$("$work/client/package_client")
echo "package client: $out"
[ "$out" = "magic-ok 256" ]
