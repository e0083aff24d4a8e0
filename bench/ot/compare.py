"""ot benchmark, side by side in one run (bench/ot/run drives it):

1. pot_n{200,500,2000,5000}: solverd's Sinkhorn (over-relaxed, omega
   tuned: solverd-sinkhorn; plain: solverd-sinkhorn-classic) and SNS against POT's
   ot.sinkhorn (plain) and ot.sinkhorn(method="sinkhorn_log") on uniform
   random point clouds in [0,1]^2 with squared Euclidean cost, reg = 0.01
   (eta = 100), run to L1 marginal error 1e-6. solverd-sinkhorn,
   solverd-sns and solverd-auto time the solver alone (bench/ot/ot_bench.cc,
   its solves repeated in one process as POT's are in this one; the first
   solve of the process, which also faults in the solver's code and starts
   its threads, is recorded as first_seconds);
   solverd-py-auto and solverd-py-sinkhorn time the Python SDK's
   solverd.ot.sinkhorn through a loopback server, from the call to the
   numpy plan (costs sent, plan formed from the returned potentials).
   Each POT and SDK row is the fastest of up to 15 runs while they take
   under 15 s together (POT's sinkhorn_log at n = 5000 runs once); the
   solver-alone rows are the fastest of three rounds, interleaved between
   the methods, of up to 5 runs each under 5 s: on the shared 2-core VM
   single runs of the same call vary by up to 2x, and with 5 runs the rows
   of two methods doing the same iterations differed by up to 20%.
3. overhead_n800: solverd.ot.solve on an 800 x 800 cost at one iteration,
   submit to result through the SDK (fastest of 5): what a call costs
   beyond the solve.
2. SNS (and auto) against our Sinkhorn on the paper's cases, to error
   1e-9: random_assignment_n500 (uniform random cost, eta = 1200) and
   densities_w{1,2}_28x28 (two Gaussian mixtures on a 28 x 28 grid).
   Every solverd-sns run also reports newton_step_in_sinkhorn_iterations:
   a Newton step's time in Sinkhorn iterations of the same run.
4. pot_n2000_eta{20,30,50}: solverd's three methods on the point clouds
   of pot_n2000 at a smaller eta, to error 1e-6, where Sinkhorn needs 50,
   70 and 120 iterations: around the point where auto should move on to
   Newton (it should keep Sinkhorn at eta = 20).

Every plan is checked here the same way: the L1 marginal error and the cost
<C,P> are recomputed from what each solver returned. POT stops on the L2
norm of its column error, checked every 10 iterations; it gets
stopThr = 1e-6 / sqrt(n), which bounds its L1 error by 1e-6.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np
import ot

try:  # the SDK's rows, with --sdk-server (PYTHONPATH=<build>/python)
    import solverd
    import solverd.ot
except ImportError:
    solverd = None


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    return "unknown cpu"


def plan_figures(P, C, a, b):
    err = np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum()
    return float(err), float((P * C).sum())


class Solverd:
    def __init__(self, binary, tmp):
        self.binary, self.tmp = binary, tmp

    def solve(self, C, eta, tol, methods, a=None, b=None, rounds=3, runs=5, budget=5.0):
        """{method: (seconds, iterations, P, figures)} for each of `methods`:
        the fastest of `rounds` interleaved rounds, each an ot_bench process
        per method timing up to `runs` solves while they take under `budget`
        seconds together. A slow stretch of the shared VM then falls on every
        method's row alike: with 15 solves of one method in a row, pot_n500
        once read auto at 1.36x SNS, against 1.01-1.08 interleaved.
        first_seconds is the first round's."""
        n, m = C.shape
        path = lambda name: os.path.join(self.tmp, name)
        C.astype("<f8").tofile(path("cost.f64"))
        if a is not None:
            a.astype("<f8").tofile(path("a.f64"))
            b.astype("<f8").tofile(path("b.f64"))
        best, first = {}, {}
        for _ in range(rounds):
            for method in methods:
                argv = [self.binary, f"--runs={runs}", f"--budget={budget}", path("cost.f64"),
                        str(n), str(m), repr(eta), repr(tol), "1000000", str(os.cpu_count()),
                        path("pot.f64"), method]
                if a is not None:
                    argv += [path("a.f64"), path("b.f64")]
                out = subprocess.run(argv, check=True, capture_output=True, text=True)
                fig = json.loads(out.stdout)
                first.setdefault(method, fig["first_seconds"])
                if method in best and best[method][0] <= fig["seconds"]:
                    continue
                pot = np.fromfile(path("pot.f64"), dtype="<f8")
                P = np.exp(eta * (pot[:n, None] + pot[None, n:] - C) - 1)
                best[method] = (fig["seconds"], fig["iterations"], P, fig)
        for method, (_, _, _, fig) in best.items():
            fig["first_seconds"] = first[method]
        return best


