#!/usr/bin/python3
"""Faults and limits a solver service must handle, against a real solverd:
- watchers that stop reading their streams: the server's memory stays
  bounded and other clients are served;
- a full disk under --state_dir: CreateTuner and SubmitJob get
  RESOURCE_EXHAUSTED naming the cause, finished jobs stay readable, and
  both work again once there is room
  (needs root to mount a small tmpfs; skipped, saying so, without);
- a job that runs out of host memory (the server under an address-space
  limit, admission control told otherwise) fails alone with
  RESOURCE_EXHAUSTED; the server goes on serving;
- problems past their family's size limit: RESOURCE_EXHAUSTED at submit,
  naming the flag.

Run: PYTHONPATH=<build>/python /usr/bin/python3 fault_test.py --solverd PATH
"""
import argparse
import os
import resource
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
                                    method=solverd.ot_pb2.OT_METHOD_SINKHORN, overrelaxation=1)


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
                # The jobs keep emitting progress events meanwhile. Memory may
                # settle at first (stream buffers fill, a job's stored events
                # reach their cap) but must then stay flat.
                samples = []
                for _ in range(4):
                    time.sleep(2)
                    samples.append(rss_mb(server.process.pid))
                print(f"\nserver RSS every 2 s with 40 stalled watchers: "
                      f"{', '.join(f'{v:.0f}' for v in samples)} MiB", file=sys.stderr)
                self.assertLess(samples[-1] - samples[1], 16, samples)
                self.assertLess(samples[-1], 512, samples)
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
            mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", disk],
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
            quick = solverd.ot_pb2.OtProblem(cost=solverd.tensor(np.eye(3)), reg=0.1)
            before = client.submit(quick).id
            client.wait(before)
            with open(os.path.join(disk, "filler"), "wb") as f:  # take all but a sliver
                try:
                    f.write(b"x" * (8 << 20))
                except OSError:
                    pass
            with self.assertRaises(grpc.RpcError) as raised:
                for k in range(64):  # the sliver left may hold a tuner or two
                    client.create_tuner(f"t{k}", sor.TUNER_ALGORITHM_TSALLIS_INF)
            self.assertEqual(raised.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertIn("No space left on device", raised.exception.details())
            # A job that cannot be journaled is refused, not accepted and lost.
            with self.assertRaises(grpc.RpcError) as raised:
                for _ in range(64):
                    client.submit(quick)
            self.assertEqual(raised.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertIn("full", raised.exception.details())
            self.assertEqual(client.get(before).state, solverd.jobs_pb2.JOB_STATE_SUCCEEDED)
            os.remove(os.path.join(disk, "filler"))
            self.assertEqual(client.create_tuner("after", sor.TUNER_ALGORITHM_TSALLIS_INF).name,
                             "after")
            self.assertGreaterEqual(client.solve(quick, timeout=30).transport_cost, 0)


class HostMemoryExhaustion(unittest.TestCase):
    def test_a_job_that_runs_out_of_host_memory_fails_alone(self):
        limit = 3 << 29  # 1.5 GiB of address space: less than the job's 2 GiB cost matrix

        def cap_memory():
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        with tempfile.TemporaryDirectory() as d:
            # Admission control is told there is far more memory than there is.
            server = Server(ARGS.solverd, d, "--cpu_workers=1", "--solver_threads=1",
                            "--cpu_memory_budget_bytes=100000000000", preexec_fn=cap_memory)
            try:
                with solverd.Client(server.address, timeout=30) as client:
                    n = 16000
                    points = solverd.tensor(np.zeros((n, 1)))
                    clouds = solverd.ot_pb2.PointClouds(x=points, y=points)
                    huge = solverd.ot_pb2.OtProblem(points=clouds, reg=1.0)
                    job = client.submit(huge)
                    for _ in client.watch(job.id, timeout=60):
                        pass
                    failed = client.get(job.id)
                    self.assertEqual(failed.state, solverd.jobs_pb2.JOB_STATE_FAILED)
                    self.assertEqual(failed.error_code, grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
                    self.assertIn("out of host memory", failed.error_message)
                    quick = solverd.ot_pb2.OtProblem(cost=solverd.tensor(np.eye(3)), reg=0.1)
                    self.assertGreaterEqual(client.solve(quick, timeout=30).transport_cost, 0)
                self.assertIsNone(server.process.poll())
            finally:
                server.stop()


class ProblemSizeLimits(unittest.TestCase):
    def test_problems_past_their_family_limit_are_refused_at_submit(self):
        with tempfile.TemporaryDirectory() as d:
            server = Server(ARGS.solverd, d, "--max_ot_entries=100", "--max_sor_nonzeros=10")
            try:
                with solverd.Client(server.address, timeout=10) as client:
                    def ot(n, m):
                        return solverd.ot_pb2.OtProblem(cost=solverd.tensor(np.ones((n, m))),
                                                        reg=0.1)
                    self.assertGreaterEqual(client.solve(ot(10, 10)).transport_cost, 0)
                    big_batch = solverd.ot_pb2.OtBatch(problems=[ot(11, 10), ot(11, 10)])
                    too_big = [ot(11, 10), big_batch, sor.SorSequence(systems=[sor.LinearSystem(
                        a=solverd.csr_matrix([0, 2, 4, 5], [0, 1, 0, 1, 2], [2, -1, -1, 2, 2]),
                        b=solverd.tensor([1, 1, 1]))] * 2)]
                    too_big[2].systems[0].a.CopyFrom(solverd.csr_matrix(
                        list(range(0, 12)), list(range(11)), [1.0] * 11))
                    too_big[2].systems[0].b.CopyFrom(solverd.tensor(np.ones(11)))
                    for problem, flag in zip(too_big, ("max_ot_entries", "max_ot_entries",
                                                       "max_sor_nonzeros")):
                        with self.assertRaises(grpc.RpcError) as raised:
                            client.submit(problem)
                        self.assertEqual(raised.exception.code(),
                                         grpc.StatusCode.RESOURCE_EXHAUSTED,
                                         raised.exception.details())
                        self.assertIn(f"--{flag}", raised.exception.details())
            finally:
                server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--solverd", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
