#!/usr/bin/python3
"""A sequence of shifted 2D Poisson systems solved by SOR, with omega learned
across them by a contextual bandit tuner.

    PYTHONPATH=build/python examples/python/sor_tuned.py [--server HOST:PORT]
"""
import argparse

import numpy as np

import solverd

sor = solverd.sor_pb2


def poisson_2d(side, shift):
    """CSR arrays of the 5-point Laplacian on a side x side grid, plus shift * I."""
    row_ptr, cols, values = [0], [], []
    for i in range(side):
        for j in range(side):
            for di, dj, v in ((-1, 0, -1.0), (0, -1, -1.0), (0, 0, 4.0 + shift),
                              (0, 1, -1.0), (1, 0, -1.0)):
                if 0 <= i + di < side and 0 <= j + dj < side:
                    cols.append((i + di) * side + j + dj)
                    values.append(v)
            row_ptr.append(len(cols))
    return row_ptr, cols, values


parser = argparse.ArgumentParser()
parser.add_argument("--server", default="127.0.0.1:50051")
args = parser.parse_args()

with solverd.Client(args.server) as client:
    client.create_tuner("poisson-example", sor.TUNER_ALGORITHM_CHEBCB,
                        context_min=0.0, context_max=1.0)
    sequence = sor.SorSequence(tuner="poisson-example", method=sor.SOR_METHOD_SOR,
                               omit_solutions=True)
    rng = np.random.default_rng(1)
    for shift in rng.random(20):
        system = sequence.systems.add(a=solverd.csr_matrix(*poisson_2d(16, shift)),
                                      b=solverd.tensor(rng.random(256)), context=shift)
    result = client.solve(sequence)
    for solve in result.solves:
        print(f"system {solve.system:2d}: omega {solve.omega:.3f}, {solve.iterations} iterations")
    print(f"total {result.total_iterations} iterations; tuner has seen "
          f"{client.get_tuner('poisson-example').systems} systems")
