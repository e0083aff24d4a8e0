#!/usr/bin/env bash
# Installs the Debian packages solverd needs to build and test, skipping
# those already present. Safe to run repeatedly; needs root (or sudo) only
# when something is missing.
set -euo pipefail

PACKAGES=(
  cmake g++ clang ninja-build ccache make pkg-config curl
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev prometheus-cpp-dev libsqlite3-dev googletest libgtest-dev libgmock-dev
  postgresql libpq-dev libssl-dev libopenblas0-pthread
  python3-grpcio python3-grpc-tools python3-protobuf python3-numpy python3-yaml python3-pytest
  python3-torch python3-tqdm python3-pot python3-venv python3-pip python3-setuptools python3-wheel
  prometheus
)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
