#!/usr/bin/env bash
# GPU check, for a machine with nvcc 13 and CMake but no Debian packages or
# network: builds kernels/ on its own, runs the gpu-labelled tests, runs
# them again under compute-sanitizer (memcheck, racecheck), and writes every
# log under $OUT (default: ./gpu-check-out).
#
# GoogleTest comes from .gtest-src (`make gpu-bundle` here, then carry it).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
status=0
step() {  # step NAME COMMAND...: runs, logs to $OUT/NAME.log, remembers failure
  local name=$1; shift
  echo "== $name: $*"
  "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$OUT/$name.log"
  [[ $rc -eq 0 ]] || { echo "== $name FAILED (rc=$rc)"; status=1; }
  return $rc
}
nvidia-smi > "$OUT/nvidia-smi.log" 2>&1 || true
GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
step configure cmake -S kernels -B build-gpu "${GEN[@]}" -DSOLVERD_CUDA=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSOLVERD_GTEST_SOURCE="$PWD/.gtest-src" || exit 1
step build cmake --build build-gpu --parallel "$(nproc)" || exit 1
step ctest-gpu ctest --test-dir build-gpu -L gpu --output-on-failure
grep -q "SKIPPED" "$OUT/ctest-gpu.log" && { echo "== GPU tests skipped: no device?"; status=1; }
step ctest-all ctest --test-dir build-gpu --output-on-failure
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for tool in memcheck racecheck; do
  step "sanitizer-$tool" "$SAN" --tool "$tool" --error-exitcode 3 \
    build-gpu/tests/ot_sinkhorn_test --gtest_filter='*Cuda*'
done
exit $status
