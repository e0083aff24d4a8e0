#!/usr/bin/env python3
"""The layering and layout rules of DESIGN.md and STYLE.md, checked.

- kernels/ includes neither gRPC, protobuf, Abseil, prometheus-cpp nor the
  API protos, and nothing of server/ or client/;
- a kernels family includes no other family, except the one dependency
  DESIGN allows: quant's rounding calls dmmv's public API (dmmv/dmmv.h);
- client/ includes nothing of server/; util/ only the standard library
  (its .cc files may use OpenSSL's libcrypto behind std-only headers);
- no source file is over 500 lines, a .cc counted with its .h;
- every non-test header opens with a comment that says what it is for and
  its thread-safety;
- docs/adding-a-family.md shows the example family exactly as the registry
  test runs it, and names files that exist for every family.

It first runs the include rules on a small tree with a violation of each
kind and fails unless every one is reported, so the checks cannot rot into
passing everything.
"""
import argparse
import os
import re
import sys
import tempfile

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^">]+)[">]', re.M)
FORBIDDEN_IN_KERNELS = ("grpc", "grpcpp/", "google/protobuf", "absl/", "prometheus/",
                        "solverd/v1/", "server/", "client/", "util/")
KERNEL_FAMILIES = ("ot", "sor", "dmmv", "quant")
# DESIGN: "quant may call dmmv's public API (its rounding is a DMMV search)".
ALLOWED_CROSS_FAMILY = {("quant", "dmmv/dmmv.h")}
SOURCE_DIRS = ("kernels", "server", "client", "util", "bench", "fuzz")
SOURCE_EXTS = (".cc", ".h", ".cu", ".cuh")
MAX_LINES = 500
THREAD_WORDS = re.compile(r"thread|immutable|plain value|stateless|pure function|constexpr",
                          re.I)


def sources(root, top):
    base = os.path.join(root, top)
    for dirpath, _, files in os.walk(base):
        for name in sorted(files):
            if name.endswith(SOURCE_EXTS):
                path = os.path.join(dirpath, name)
                yield os.path.relpath(path, root)


def includes(root, rel):
    with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
        return INCLUDE.findall(f.read())


def include_violations(root):
    out = []
    for rel in sources(root, "kernels"):
        parts = rel.split(os.sep)
        family = parts[1] if len(parts) > 2 and parts[1] in KERNEL_FAMILIES else None
        for inc in includes(root, rel):
            if inc.startswith(FORBIDDEN_IN_KERNELS):
                out.append(f"{rel}: kernels/ may not include {inc}")
            other = inc.split("/")[0]
            if family and other in KERNEL_FAMILIES and other != family and \
                    (family, inc) not in ALLOWED_CROSS_FAMILY:
                out.append(f"{rel}: kernels/{family} may not include {inc} (another family)")
    for rel in sources(root, "client"):
        for inc in includes(root, rel):
            if inc.startswith("server/"):
                out.append(f"{rel}: client/ may not include {inc}")
    for rel in sources(root, "util"):
        for inc in includes(root, rel):
            if inc.startswith("util/") or (rel.endswith(".cc") and inc.startswith("openssl/")):
                continue  # its own headers; libcrypto behind a std-only header (sha256)
            if "/" in inc or inc.endswith(".h"):
                out.append(f"{rel}: util/ uses the standard library only, not {inc}")
    return out


def size_violations(root):
    lines = {}
    for top in SOURCE_DIRS:
        for rel in sources(root, top):
            with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
                lines[rel] = sum(1 for _ in f)
    out = []
    for rel, n in sorted(lines.items()):
        if rel.endswith(".h") and rel[:-2] + ".cc" in lines:
            continue  # counted with its .cc
        pair = n + lines.get(rel[:-3] + ".h", 0) if rel.endswith(".cc") else n
        if pair > MAX_LINES:
            out.append(f"{rel}: {pair} lines with its header, over {MAX_LINES}")
    return out


def header_violations(root):
    out = []
    for top in ("kernels", "server", "client", "util"):
        for rel in sources(root, top):
            if not rel.endswith((".h", ".cuh")):
                continue
            with open(os.path.join(root, rel), encoding="utf-8") as f:
                text = f.read()
            opening = []
            for line in text.splitlines():
                if not line.startswith("//"):
                    break
                opening.append(line)
            if not opening:
                out.append(f"{rel}: opens without a comment saying what it is for")
            elif not THREAD_WORDS.search(" ".join(opening)):
                out.append(f"{rel}: its opening comment does not state its thread-safety")
    return out


def doc_violations(root):
    doc_path = os.path.join(root, "docs", "adding-a-family.md")
    test_path = os.path.join(root, "tests", "server", "family_registry_test.cc")
    with open(doc_path, encoding="utf-8") as f:
        doc = f.read()
    with open(test_path, encoding="utf-8") as f:
        test = f.read()
    marker = "// [adding-a-family example]\n"
    parts = test.split(marker)
    if len(parts) != 3:
        return [f"{test_path}: expected the example between two '{marker.strip()}' lines"]
    example = parts[1]
    blocks = re.findall(r"```c\+\+\n(.*?)```", doc, re.S)
    out = []
    if example not in blocks:
        out.append("docs/adding-a-family.md: its first C++ block is not the example in "
                   "tests/server/family_registry_test.cc (copy it again)")
    for path in re.findall(r"`((?:server|kernels|proto|client)/[\w/.<>-]+)`", doc):
        candidates = [path.replace("<family>", f) for f in KERNEL_FAMILIES] \
            if "<family>" in path else [path]
        for candidate in candidates:
            if not os.path.exists(os.path.join(root, candidate)):
                out.append(f"docs/adding-a-family.md names {candidate}, which does not exist")
    return out


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def self_test():
    """Every include rule must fire on a tree built to break it."""
    with tempfile.TemporaryDirectory() as root:
        write(root, "kernels/ot/a.cc", '#include "absl/status/status.h"\n')
        write(root, "kernels/ot/b.cc", '#include "sor/sor.h"\n')
        write(root, "kernels/quant/c.cc", '#include "dmmv/dmmv.h"\n#include "dmmv/fir.h"\n')
        write(root, "client/d.cc", '#include "server/flags.h"\n')
        write(root, "util/e.h", '#include "absl/strings/str_cat.h"\n')
        found = include_violations(root)
    expected = ["kernels/ot/a.cc", "kernels/ot/b.cc", "dmmv/fir.h", "client/d.cc", "util/e.h"]
    missed = [e for e in expected if not any(e in v for v in found)]
    allowed_flagged = [v for v in found if v.endswith("dmmv/dmmv.h")]
    if missed or allowed_flagged or len(found) != len(expected):
        sys.exit(f"layout_test self-test: missed {missed}, wrongly flagged "
                 f"{allowed_flagged}, found {found}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", required=True)
    root = parser.parse_args().source
    self_test()
    checks = [("includes", include_violations), ("file sizes", size_violations),
              ("header comments", header_violations), ("adding-a-family page", doc_violations)]
    failed = 0
    for name, check in checks:
        found = check(root)
        for v in found:
            print(f"  {v}")
        print(f"{name}: {'ok' if not found else f'{len(found)} problem(s)'}")
        failed += bool(found)
    passed = len(checks) - failed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