def newton_step_in_sinkhorn_iterations(fig):
    """One Newton step's time over one Sinkhorn iteration's, from the stage
    times ot_bench reports (None without both stages)."""
    if not fig["newton_iterations"] or not fig["sinkhorn_iterations"]:
        return None
    return (fig["newton_seconds"] / fig["newton_iterations"]) / \
        (fig["sinkhorn_seconds"] / fig["sinkhorn_iterations"])


# solverd's methods timed alone (ot_bench): auto should be within 1.1x the
# faster of sinkhorn and sns (issue #25). sinkhorn is over-relaxed with a
# tuned omega (the default); sinkhorn-classic is plain Sinkhorn, as before.
SOLVERD_METHODS = ("sinkhorn", "sns", "auto", "sinkhorn-classic")


def fastest(solve, budget=15.0, runs=15):
    """The fastest of up to `runs` runs of solve() -> (seconds, ...), run
    again only while they have taken under `budget` seconds together: one
    slow page-faulting or descheduled run on a shared 2-core VM otherwise
    decides a row."""
    best, spent = None, 0.0
    for _ in range(runs):
        got = solve()
        spent += got[0]
        if best is None or got[0] < best[0]:
            best = got
        if spent >= budget:
            break
    return best


def pot_solve(C, a, b, reg, tol, method):
    start = time.perf_counter()
    P, log = ot.sinkhorn(a, b, C, reg, method=method, numItermax=1000000,
                         stopThr=tol / np.sqrt(len(b)), log=True)
    return time.perf_counter() - start, int(log.get("niter", -1)), P


def sdk_solve(client, C, a, reg, tol, method):
    """(seconds, iterations, plan) of solverd.ot.sinkhorn through the server."""
    start = time.perf_counter()
    P, log = solverd.ot.sinkhorn(a, a, C, reg, method=method, stopThr=tol,
                                 numItermax=1000000, log=True, client=client)
    return time.perf_counter() - start, log["niter"], P


def sdk_call_seconds(client, C):
    start = time.perf_counter()
    solverd.ot.solve(M=C, reg=0.01, max_iter=1, plan=False, client=client)
    return time.perf_counter() - start


def grid_densities(side, seed):
    rng = np.random.default_rng(seed)
    g = np.linspace(0, 1, side)
    X = np.array([(u, v) for u in g for v in g])
    dens = []
    for _ in range(2):
        d = np.zeros(len(X))
        for _ in range(3):
            mu, s = rng.random(2), 0.05 + 0.15 * rng.random()
            d += rng.random() * np.exp(-((X - mu) ** 2).sum(1) / (2 * s * s))
        dens.append(d / d.sum())
    return X, dens[0], dens[1]


def auto_section(rows):
    """solverd-auto against the faster of solverd-sinkhorn and solverd-sns."""
    seconds = {(case, system): sec for case, system, sec, *_ in rows}
    out = ("\n## auto against the faster method\n\nsolverd-auto's time over the faster of "
           "solverd-sinkhorn and solverd-sns on the same case (target: at most 1.1).\n\n"
           "| case | auto | faster | ratio |\n|---|---|---|---|\n")
    for case in dict.fromkeys(case for case, _ in seconds):
        if (case, "solverd-auto") not in seconds:
            continue
        faster = min(seconds[(case, "solverd-sinkhorn")], seconds[(case, "solverd-sns")])
        auto = seconds[(case, "solverd-auto")]
        out += f"| {case} | {auto:.4f} | {faster:.4f} | {auto / faster:.2f} |\n"
    return out


