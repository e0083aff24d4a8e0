#!/usr/bin/python3
"""Runs clang's -Wthread-safety analysis over server/ (where the scheduler
and job store mark their locking with GUARDED_BY), using the compile
commands of a CMake build directory. Exits non-zero on any warning.
   scripts/check-thread-safety.py BUILD_DIR
"""
import json
import shlex
import subprocess
import sys


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    failures = 0
    checked = 0
    for entry in json.load(open(f"{build}/compile_commands.json")):
        path = entry["file"]
        if "/server/" not in path or not path.endswith(".cc"):
            continue
        args = shlex.split(entry["command"])
        compiler = next(k for k, a in enumerate(args) if a.endswith(("g++", "c++", "clang++")))
        flags, skip = [], False
        for a in args[compiler + 1:]:
            if skip:
                skip = False
            elif a == "-o":
                skip = True
            elif a != "-c":
                flags.append(a)
        result = subprocess.run(["clang++", "-fsyntax-only", "-Wthread-safety",
                                 "-Werror=thread-safety"] + flags,
                                capture_output=True, text=True, cwd=entry["directory"])
        checked += 1
        if result.returncode != 0 or "thread-safety" in result.stderr:
            failures += 1
            print(f"{path}:\n{result.stderr}")
    print(f"thread-safety analysis: {checked} files, {failures} with findings")
    return 1 if failures or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
