#!/usr/bin/env python3
"""Markdown summary of the GPU benchmarks' JSON (bench/results/*_gpu.json).

scripts/gpu-check.sh writes ot_gpu.json, sor_gpu.json and quant_gpu.json
on a lent GPU machine; copy them to bench/results/ and run this to refresh
bench/results/gpu.md. Standard library only.

  bench/common/gpu_report.py bench/results/{ot,sor,quant}_gpu.json
"""
import json
import os
import sys


def fmt(v):
    if v == int(v) and abs(v) < 1e9:
        return f"{int(v):,}"
    if abs(v) >= 1e9:
        return f"{v / 1e9:,.0f} G"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
        return f"{v:.3g}"
    return f"{v:,.4g}"


def table(doc):
    """One row per (case, system, metric): CUDA value, CPU value, CPU / CUDA."""
    rows = {}
    for r in doc["records"]:
        key = (r["case"], r["system"], r["metric"])
        rows.setdefault(key, {})[r["backend"]] = r["value"]
    lines = ["| case | system | metric | cuda | cpu (device host) | cpu / cuda |",
             "|---|---|---|---|---|---|"]
    for (case, system, metric), v in rows.items():
        cuda, cpu = v.get("cuda"), v.get("cpu")
        ratio = f"{cpu / cuda:,.1f}x" if metric == "seconds" and cuda and cpu else ""
        lines.append(f"| {case} | {system} | {metric} | "
                     f"{fmt(cuda) if cuda is not None else ''} | "
                     f"{fmt(cpu) if cpu is not None else ''} | {ratio} |")
    return "\n".join(lines)


def main(paths):
    out = ["# GPU benchmarks", ""]
    for path in paths:
        with open(path) as f:
            doc = json.load(f)
        out += [f"## {doc['family']}", "",
                f"Device: {doc['machine']}. Command: `{doc['command']}` "
                f"(`{os.path.basename(path)}`). CPU figures are the device "
                "machine's 16-core host on the CPU backend.", "", table(doc), ""]
    target = os.path.join(os.path.dirname(paths[0]), "gpu.md")
    with open(target, "w") as f:
        f.write("\n".join(out))
    print(f"wrote {target}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
