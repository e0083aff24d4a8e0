#!/usr/bin/env bash
# The load test in short form: 2,000 mixed jobs from 32 clients, with
# cancels and dropped watchers, against a fresh solverd; fails on any job
# without exactly one final state, or server RSS growth past 512 MiB.
#   load_test.sh SOLVERD SOLVERD_LOAD
set -euo pipefail
solverd=$1 load=$2
tmp=$(mktemp -d)
"$solverd" --listen=127.0.0.1:0 --metrics-port=0 --port-file="$tmp/ports" 2>"$tmp/log" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 500); do [[ -s $tmp/ports ]] && break; sleep 0.02; done
read -r port _ < "$tmp/ports"
"$load" --server="127.0.0.1:$port" --server_pid=$pid --jobs=2000 --clients=32 \
  --cancel_fraction=0.1 --disconnect_fraction=0.1 --max_rss_growth_mb=512
