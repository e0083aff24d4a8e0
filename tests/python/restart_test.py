#!/usr/bin/python3
"""Durable jobs under --state_dir, against a real solverd that is killed:
- kill -9 mid-run, restart on the same state dir: every acknowledged job is
  there; finished results read back unchanged; the running job runs again
  (attempt 2) and the queued ones run; blobs, idempotency keys and a
  watcher's resume point survive; new jobs list after the old ones;
- SIGTERM with a state dir: queued and unfinished jobs are kept for the
  next start rather than cancelled;
- per-token blob quotas.
Prints the restart recovery time (process start to serving).

Run: PYTHONPATH=<build>/python /usr/bin/python3 restart_test.py --solverd PATH
"""
import argparse
import os
import signal
import sys
import tempfile
import time
import unittest

import grpc
import numpy as np

import solverd
from server_fixture import Server

ARGS = None
jobs_pb2 = solverd.jobs_pb2
ot_pb2 = solverd.ot_pb2


def slow_problem(seed, iterations):
    """Sinkhorn at a large eta: it runs `iterations` steps without converging
    (about 0.1 ms each), reporting progress as it goes."""
    cost = np.random.default_rng(seed).random((300, 300))
    return ot_pb2.OtProblem(cost=solverd.tensor(cost), eta=1200, tolerance=1e-14,
                            max_iterations=iterations, check_every=10,
                            method=ot_pb2.OT_METHOD_SINKHORN, overrelaxation=1)


def quick_problem(n=6):
    cost = np.add.outer(np.arange(n), -np.arange(n)) ** 2.0
    return ot_pb2.OtProblem(cost=solverd.tensor(cost), reg=0.5)


def wait_for_state(client, job_id, state, timeout=30):
    give_up = time.time() + timeout
    while time.time() < give_up:
        job = client.get(job_id)
        if job.state == state:
            return job
        time.sleep(0.02)
    raise AssertionError(f"{job_id} never reached {state}: {client.get(job_id)}")


def start(work_dir, state_dir, *flags, port=0):
    """A server on `state_dir`; returns it and the seconds it took to serve."""
    begin = time.time()
    server = Server(ARGS.solverd, work_dir, f"--state_dir={state_dir}", "--cpu_workers=1",
                    "--solver_threads=1", f"--listen=127.0.0.1:{port}", *flags)
    return server, time.time() - begin


def kill9(server):
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=10)
    os.remove(server.port_file)


class KillAndRestart(unittest.TestCase):
    def test_nothing_acknowledged_is_lost(self):
        with tempfile.TemporaryDirectory() as d:
            state = os.path.join(d, "state")
            server, _ = start(d, state)
            port = int(server.address.rsplit(":", 1)[1])
            try:
                with solverd.Client(server.address, timeout=20) as client:
                    done = client.submit(quick_problem(), idempotency_key="done")
                    done_result = client.result(done.id)
                    blob = client.upload(np.full((5, 5), 2.0))
                    running = client.submit(slow_problem(1, 40_000), labels={"k": "running"})
                    queued = [client.submit(quick_problem(4 + k), idempotency_key=f"q{k}").id
                              for k in range(3)]
                    from_blob = client.submit(ot_pb2.OtProblem(cost=blob, reg=0.5)).id
                    wait_for_state(client, running.id, jobs_pb2.JOB_STATE_RUNNING)
                    seen = []
                    for event in client.watch(running.id):
                        seen.append(event)
                        if event.HasField("progress"):
                            break
                kill9(server)
                server, seconds = start(d, state, port=port)
                print(f"\nrestart after kill -9 with {6} jobs: serving in {seconds:.3f} s",
                      file=sys.stderr)
                with solverd.Client(server.address, timeout=60) as client:
                    again = client.get(done.id)
                    self.assertEqual(again.state, jobs_pb2.JOB_STATE_SUCCEEDED)
                    self.assertEqual(again.result.ot.SerializeToString(),
                                     done_result.SerializeToString())
                    self.assertEqual(client.download_array(blob).tolist(), [[2.0] * 5] * 5)
                    # The watcher resumes where it stopped and sees the re-run.
                    rest = list(client.watch(running.id, from_event=seen[-1].number + 1))
                    self.assertEqual(rest[0].number, seen[-1].number + 1)
                    requeued = [e for e in rest if e.HasField("state")
                                and e.state.state == jobs_pb2.JOB_STATE_QUEUED]
                    self.assertEqual([e.state.attempt for e in requeued], [2])
                    self.assertEqual(rest[-1].state.state, jobs_pb2.JOB_STATE_SUCCEEDED)
                    final = client.get(running.id)
                    self.assertEqual(final.attempt, 2)
                    self.assertEqual(dict(final.labels), {"k": "running"})
                    self.assertEqual(final.result.ot.sinkhorn_iterations, 40_000)
                    for job_id in queued + [from_blob]:
                        self.assertEqual(client.wait(job_id).attempt, 1)
                    # Keys still name their jobs; new jobs come after the old.
                    self.assertEqual(client.submit(quick_problem(), idempotency_key="q1").id,
                                     queued[1])
                    new = client.submit(quick_problem()).id
                    listed = [j.id for j in client.jobs()]
                    self.assertEqual(listed, [done.id, running.id] + queued + [from_blob, new])
            finally:
                server.stop()

    def test_sigterm_keeps_unfinished_jobs_for_the_next_start(self):
        with tempfile.TemporaryDirectory() as d:
            state = os.path.join(d, "state")
            server, _ = start(d, state, "--grace_period=0s")
            with solverd.Client(server.address, timeout=20) as client:
                running = client.submit(slow_problem(2, 30_000)).id
                queued = client.submit(quick_problem()).id
                wait_for_state(client, running, jobs_pb2.JOB_STATE_RUNNING)
            server.stop()
            self.assertEqual(server.process.returncode, 0)
            os.remove(server.port_file)
            server, _ = start(d, state)
            try:
                with solverd.Client(server.address, timeout=60) as client:
                    self.assertEqual(client.wait(running).attempt, 2)
                    self.assertEqual(client.wait(queued).attempt, 1)
            finally:
                server.stop()


class BlobQuotaPerToken(unittest.TestCase):
    def test_a_token_cannot_hold_more_than_its_blob_quota(self):
        with tempfile.TemporaryDirectory() as d:
            tokens = os.path.join(d, "tokens")
            with open(tokens, "w") as f:
                f.write("alice alice-secret-0123456789\nbob bob-secret-0123456789\n")
            server = Server(ARGS.solverd, d, f"--auth_tokens_file={tokens}",
                            "--max_blob_bytes_per_token=1000")
            try:
                alice = solverd.Client(server.address, token="alice-secret-0123456789", timeout=10)
                bob = solverd.Client(server.address, token="bob-secret-0123456789", timeout=10)
                alice.upload_bytes(b"a" * 600)
                with self.assertRaises(grpc.RpcError) as raised:
                    alice.upload_bytes(b"a" * 600)
                self.assertEqual(raised.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
                self.assertIn("--max_blob_bytes_per_token", raised.exception.details())
                bob.upload_bytes(b"b" * 600)  # bob's bytes are his own
                alice.close()
                bob.close()
            finally:
                server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--solverd", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