def sns_section(rows):
    """solverd-sns's (and solverd-auto's) speed-up over each Sinkhorn on the
    cases of issue #25's targets, which were set when solverd's Sinkhorn was
    plain."""
    seconds = {(case, system): sec for case, system, sec, *_ in rows}
    out = ("\n## SNS against Sinkhorn, tuned and plain\n\nsolverd-sns's (and solverd-auto's) "
           "speed-up over solverd-sinkhorn (over-relaxed, the default) and over "
           "solverd-sinkhorn-classic (targets for SNS, set against plain Sinkhorn: 200x on "
           "random assignment, 10x on the densities).\n\n| case | SNS over sinkhorn | "
           "SNS over sinkhorn-classic | auto over sinkhorn | auto over sinkhorn-classic |\n"
           "|---|---|---|---|---|\n")
    for case in dict.fromkeys(case for case, _ in seconds):
        if (case, "solverd-sinkhorn-classic") not in seconds or case.startswith("pot_"):
            continue
        cells = [seconds[(case, reference)] / seconds[(case, system)]
                 for system in ("solverd-sns", "solverd-auto")
                 for reference in ("solverd-sinkhorn", "solverd-sinkhorn-classic")]
        out += f"| {case} | " + " | ".join(f"{cell:.1f}x" for cell in cells) + " |\n"
    return out


def first_solve_section(firsts):
    out = ("\n## first solve of a process\n\nsolverd's rows above are the fastest solve in "
           "one ot_bench process; its first solve also faults in the solver's code and starts "
           "its worker threads, as a server does once.\n\n"
           "| case | system | first solve s | fastest s |\n|---|---|---|---|\n")
    return out + "".join(f"| {case} | {system} | {first:.4f} | {best:.4f} |\n"
                         for case, system, first, best in firsts)


