#!/usr/bin/env bash
# kernels/ must build and pass its tests on its own, with GoogleTest from a
# source tree rather than the package: exactly what scripts/gpu-check.sh
# does on a GPU machine that has no Debian packages.
set -euo pipefail
root=$1
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$root/kernels" -B "$work" "${gen[@]}" -DCMAKE_DISABLE_FIND_PACKAGE_GTest=ON \
  -DSOLVERD_GTEST_SOURCE=/usr/src/googletest >"$work/configure.log" 2>&1 ||
  { cat "$work/configure.log"; exit 1; }
cmake --build "$work" --parallel "$(nproc)" >"$work/build.log" 2>&1 || { tail -50 "$work/build.log"; exit 1; }
ctest --test-dir "$work" --output-on-failure
