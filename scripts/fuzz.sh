#!/usr/bin/env bash
# Runs each libFuzzer target built in BUILD_DIR (configure with clang,
# -DSOLVERD_FUZZ=ON -DSOLVERD_SANITIZE=address,undefined) for SECONDS, on a
# scratch copy of its seeds in fuzz/corpus/<target>, so the repository's
# corpus stays as it is. A crash fails the run and names the reproducer.
#   scripts/fuzz.sh BUILD_DIR [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=$1 seconds=${2:-30}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for seeds in fuzz/corpus/*/; do
  target=$(basename "$seeds")
  mkdir -p "$scratch/$target" "$scratch/$target.crashes"
  cp "$seeds"* "$scratch/$target/"
  if ! "$build/fuzz/$target" "$scratch/$target" -max_total_time="$seconds" -rss_limit_mb=4096 \
       -artifact_prefix="$scratch/$target.crashes/" -print_final_stats=1 \
       >"$scratch/$target.log" 2>&1; then
    tail -40 "$scratch/$target.log"
    echo "fuzz: $target failed; reproducer:" "$scratch/$target.crashes/"* >&2
    trap - EXIT
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$scratch/$target.log" | grep -o '[0-9]*$')
  echo "fuzz: $target: ${runs:-?} inputs in ${seconds}s, no failure"
done
