#!/usr/bin/env bash
# `cmake --install` plus its bundled_libs component produce the tree the
# Dockerfile's runtime stage copies (bin/solverd, bin/solverctl, lib/*.so*),
# and the binaries run from it alone: every shared library beyond the C/C++
# runtime and CUDA resolves inside the prefix, solverd serves, and
# `solverctl health` (the image's HEALTHCHECK) says SERVING.
#   install_test.sh BUILD_DIR
set -euo pipefail
build=$1
prefix=$(realpath "$(mktemp -d)")
pid=""
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$prefix"; }
trap cleanup EXIT
fail() { echo "install_test: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >/dev/null
cmake --install "$build" --prefix "$prefix" --component bundled_libs >/dev/null

unexpected=$(cd "$prefix" && find . \( -type f -o -type l \) |
  grep -vE '^\./bin/(solverd|solverctl)$|^\./lib/lib[^/]+\.so[.0-9]*$' || true)
[[ -z $unexpected ]] || fail "unexpected files in the install tree: $unexpected"
[[ -x $prefix/bin/solverd && -x $prefix/bin/solverctl ]] || fail "binaries missing"

# What the CUDA runtime base image (or the driver) provides; all else must
# come from the prefix.
base='^(linux-vdso|ld-linux|libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|libcuda|libcudart)\.'
for bin in solverd solverctl; do
  while read -r name path; do
    [[ $name =~ $base ]] && continue
    [[ $(realpath "$path") == "$prefix"/lib/* ]] || fail "$bin loads $name from $path, not $prefix/lib"
  done < <(ldd "$prefix/bin/$bin" | awk '/=>/ {print $1, $3}')
done

"$prefix/bin/solverd" --listen=127.0.0.1:0 --metrics-port=0 --port-file="$prefix/ports" \
  2>"$prefix/log" &
pid=$!
for _ in $(seq 500); do [[ -s $prefix/ports ]] && break; sleep 0.02; done
[[ -s $prefix/ports ]] || fail "installed solverd did not start: $(cat "$prefix/log")"
read -r port _ < "$prefix/ports"
"$prefix/bin/solverctl" --server="127.0.0.1:$port" health >/dev/null || fail "health check failed"
kill -TERM "$pid"
wait "$pid" || fail "solverd exited with $? on SIGTERM"
pid=""
echo "install_test: $(find "$prefix/lib" -name '*.so*' -type f | wc -l) bundled libraries; installed solverd serves"
