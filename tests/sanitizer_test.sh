#!/usr/bin/env bash
# A clang build with AddressSanitizer + UndefinedBehaviorSanitizer and the
# libFuzzer targets (BUILD_DIR, default <source>/build-sanitize): the unit
# and loopback tests under the sanitizers, then every fuzz target for
# FUZZ_SECONDS (default 20) each. `make fuzz` runs the fuzzers longer.
# Then kernels/ alone under ThreadSanitizer (BUILD_DIR-thread), running the
# CPU backends' threaded tests: the worker pool, the Gibbs kernel passes,
# the ot and sor solvers. (The server is left out of TSan: Debian's Abseil
# is not instrumented, so TSan cannot see absl::Mutex and would report
# false races; clang's -Wthread-safety analysis checks its locking.)
#   sanitizer_test.sh SOURCE_DIR [BUILD_DIR]
set -euo pipefail
src=$1
build=${2:-$src/build-sanitize}
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSOLVERD_CUDA=OFF -DSOLVERD_SANITIZE=address,undefined -DSOLVERD_FUZZ=ON >/dev/null
tests=(scheduler_test job_store_test job_journal_test bearer_tokens_test ot_family_test sor_family_test
       family_registry_test blob_store_test
       loopback_test sor_loopback_test solverctl_test)
cmake --build "$build" --parallel "$(nproc)" \
  --target solverd solverctl "${tests[@]}" job_spec_fuzz matrix_market_fuzz blob_upload_fuzz
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir "$build" -L 'unit|loopback' --output-on-failure
"$src/scripts/fuzz.sh" "$build" "${FUZZ_SECONDS:-20}"

thread=$build-thread
cmake -S "$src/kernels" -B "$thread" -G Ninja -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSOLVERD_CUDA=OFF -DSOLVERD_SANITIZE=thread >/dev/null
thread_tests=(parallel_for ot_gibbs_kernel ot_sinkhorn ot_sns sor_solver sor_batch)
cmake --build "$thread" --parallel "$(nproc)" --target "${thread_tests[@]/%/_test}"
TSAN_OPTIONS=halt_on_error=1 ctest --test-dir "$thread" --output-on-failure \
  -R "^($(IFS='|'; echo "${thread_tests[*]}"))_cpu$"
