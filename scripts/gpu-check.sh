#!/usr/bin/env bash
# GPU check, for a machine with nvcc 13 and CMake but no Debian packages or
# network: builds kernels/ on its own, runs the gpu-labelled tests, runs
# them again under compute-sanitizer (memcheck, racecheck; ot and sor),
# runs the GPU benchmarks (bench/ot/ot_gpu_bench.cc, bench/sor/
# sor_gpu_bench.cc: achieved against copy bandwidth, CUDA against CPU;
# bench/quant/quant_gpu_bench.cc: CUDA against CPU, files compared), and
# writes every log under $OUT (default: ./gpu-check-out); the benchmarks'
# JSON lands in $OUT/ot_gpu.json, $OUT/sor_gpu.json and $OUT/quant_gpu.json.
#
# GoogleTest comes from .gtest-src (`make gpu-bundle` here, then carry it).
# SANITIZE_TESTS narrows the sanitizer runs (default: every kernel test program)
# and SANITIZE_TOOLS the tools (default: memcheck racecheck); each sanitizer
# run is cut at SANITIZE_TIMEOUT seconds (racecheck on the SNS test runs for
# minutes). QUICK=1 fits a lease of a few minutes: no CPU-only test pass
# (the dev machine runs those), memcheck alone on ot_batch and quant unless
# told otherwise, and the tomography benchmark's quick case.
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
# bench NAME FILE COMMAND...: as step, but the command's standard output
# (its JSON) goes to $OUT/FILE and only its standard error to the log, so a
# benchmark's messages about a failed case never land inside the JSON; on
# failure the output is kept as $OUT/FILE.partial instead.
bench() {
  local name=$1 file=$2; shift 2
  echo "== $name: $*"
  "$@" > "$OUT/$file" 2> "$OUT/$name.log"
  local rc=$?
  tail -n 25 "$OUT/$name.log"
  if [[ $rc -ne 0 ]]; then
    mv "$OUT/$file" "$OUT/$file.partial"
    echo "== $name FAILED (rc=$rc)"
    status=1
  fi
  return $rc
}
nvidia-smi > "$OUT/nvidia-smi.log" 2>&1 || true
GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
step configure cmake -S kernels -B build-gpu "${GEN[@]}" -DSOLVERD_CUDA=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSOLVERD_GTEST_SOURCE="$PWD/.gtest-src" || exit 1
step build cmake --build build-gpu --parallel "$(nproc)" || exit 1
step ctest-gpu ctest --test-dir build-gpu -L gpu --output-on-failure
grep -qi "skipped" "$OUT/ctest-gpu.log" && { echo "== GPU tests skipped: no device?"; status=1; }
QUICK=${QUICK:-0}
[[ $QUICK == 1 ]] || step ctest-all ctest --test-dir build-gpu --output-on-failure
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
ALL_SANITIZED="ot_sinkhorn ot_sns ot_batch sor_solver sor_batch dmmv dmmv_sparse quant quant_kquant quant_hessian"
[[ $QUICK == 1 ]] && ALL_SANITIZED="ot_batch quant"
TOOLS="memcheck racecheck"
[[ $QUICK == 1 ]] && TOOLS="memcheck"
for test in ${SANITIZE_TESTS:-$ALL_SANITIZED}; do
  for tool in ${SANITIZE_TOOLS:-$TOOLS}; do
    step "sanitizer-$tool-$test" timeout "${SANITIZE_TIMEOUT:-240}" \
      "$SAN" --tool "$tool" --error-exitcode 3 \
      "build-gpu/tests/${test}_test" --gtest_filter='*Cuda*'
  done
done
# GPU benchmark figures, named for the device, for bench/results/.
if [[ -x build-gpu/ot_gpu_bench ]]; then
  bench bench-ot-gpu ot_gpu.json build-gpu/ot_gpu_bench
fi
if [[ -x build-gpu/sor_gpu_bench ]]; then
  bench bench-sor-gpu sor_gpu.json build-gpu/sor_gpu_bench
fi
if [[ -x build-gpu/quant_gpu_bench ]]; then
  bench bench-quant-gpu quant_gpu.json build-gpu/quant_gpu_bench
fi
if [[ -x build-gpu/tomo_bench ]]; then  # JSON lines, backend "cuda"
  TOMO_ARGS=(--cuda)
  [[ $QUICK == 1 ]] && TOMO_ARGS+=(--quick --seconds=5)
  bench bench-tomo-gpu dmmv_tomo_gpu.jsonl build-gpu/tomo_bench "${TOMO_ARGS[@]}"
fi
exit $status
