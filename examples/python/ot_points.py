#!/usr/bin/python3
"""Optimal transport between two random point clouds, watched as it runs.

    PYTHONPATH=build/python examples/python/ot_points.py [--server HOST:PORT]
"""
import argparse

import numpy as np

import solverd

parser = argparse.ArgumentParser()
parser.add_argument("--server", default="127.0.0.1:50051")
args = parser.parse_args()

rng = np.random.default_rng(0)
problem = solverd.ot_pb2.OtProblem(
    points=solverd.ot_pb2.PointClouds(x=solverd.tensor(rng.random((300, 2))),
                                      y=solverd.tensor(rng.random((400, 2)) + 0.5)),
    reg=0.01, tolerance=1e-9, method=solverd.ot_pb2.OT_METHOD_AUTO)
with solverd.Client(args.server) as client:
    job = client.submit(problem)
    for event in client.watch(job.id):
        if event.HasField("progress"):
            p = event.progress
            print(f"{p.stage:9s} iteration {p.iteration:5d}  marginal error {p.residual:.2e}")
    result = client.result(job.id)
print(f"cost {result.transport_cost:.6f} after {result.sinkhorn_iterations} Sinkhorn and "
      f"{result.newton_iterations} Newton steps, error {result.marginal_error:.1e}")
