#!/usr/bin/python3
"""Faults a solver service must survive, against a real solverd:
- watchers that stop reading their streams: the server's memory stays
  bounded and other clients are served;
- a full disk under --state_dir: CreateTuner gets RESOURCE_EXHAUSTED naming
  the cause, the server keeps serving, and works again once there is room
  (needs root to mount a small tmpfs; skipped, saying so, without).

Run: PYTHONPATH=<build>/python /usr/bin/python3 fault_test.py --solverd PATH
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
import unittest

import grpc
import numpy as np

import solverd
from server_fixture import Server
from solverd.v1 import jobs_pb2_grpc

ARGS = None
sor = solverd.sor_pb2


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def chatty_problem(seed):
    """A long Sinkhorn run that reports progress at every check."""
    cost = np.random.default_rng(seed).random((300, 300))
    return solverd.ot_pb2.OtProblem(cost=solverd.tensor(cost), eta=1200, tolerance=1e-14,
                                    max_iterations=100_000_000, check_every=1,
                                    method=solverd.ot_pb2.OT_METHOD_SINKHORN)


class SlowWatchers(unittest.TestCase):
    def test_watchers_that_stop_reading_do_not_grow_the_server(self):
        with tempfile.TemporaryDirectory() as d:
            server = Server(ARGS.solverd, d, "--cpu_workers=3", "--progress_interval_ms=0",
                            "--grace_period=1s")
            try:
                client = solverd.Client(server.address, timeout=10)
                jobs = [client.submit(chatty_problem(k)).id for k in range(2)]
                # Forty streams, each read once and then left alone.
                stalled = []
                for k in range(40):
                    channel = grpc.insecure_channel(server.address)
                    stub = jobs_pb2_grpc.SolverServiceStub(channel)
                    stream = stub.WatchJob(solverd.jobs_pb2.WatchJobRequest(job_id=jobs[k % 2]))
                    next(stream)
                    stalled.append((channel, stream))
                time.sleep(1)
                start = rss_mb(server.process.pid)
                time.sleep(4)  # the jobs keep emitting progress events meanwhile
                grown = rss_mb(server.process.pid) - start
                print(f"\nserver RSS {start:.0f} MiB -> {start + grown:.0f} MiB over 4 s with "
                      "40 stalled watchers", file=sys.stderr)
                self.assertLess(grown, 64, f"server RSS grew {grown:.0f} MiB")
                # Others are still served (on the third lane) while the streams hang.
                quick = solverd.ot_pb2.OtProblem(cost=solverd.tensor(np.eye(4)), reg=0.1)
                self.assertGreaterEqual(client.solve(quick, device="cpu", timeout=30)
                                        .transport_cost, 0)
                for job in jobs:
                    client.cancel(job)
                for channel, stream in stalled:
                    stream.cancel()
                    channel.close()
                client.close()
            finally:
                server.stop()


class FullStateDisk(unittest.TestCase):
    def test_full_disk_gives_resource_exhausted_and_the_server_carries_on(self):
        with tempfile.TemporaryDirectory() as d:
            disk = os.path.join(d, "disk")
            os.mkdir(disk)
            mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", disk],
                                     capture_output=True)
            if mounted.returncode != 0:
                self.skipTest("needs root to mount a small tmpfs: " + mounted.stderr.decode())
            try:
                server = Server(ARGS.solverd, d, f"--state_dir={disk}/state")
                try:
                    self.check_full_disk(server, disk)
                finally:
                    server.stop()
            finally:
                subprocess.run(["umount", disk], check=True)

    def check_full_disk(self, server, disk):
        with solverd.Client(server.address, timeout=10) as client:
            with open(os.path.join(disk, "filler"), "wb") as f:  # take all but a sliver
                try:
                    f.write(b"x" * (64 << 10))
                except OSError:
                    pass
            with self.assertRaises(grpc.RpcError) as raised:
                for k in range(64):  # the sliver left may hold a tuner or two
                    client.create_tuner(f"t{k}", sor.TUNER_ALGORITHM_TSALLIS_INF)
            self.assertEqual(raised.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertIn("No space left on device", raised.exception.details())
            quick = solverd.ot_pb2.OtProblem(cost=solverd.tensor(np.eye(3)), reg=0.1)
            self.assertGreaterEqual(client.solve(quick, timeout=30).transport_cost, 0)
            os.remove(os.path.join(disk, "filler"))
            self.assertEqual(client.create_tuner("after", sor.TUNER_ALGORITHM_TSALLIS_INF).name,
                             "after")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--solverd", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
