#!/usr/bin/env bash
# The Node.js example (client/node/solve_ot.js) runs one job end to end
# against a real solverd. npm installs its packages (@grpc/grpc-js,
# @grpc/proto-loader, pinned by package-lock.json) into WORK_DIR once; when
# the npm registry cannot be reached the test skips and says why.
#   node_client_test.sh SOURCE_DIR SOLVERD WORK_DIR
set -euo pipefail
src=$1 solverd=$2 work=$3
mkdir -p "$work"
cp "$src"/client/node/{package.json,package-lock.json,solve_ot.js} "$work/"
if [[ ! -d $work/node_modules/@grpc/grpc-js ]]; then
  if ! command -v npm >/dev/null; then
    echo "SKIPPED: npm is not installed"; exit 0
  fi
  if ! (cd "$work" && timeout 180 npm ci --no-audit --no-fund --loglevel=error) >"$work/npm.log" 2>&1; then
    echo "SKIPPED: npm could not install the packages (registry unreachable?):"
    tail -3 "$work/npm.log"
    exit 0
  fi
fi

pid=""
trap '[[ -n $pid ]] && kill $pid 2>/dev/null; true' EXIT
rm -f "$work/ports"
"$solverd" --listen=127.0.0.1:0 --metrics-port=0 --port-file="$work/ports" 2>"$work/server.log" &
pid=$!
for _ in $(seq 500); do [[ -s $work/ports ]] && break; sleep 0.02; done
read -r port _ < "$work/ports"
SOLVERD_PROTO_ROOT="$src/proto" node "$work/solve_ot.js" "127.0.0.1:$port" | tee "$work/out.txt"
grep -q "SUCCEEDED: transport cost" "$work/out.txt"
