#!/usr/bin/env bash
# A clang build with AddressSanitizer + UndefinedBehaviorSanitizer and the
# libFuzzer targets (BUILD_DIR, default <source>/build-sanitize): the unit
# and loopback tests under the sanitizers, then every fuzz target for
# FUZZ_SECONDS (default 20) each. `make fuzz` runs the fuzzers longer.
#   sanitizer_test.sh SOURCE_DIR [BUILD_DIR]
set -euo pipefail
src=$1
build=${2:-$src/build-sanitize}
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSOLVERD_CUDA=OFF -DSOLVERD_SANITIZE=address,undefined -DSOLVERD_FUZZ=ON >/dev/null
tests=(scheduler_test job_store_test bearer_tokens_test ot_family_test sor_family_test
       loopback_test sor_loopback_test)
cmake --build "$build" --parallel "$(nproc)" \
  --target solverd solverctl "${tests[@]}" job_spec_fuzz matrix_market_fuzz blob_upload_fuzz
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir "$build" -L 'unit|loopback' --output-on-failure
"$src/scripts/fuzz.sh" "$build" "${FUZZ_SECONDS:-20}"
