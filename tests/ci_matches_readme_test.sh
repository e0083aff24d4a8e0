#!/usr/bin/env bash
# Fails when .ci/run and README.md's test command drift apart: README marks
# its test command with <!-- test-command --> on the line before a fenced
# block whose only line is the command; .ci/run must run exactly that line.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cmd=$(awk '/<!-- test-command -->/ {found=1; next} found && /^```/ {inblock=!inblock; if (!inblock) exit; next} found && inblock {print; exit}' "$root/README.md")
if [[ -z "$cmd" ]]; then
  echo "README.md has no <!-- test-command --> block" >&2
  exit 1
fi
if ! grep -qxF "$cmd" "$root/.ci/run"; then
  echo "README.md's test command '$cmd' is not a line of .ci/run" >&2
  exit 1
fi
echo "README and .ci/run agree on: $cmd"
