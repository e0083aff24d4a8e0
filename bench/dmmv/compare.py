#!/usr/bin/python3
"""dmmv benchmark: solverd's DMMV heuristic (through a running server)
against CBC solving the same problem as a MILP (min t subject to
-t <= w_k (X v - b)_k <= t, v on the integer level grid), and against
plain rounding, on FIR low-pass designs and quantization-style rounding
problems. Writes bench/results/dmmv.{json,md}.
   compare.py --server HOST:PORT [--quick] [--cbc-seconds S]
"""
import argparse
import json
import os
import re
import subprocess
import tempfile
import time

import numpy as np

import solverd

dmmv = solverd.dmmv_pb2


def fir_matrix(order, edges):
    """The rows and targets solverd's FIR builder makes (kernels/dmmv/fir.cc)."""
    half, points = order // 2, 16 * order
    rows, b = [], []
    for i in range(points + 1):
        w = i / points
        if w <= edges[0]:
            desired = 1
        elif w >= edges[1]:
            desired = 0
        else:
            continue
        rows.append([2 * np.cos((half - n) * w * np.pi) for n in range(half)] + [1.0])
        b.append(desired)
    return np.array(rows), np.array(b, dtype=float)


def write_lp(path, x, b, lo, step, count):
    """min t s.t. |X (lo + step q) - b| <= t, q integer in [0, count-1]."""
    n, m = x.shape
    shift = b - lo * x.sum(axis=1)
    with open(path, "w") as f:
        f.write("Minimize\n obj: t\nSubject To\n")
        for k in range(n):
            terms = " ".join(f"{x[k, j] * step:+.17g} q{j}" for j in range(m))
            f.write(f" u{k}: {terms} - t <= {shift[k]:.17g}\n")
            f.write(f" l{k}: {terms} + t >= {shift[k]:.17g}\n")
        f.write("Bounds\n")
        for j in range(m):
            f.write(f" 0 <= q{j} <= {count - 1}\n")
        f.write(" t >= 0\nGeneral\n " + " ".join(f"q{j}" for j in range(m)) + "\nEnd\n")


def run_cbc(x, b, lo, step, count, seconds):
    with tempfile.TemporaryDirectory() as d:
        lp, sol = os.path.join(d, "model.lp"), os.path.join(d, "sol.txt")
        write_lp(lp, x, b, lo, step, count)
        start = time.time()
        out = subprocess.run(["cbc", lp, "sec", str(seconds), "solve", "solu", sol],
                             capture_output=True, text=True).stdout
        elapsed = time.time() - start
        optimal = "Optimal" in open(sol).readline() if os.path.exists(sol) else False
        q = np.zeros(x.shape[1])
        if os.path.exists(sol):
            for line in open(sol):
                m = re.match(r"\s*\d+\s+q(\d+)\s+(\S+)", line)
                if m:
                    q[int(m.group(1))] = round(float(m.group(2)))
    values = lo + step * q
    return {"t": float(np.abs(x @ values - b).max()), "seconds": elapsed, "optimal": optimal,
            "found": "Objective value" in out or optimal}


def run_ours(client, problem):
    result = client.solve(problem, timeout=600)
    r = result.instances[0]
    return {"t": r.max_violation, "seconds": result.seconds,
            "rounding_t": r.start_max_violation}


def cases(quick):
    firs = [(20, 8), (30, 8), (40, 10)] if quick else [(20, 8), (30, 8), (40, 10), (60, 10)]
    for order, bits in firs:
        edges = [0.3, 0.4]
        x, b = fir_matrix(order, edges)
        scale = 2.0 ** (bits - 1)
        spec = dmmv.FirDesign(type=dmmv.FIR_TYPE_LOW_PASS, order=order, edges=edges, bits=bits)
        yield (f"fir_lowpass_order{order}_{bits}bit", dmmv.DmmvProblem(fir=spec), x, b,
               -1.0, 1 / scale, int(2 * scale))
    rng = np.random.default_rng(7)
    for n, m in ([(128, 32)] if quick else [(128, 32), (256, 64)]):
        x = rng.normal(size=(n, m))
        w = rng.uniform(-1, 1, m)
        b = x @ w
        levels = dmmv.DmmvLevels(lo=-1, step=2 / 15, count=16)  # 4 bits
        inst = dmmv.DmmvInstance(b=solverd.tensor(b), levels=[levels],
                                 start_values=solverd.tensor(w))
        problem = dmmv.DmmvProblem(direct=dmmv.DmmvDirect(x=solverd.tensor(x), instances=[inst]))
        yield f"quant_rounding_{n}x{m}_4bit", problem, x, b, -1.0, 2 / 15, 16


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cbc-seconds", type=float, default=None)
    args = parser.parse_args()
    cbc_seconds = args.cbc_seconds or (20 if args.quick else 120)
    with open("/proc/cpuinfo") as f:
        cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    machine = f"{cpu} ({os.cpu_count()} cores)"
    command = "bench/dmmv/run" + (" --quick" if args.quick else "")
    records, rows = [], []
    with solverd.Client(args.server) as client:
        for name, problem, x, b, lo, step, count in cases(args.quick):
            ours = run_ours(client, problem)
            cbc = run_cbc(x, b, lo, step, count, cbc_seconds)
            for system, figures in (("solverd-dmmv", ours), ("cbc", cbc)):
                records += [{"case": name, "system": system, "backend": "cpu", "metric": k,
                             "value": float(v)} for k, v in figures.items()]
            rows.append((name, ours, cbc))
            print(name, ours, cbc, flush=True)
    os.makedirs("bench/results", exist_ok=True)
    json.dump({"family": "dmmv", "machine": machine, "command": command, "records": records},
              open("bench/results/dmmv.json", "w"), indent=1)
    with open("bench/results/dmmv.md", "w") as out:
        out.write(f"# dmmv: solverd vs CBC\n\nMachine: {machine}. Command: `{command}`. "
                  f"CBC (Debian coinor-cbc) solves the same MILP with a {cbc_seconds:g} s limit; "
                  "t is the largest violation max_k |(X v - b)_k| of the returned levels, "
                  "recomputed here for CBC. solverd: default options (200 LNS rounds), one "
                  "CPU lane.\n\n"
                  "| case | rounding t | solverd t | CBC t | solverd / CBC t | solverd s | CBC s "
                  "| CBC s / solverd s | CBC optimal |\n|---|---|---|---|---|---|---|---|---|\n")
        for name, o, c in rows:
            out.write(f"| {name} | {o['rounding_t']:.5f} | {o['t']:.5f} | {c['t']:.5f} | "
                      f"{o['t'] / c['t']:.3f} | {o['seconds']:.3f} | {c['seconds']:.1f} | "
                      f"{c['seconds'] / o['seconds']:.0f}x | "
                      f"{'yes' if c['optimal'] else 'no (time limit)'} |\n")
    print(open("bench/results/dmmv.md").read())


if __name__ == "__main__":
    main()
