"""solverd.ot against POT (Debian's python3-pot) on a real server: the plan
of ot.sinkhorn to 1e-6 on small problems for each method, the cost of
ot.sinkhorn2, point clouds against their cost matrix, progress events in
order, errors, and Ctrl-C cancelling a running job (SIGINT to a
subprocess)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import unittest

import numpy as np
import ot as pot

import solverd
import solverd.ot
from server_fixture import ServerTestCase


def problem(n, m, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.random(n) + 0.1, rng.random(m) + 0.1
    return a / a.sum(), b / b.sum(), rng.random((n, m))


class Ot(ServerTestCase):
    def test_the_plan_is_pots(self):
        a, b, M = problem(30, 40, 1)
        expected = pot.sinkhorn(a, b, M, 0.05, stopThr=1e-13, numItermax=100000)
        for method in ("auto", "sinkhorn", "sns"):
            plan = solverd.ot.sinkhorn(a, b, M, 0.05, method=method, stopThr=1e-11,
                                       client=self.client)
            self.assertLess(np.abs(plan - expected).max(), 1e-6, method)
        cost = solverd.ot.sinkhorn2(a, b, M, 0.05, stopThr=1e-11, client=self.client)
        self.assertAlmostEqual(cost, float((M * expected).sum()), delta=1e-6)

    def test_uniform_marginals_as_pot_takes_them(self):
        _, _, M = problem(12, 9, 2)
        expected = pot.sinkhorn([], [], M, 0.1, stopThr=1e-13, numItermax=100000)
        plan, log = solverd.ot.sinkhorn([], [], M, 0.1, stopThr=1e-11, log=True,
                                        client=self.client)
        self.assertLess(np.abs(plan - expected).max(), 1e-6)
        self.assertEqual(sorted(log), ["err", "f", "g", "job_id", "niter"])
        self.assertEqual(self.client.get(log["job_id"]).state, solverd.jobs_pb2.JOB_STATE_SUCCEEDED)

    def test_points_send_the_points_and_match_their_costs(self):
        rng = np.random.default_rng(3)
        X, Y = rng.random((25, 3)), rng.random((35, 3))
        M = ((X[:, None, :] - Y[None, :, :]) ** 2).sum(axis=2)
        by_points = solverd.ot.solve(X=X, Y=Y, reg=0.05, tol=1e-11, client=self.client)
        by_costs = solverd.ot.solve(M=M, reg=0.05, tol=1e-11, client=self.client)
        self.assertIsNone(by_points.plan)
        self.assertAlmostEqual(by_points.cost, by_costs.cost, delta=1e-9)
        self.assertLess(np.abs(by_points.plan_from(M) - by_costs.plan).max(), 1e-9)
        self.assertEqual(by_costs.termination, "CONVERGED")
        self.assertGreater(by_costs.sinkhorn_seconds, 0)  # auto's Sinkhorn stage, at least
        by_sns = solverd.ot.solve(M=M, reg=0.05, tol=1e-11, method="sns", client=self.client)
        self.assertGreater(by_sns.cg_seconds, 0)  # the Newton systems' share
        self.assertLessEqual(by_sns.cg_seconds, by_sns.newton_seconds)
        self.assertIsInstance(by_costs.iterations, int)

    def test_a_batch_is_one_job_with_each_problems_answer(self):
        problems = [problem(20, 15, seed) for seed in (7, 8, 9)]
        A, B, Ms = (np.stack(parts) for parts in zip(*problems))
        plans, log = solverd.ot.sinkhorn(A, B, Ms, 0.05, stopThr=1e-11, log=True,
                                         client=self.client)
        costs = solverd.ot.sinkhorn2(A, B, Ms, 0.05, stopThr=1e-11, client=self.client)
        self.assertEqual(plans.shape, (3, 20, 15))
        self.assertEqual(self.client.get(log["job_id"]).result.WhichOneof("result"), "ot_batch")
        for k, (a, b, M) in enumerate(problems):
            expected = pot.sinkhorn(a, b, M, 0.05, stopThr=1e-13, numItermax=100000)
            self.assertLess(np.abs(plans[k] - expected).max(), 1e-6)
            self.assertAlmostEqual(costs[k], float((M * expected).sum()), delta=1e-6)
        shared = solverd.ot.solve(A[0], B[0], Ms, 0.05, tol=1e-11, client=self.client)
        self.assertAlmostEqual(shared[0].cost, costs[0], delta=1e-9)
        with self.assertRaisesRegex(ValueError, r"a must be \[n\] or \[3, n\]"):
            solverd.ot.solve(A[:2], B, Ms, 0.05, client=self.client)

    def test_a_batch_of_point_clouds(self):
        rng = np.random.default_rng(10)
        X, Y = rng.random((2, 15, 2)), rng.random((2, 12, 2))
        solved = solverd.ot.solve(X=X, Y=Y, reg=0.05, tol=1e-11, plan=True, client=self.client)
        for k in range(2):
            alone = solverd.ot.solve(X=X[k], Y=Y[k], reg=0.05, tol=1e-11, client=self.client)
            self.assertAlmostEqual(solved[k].cost, alone.cost, delta=1e-9)
            self.assertEqual(solved[k].plan.shape, (15, 12))

    def test_arrays_past_the_request_limit_go_as_blobs(self):
        problems = [problem(20, 20, seed) for seed in (11, 12, 13)]
        Ms = np.stack([M for _, _, M in problems])
        inline = solverd.ot.solve(M=Ms, reg=0.05, tol=1e-11, client=self.client)
        uploads = []

        def upload(values, *args):
            uploads.append(np.shape(values))
            return solverd.Client.upload(self.client, values, *args)
        limit, solverd.calls.INLINE_BYTES = solverd.calls.INLINE_BYTES, 4000  # one cost inline
        self.client.upload = upload
        try:
            spilled = solverd.ot.solve(M=Ms, reg=0.05, tol=1e-11, client=self.client)
        finally:
            solverd.calls.INLINE_BYTES = limit
            del self.client.upload
        self.assertEqual(uploads, [(20, 20), (20, 20)])
        self.assertEqual([t.cost for t in spilled], [t.cost for t in inline])
        # The call deletes its blobs once its job has ended, or was refused.
        self.assertEqual(self.client.list_blobs(), [])
        solverd.calls.INLINE_BYTES = 4000
        try:
            with self.assertRaisesRegex(solverd.InvalidArgument, "problems.1..cost"):
                solverd.ot.solve(M=Ms * [[[1]], [[np.nan]], [[1]]], reg=0.05, client=self.client)
        finally:
            solverd.calls.INLINE_BYTES = limit
        self.assertEqual(self.client.list_blobs(), [])

    def test_progress_events_come_in_order_to_the_end(self):
        a, b, M = problem(60, 60, 4)
        events = []
        solverd.ot.solve(a, b, M, 0.01, method="sinkhorn", tol=1e-12, client=self.client,
                         progress=events.append)
        numbers = [e.number for e in events]
        self.assertEqual(numbers, sorted(numbers))
        self.assertTrue(any(e.HasField("progress") for e in events))
        self.assertEqual(events[-1].state.state, solverd.jobs_pb2.JOB_STATE_SUCCEEDED)

    def test_a_call_ends_with_the_job_getjob_returns_without_asking(self):
        # The call folds the job's events into the Job it submitted
        # (solverd.client.fold_event) instead of a GetJob round trip.
        _, _, M = problem(40, 30, 7)
        get = self.client.get
        self.client.get = lambda job_id: self.fail("GetJob after a finished stream")
        try:
            job, result = solverd.calls.run(self.client, solverd.ot_pb2.OtProblem(
                cost=solverd.tensor(M), reg=0.05, tolerance=1e-9))
            with self.assertRaises(solverd.JobFailed) as caught:  # over its deadline
                solverd.calls.run(self.client, solverd.ot_pb2.OtProblem(
                    cost=solverd.tensor(np.random.default_rng(6).random((400, 400))),
                    reg=1 / 1200, tolerance=1e-14, max_iterations=10**7,
                    method=solverd.ot_pb2.OT_METHOD_SINKHORN, overrelaxation=1), deadline=0.2)
        finally:
            self.client.get = get
        self.assertEqual(job, self.client.get(job.id))
        self.assertEqual(result, job.result.ot)
        failed = caught.exception.job
        self.assertEqual(failed.state, solverd.jobs_pb2.JOB_STATE_FAILED)
        self.assertEqual(failed, self.client.get(failed.id))

    def test_bad_arguments_say_what(self):
        a, b, M = problem(5, 6, 5)
        with self.assertRaisesRegex(ValueError, "reg must be > 0"):
            solverd.ot.sinkhorn(a, b, M, 0, client=self.client)
        with self.assertRaises(solverd.InvalidArgument) as caught:
            solverd.ot.sinkhorn(a[:4], b, M, 0.1, client=self.client)
        self.assertEqual(caught.exception.field, "ot.a")

    def test_ctrl_c_cancels_the_job_and_keeps_the_best_answer(self):
        child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            import faulthandler, json, sys, numpy as np, solverd, solverd.ot
            faulthandler.dump_traceback_later(60, exit=True)  # a hang fails, with its stack
            M = np.random.default_rng(6).random((400, 400))
            started = []
            def progress(event):
                if event.HasField("progress") and not started:
                    started.append(1)
                    print("started", flush=True)
            try:
                solverd.ot.solve(M=M, reg=1 / 1200, method="sinkhorn", tol=1e-14,
                                 max_iter=10_000_000, overrelaxation=1,
                                 server="{self.server.address}", progress=progress)
            except KeyboardInterrupt as e:
                print(json.dumps([e.job.id, e.best.iterations]), flush=True)
            """)], stdout=subprocess.PIPE, text=True, env=os.environ)
        try:
            self.assertEqual(child.stdout.readline().strip(), "started")
            child.send_signal(signal.SIGINT)
            job_id, iterations = json.loads(child.stdout.readline())
            self.assertEqual(child.wait(timeout=60), 0)
        finally:
            child.kill()
        self.assertEqual(self.client.get(job_id).state, solverd.jobs_pb2.JOB_STATE_CANCELLED)
        self.assertGreater(iterations, 0)


if __name__ == "__main__":
    unittest.main()