def newton_section(steps):
    out = ("\n## newton_step_in_sinkhorn_iterations\n\nsolverd-sns: one Newton step's time "
           "(its own stage time over its steps) in Sinkhorn iterations (the Sinkhorn stage's "
           "time over its iterations) of the same run (target on pot_*: at most 6), and the "
           "share of the Newton stage's time spent in conjugate gradient (cg_seconds).\n\n"
           "| case | Newton step / Sinkhorn iteration | CG share of Newton time |\n"
           "|---|---|---|\n")
    return out + "".join(f"| {case} | {step:.1f} | {share:.2f} |\n"
                         for case, step, share in steps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ot-bench", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sdk-server", help="host:port of a solverd for the SDK's rows")
    ap.add_argument("--server-run", action="append", default=[],
                    help="NAME=FILE: solverd_loadgen JSON for the batched_n64 case")
    args = ap.parse_args()
    records, rows, newton_steps, firsts = [], [], [], []

    def record(case, system, seconds, iters, P, C, a, b, ref_seconds, fig=None):
        err, cost = plan_figures(P, C, a, b)
        metrics = [("seconds", seconds), ("iterations", iters), ("marginal_error", err),
                   ("cost", cost)]
        if fig is not None:
            metrics += [("sinkhorn_seconds", fig["sinkhorn_seconds"]),
                        ("newton_seconds", fig["newton_seconds"]),
                        ("cg_seconds", fig["cg_seconds"]),
                        ("first_seconds", fig["first_seconds"])]
            firsts.append((case, system, fig["first_seconds"], seconds))
            step = newton_step_in_sinkhorn_iterations(fig)
            if system == "solverd-sns" and step is not None:
                metrics.append(("newton_step_in_sinkhorn_iterations", step))
                newton_steps.append((case, step, fig["cg_seconds"] / fig["newton_seconds"]))
        for metric, value in metrics:
            records.append({"case": case, "system": system, "backend": "cpu",
                            "metric": metric, "value": value})
        rows.append((case, system, seconds, iters, err, cost, ref_seconds / seconds))

    sdk = solverd.Client(args.sdk_server) if args.sdk_server else None
    with tempfile.TemporaryDirectory() as tmp:
        bench = Solverd(args.ot_bench, tmp)
        rng = np.random.default_rng(0)
        for n in ([200, 500, 2000] if args.quick else [200, 500, 2000, 5000]):
            X, Y = rng.random((n, 2)), rng.random((n, 2))
            C, a = ot.dist(X, Y), np.full(n, 1.0 / n)
            reg, tol, case = 0.01, 1e-6, f"pot_n{n}"
            results = [(f"pot-{method}",) + fastest(lambda: pot_solve(C, a, a, reg, tol, method))
                       for method in ("sinkhorn_log", "sinkhorn")]
            for method, got in bench.solve(C, 1 / reg, tol, SOLVERD_METHODS).items():
                results.append((f"solverd-{method}",) + got)
            if sdk is not None:
                for method in ("auto", "sinkhorn"):
                    results.append((f"solverd-py-{method}",)
                                   + fastest(lambda: sdk_solve(sdk, C, a, reg, tol, method)))
            ref = results[0][1]  # speed-up relative to POT's sinkhorn_log
            for system, sec, iters, P, *fig in results:
                record(case, system, sec, iters, P, C, a, a, ref, *fig)

        cases = [("random_assignment_n500", np.random.default_rng(1).random((500, 500)),
                  np.full(500, 1 / 500), np.full(500, 1 / 500), 1200.0, 1e-9)]
        X, da, db = grid_densities(28, 2)
        diff = X[:, None, :] - X[None, :, :]
        cases.append(("densities_w1_28x28", np.abs(diff).sum(2), da, db, 200.0, 1e-9))
        cases.append(("densities_w2_28x28", (diff ** 2).sum(2), da, db, 500.0, 1e-9))
        clouds = np.random.default_rng(0)
        for n in (200, 500):  # pot_n2000's points: the generator's third draw
            clouds.random((n, 2)), clouds.random((n, 2))
        X, Y = clouds.random((2000, 2)), clouds.random((2000, 2))
        uniform = np.full(2000, 1 / 2000)
        for eta in (20.0, 30.0, 50.0):
            cases.append((f"pot_n2000_eta{eta:.0f}", ot.dist(X, Y), uniform, uniform, eta, 1e-6))
        for case, C, a, b, eta, tol in cases:
            results = [(f"solverd-{method}",) + got
                       for method, got in bench.solve(C, eta, tol, SOLVERD_METHODS, a, b).items()]
            ref = results[0][1]
            for system, sec, iters, P, fig in results:
                record(case, system, sec, iters, P, C, a, b, ref, fig)

    overhead = None
    if sdk is not None:
        C = np.random.default_rng(5).random((800, 800))
        overhead = min(sdk_call_seconds(sdk, C) for _ in range(5))
        records.append({"case": "overhead_n800", "system": "solverd-py", "backend": "cpu",
                        "metric": "seconds", "value": overhead})

    server_rows = []
    for run in args.server_run:
        name, path = run.split("=", 1)
        figures = json.load(open(path))
        records.append({"case": "batched_n64", "system": f"solverd-{name}", "backend": "cpu",
                        "metric": "problems_per_second", "value": figures["jobs_per_second"]})
        server_rows.append((name, figures["jobs_per_second"], figures["failures"]))

    machine = cpu_model()
    command = "bench/ot/run" + (" --quick" if args.quick else "")
    os.makedirs("bench/results", exist_ok=True)
    with open("bench/results/ot.json", "w") as f:
        json.dump({"family": "ot", "machine": machine, "command": command, "records": records},
                  f, indent=1)
    with open("bench/results/ot.md", "w") as f:
        f.write(f"# ot benchmark\n\nMachine: {machine}. Command: `{command}`. "
                f"POT {ot.__version__}, numpy {np.__version__}. solverd on the CPU backend, "
                f"{os.cpu_count()} threads.\n\n" + __doc__.split("\n\n", 1)[1].replace("\n", " ")
                + "\n\nSpeed-up: against POT's sinkhorn_log for pot_* cases, against "
                "solverd-sinkhorn for the others.\n\n"
                "| case | system | seconds | iterations | L1 marginal error | cost | speed-up |\n"
                "|---|---|---|---|---|---|---|\n")
        for case, system, sec, iters, err, cost, ratio in rows:
            f.write(f"| {case} | {system} | {sec:.4f} | {iters} | {err:.2e} | {cost:.8f} | "
                    f"{ratio:.1f}x |\n")
        f.write(auto_section(rows) + sns_section(rows) + newton_section(newton_steps)
                + first_solve_section(firsts))
        if overhead is not None:
            f.write(f"\n## overhead_n800\n\nsolverd.ot.solve on an 800 x 800 cost at one "
                    f"iteration, submit to result through the Python SDK and a loopback "
                    f"server, fastest of 5: {overhead * 1000:.1f} ms.\n")
        if server_rows:
            f.write("\n## batched_n64\n\n1,000 problems of n = 64 (random point clouds) submitted "
                    "and watched through a loopback solverd by 8 clients. unbatched: two CPU lanes, "
                    "--max-batch=1; batched: one lane of two threads, --max-batch=16, "
                    "--max-queue-delay-us=2000.\n\n| system | problems/s | failures |\n|---|---|---|\n")
            for name, rate, failures in server_rows:
                f.write(f"| solverd-{name} | {rate:.1f} | {failures} |\n")
    print(open("bench/results/ot.md").read())


if __name__ == "__main__":
    main()
