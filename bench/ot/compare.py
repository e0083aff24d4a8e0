"""Side-by-side Sinkhorn benchmark: solverd (via ot_bench) vs POT.

Both solve min <C,P> + reg * sum P log P with uniform marginals, eta = 1/reg,
on squared Euclidean costs between uniform random point clouds in [0,1]^2.
Both stop on their own marginal criterion; the plan each returns is then
checked here the same way (L1 marginal error, transport cost) so the time
comparison is between answers of known quality.
"""
import argparse
import json
import os
import platform
import subprocess
import tempfile
import time

import numpy as np
import ot


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    return platform.processor()


def plan_figures(P, C, a, b):
    err = np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum()
    return float(err), float((P * C).sum())


def run_solverd(binary, C, eta, tol, max_iter, threads, tmp):
    n, m = C.shape
    cost_path, pot_path = os.path.join(tmp, "cost.f64"), os.path.join(tmp, "pot.f64")
    C.astype("<f8").tofile(cost_path)
    out = subprocess.run([binary, cost_path, str(n), str(m), repr(eta), repr(tol), str(max_iter),
                          str(threads), pot_path], check=True, capture_output=True, text=True)
    fig = json.loads(out.stdout)
    pot = np.fromfile(pot_path, dtype="<f8")
    x, y = pot[:n], pot[n:]
    P = np.exp(eta * (x[:, None] + y[None, :] - C) - 1)
    return fig, P


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ot-bench", required=True)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sizes = [200, 500] if args.quick else [200, 500, 1000, 2000]
    regs = [0.05, 0.01]
    tol, max_iter = 1e-6, 100000
    rng = np.random.default_rng(0)
    records, rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            X, Y = rng.random((n, 2)), rng.random((n, 2))
            C = ot.dist(X, Y)  # squared Euclidean
            a = b = np.full(n, 1.0 / n)
            for reg in regs:
                case = f"random_points_n{n}_reg{reg}"
                eta = 1.0 / reg
                results = {}
                for threads in (1, 2):
                    fig, P = run_solverd(args.ot_bench, C, eta, tol, max_iter, threads, tmp)
                    err, cost = plan_figures(P, C, a, b)
                    results[f"solverd-sinkhorn-{threads}t"] = (fig["seconds"], fig["iterations"], err, cost)
                start = time.perf_counter()
                P, log = ot.sinkhorn(a, b, C, reg, method="sinkhorn_log", numItermax=max_iter,
                                     stopThr=tol, log=True)
                seconds = time.perf_counter() - start
                err, cost = plan_figures(P, C, a, b)
                results["pot-sinkhorn_log"] = (seconds, int(log.get("niter", -1)), err, cost)
                for system, (sec, iters, err, cost) in results.items():
                    for metric, value in (("seconds", sec), ("iterations", iters),
                                          ("marginal_error", err), ("transport_cost", cost)):
                        records.append({"case": case, "system": system, "backend": "cpu",
                                        "metric": metric, "value": value})
                pot_s = results["pot-sinkhorn_log"][0]
                for system, (sec, iters, err, cost) in results.items():
                    rows.append((case, system, sec, iters, err, cost, pot_s / sec))
    machine = cpu_model()
    command = "bench/ot/run" + (" --quick" if args.quick else "")
    os.makedirs("bench/results", exist_ok=True)
    with open("bench/results/ot.json", "w") as f:
        json.dump({"family": "ot", "machine": machine, "command": command, "records": records},
                  f, indent=1)
    with open("bench/results/ot.md", "w") as f:
        f.write(f"# ot benchmark: solverd Sinkhorn vs POT\n\nMachine: {machine}. "
                f"Command: `{command}`. POT {ot.__version__}, numpy {np.__version__}.\n"
                f"Tolerance {tol} (solverd: L1 marginal error; POT: its own stopThr), "
                "uniform marginals, squared Euclidean cost on random points in [0,1]^2. "
                "Marginal error and cost are recomputed here from each returned plan.\n\n"
                "| case | system | seconds | iterations | L1 marginal error | transport cost | "
                "speed-up vs POT |\n|---|---|---|---|---|---|---|\n")
        for case, system, sec, iters, err, cost, ratio in rows:
            f.write(f"| {case} | {system} | {sec:.4f} | {iters} | {err:.2e} | {cost:.6f} | "
                    f"{ratio:.2f}x |\n")
    print(open("bench/results/ot.md").read())


if __name__ == "__main__":
    main()
