"""The host factorization part of the quant benchmark (cases
factorization_n4096, _n11008, _n28672): GPTQ's Cholesky and triangular
inverse by LAPACK (OpenBLAS behind Debian's liblapack) against the
hand-rolled loops it replaced, timed by factorization_bench
(bench/quant/factorization_bench.cc); the loops only up to 11008 wide,
where they already take minutes."""
import json
import os
import subprocess

WIDTHS = (4096, 11008, 28672)  # Llama-7B's hidden and MLP widths, Llama-70B's MLP


def run_factorization(build, records, rows):
    binary = os.path.join(build, "kernels", "quant_factorization_bench")
    out = subprocess.run([binary, "--threads=2", "--loops-up-to=12000",
                          *map(str, WIDTHS)], check=True, capture_output=True, text=True)
    seconds = {}
    for line in out.stdout.splitlines():
        r = json.loads(line)
        seconds[(r["n"], r["system"])] = r["seconds"]
        records.append({"case": f"factorization_n{r['n']}", "system": r["system"],
                        "backend": "cpu", "metric": "seconds", "value": r["seconds"]})
        print(line, flush=True)
    for n in WIDTHS:
        lapack, loops = seconds.get((n, "solverd-lapack")), seconds.get((n, "solverd-hand-rolled"))
        rows.append(f"| {n} | {lapack:.2f} | " + (f"{loops:.2f} | {loops / lapack:.1f}x |"
                                                   if loops else "not run | |"))


def section(rows):
    return ["## GPTQ's host factorization (cases factorization_n4096, _n11008, _n28672)", "",
            "The upper Cholesky factor of H^-1 (one Cholesky, one triangular inverse) of a "
            "damped n x n matrix, float64, 2 threads: LAPACK's dpotrf + dtrtri (Debian's "
            "liblapack, OpenBLAS behind it) against the loops solverd used before. The loops "
            "are not run at 28672 (cubic in n: about (28672/11008)^3 = 17.7x their 11008 "
            "time).", "",
            "| n | solverd-lapack (s) | solverd-hand-rolled (s) | speed-up |",
            "|---|---|---|---|", *rows, ""]
