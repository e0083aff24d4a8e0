#!/usr/bin/python3
"""The solverd Python package (client/python) against a real server:
numpy tensors and blobs, watching, results, errors, cancellation,
idempotent submits, sor tuners, the examples in examples/python, and one
client over replicas on a real PostgreSQL (round-robin, a watch resuming
on another replica when its own is killed).

Run with pytest (as make test does) or directly:
  SOLVERD_BINARY=PATH SOLVERD_EXAMPLES=DIR PYTHONPATH=<build>/python \
      /usr/bin/python3 -m pytest solverd_client_test.py
  PYTHONPATH=<build>/python /usr/bin/python3 solverd_client_test.py --solverd PATH --examples DIR
"""
import argparse
import itertools
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest
import urllib.request

import grpc
import numpy as np

import solverd
from server_fixture import Postgres, Server

ot = solverd.ot_pb2
sor = solverd.sor_pb2


def random_cost(n, m, seed):
    return np.random.default_rng(seed).random((n, m))


def read_gguf_tensors(data):
    """{name: (ne, ggml type, absolute data offset)} from a GGUF v3 file whose
    metadata values are strings and uint32s (what solverd writes)."""
    at = 8
    def take(fmt):
        nonlocal at
        value = struct.unpack_from("<" + fmt, data, at)
        at += struct.calcsize("<" + fmt)
        return value[0]
    def string():
        nonlocal at
        n = take("Q")
        at += n
        return data[at - n:at].decode()
    n_tensors, n_kv = take("Q"), take("Q")
    for _ in range(n_kv):
        string()
        string() if take("I") == 8 else take("I")
    infos = {}
    for _ in range(n_tensors):
        name = string()
        ne = [take("Q") for _ in range(take("I"))]
        infos[name] = (ne, take("I"), take("Q"))
    base = (at + 31) // 32 * 32
    return {name: (ne, t, base + off) for name, (ne, t, off) in infos.items()}


class SolverdClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.server = Server(os.environ["SOLVERD_BINARY"], cls.tmp.name)
        cls.client = solverd.Client(cls.server.address)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()
        cls.tmp.cleanup()

    def test_ot_result_matches_its_potentials(self):
        cost, eta = random_cost(30, 40, 1), 50.0
        a = np.random.default_rng(2).random(30)
        a /= a.sum()
        problem = ot.OtProblem(cost=solverd.tensor(cost, np.float32), a=solverd.tensor(a),
                               eta=eta, tolerance=1e-9, return_plan=True)
        result = self.client.solve(problem)
        self.assertEqual(result.termination, ot.OT_TERMINATION_CONVERGED)
        c = cost.astype(np.float32).astype(np.float64)  # what the server saw
        x, y = np.array(result.potential_x), np.array(result.potential_y)
        plan = np.exp(eta * (x[:, None] + y[None, :] - c) - 1)
        np.testing.assert_allclose(solverd.array(result.plan), plan, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(plan.sum(1), a, atol=1e-8)
        self.assertAlmostEqual(result.transport_cost, (plan * c).sum(), delta=1e-9)

    def test_blob_upload_carries_a_cost_past_the_message_limit(self):
        cost = random_cost(700, 800, 3)  # 4.5 MB of float64
        t = self.client.upload(cost)
        self.assertTrue(t.blob_id)
        self.assertEqual(self.client.download_array(t).tobytes(), cost.tobytes())
        result = self.client.solve(ot.OtProblem(cost=t, reg=0.1))
        self.assertLessEqual(result.marginal_error, 1e-6)

    def test_blobs_are_listed_and_deleted(self):
        info = self.client.upload_bytes(b"x" * 1000)
        listed = {b.blob_id: b for b in self.client.list_blobs()}
        self.assertEqual(listed[info.blob_id].size_bytes, 1000)
        self.assertEqual(listed[info.blob_id].sha256, info.sha256)
        self.client.delete_blob(info.blob_id)
        self.assertNotIn(info.blob_id, [b.blob_id for b in self.client.list_blobs()])
        with self.assertRaises(solverd.NotFound):
            self.client.delete_blob(info.blob_id)
        with self.assertRaises(solverd.NotFound):
            self.client.download_bytes(info.blob_id)

    def test_the_server_backs_its_heap_with_huge_pages(self):
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            if "[madvise]" not in f.read():
                self.skipTest("transparent huge pages are not madvise-only here")

        def tunables(server):
            with open(f"/proc/{server.process.pid}/environ", "rb") as f:
                env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
            return env.get(b"GLIBC_TUNABLES", b"").decode()
        self.assertIn("glibc.malloc.hugetlb=1", tunables(self.server))
        os.environ["SOLVERD_HUGE_PAGES"] = "0"
        try:
            with tempfile.TemporaryDirectory() as tmp:
                plain = Server(os.environ["SOLVERD_BINARY"], tmp)
                try:
                    self.assertNotIn("hugetlb", tunables(plain))
                finally:
                    plain.stop()
        finally:
            del os.environ["SOLVERD_HUGE_PAGES"]

    def test_watch_streams_numbered_events_with_progress(self):
        job = self.client.submit(ot.OtProblem(cost=solverd.tensor(random_cost(50, 50, 4)),
                                              eta=200, tolerance=1e-10,
                                              method=ot.OT_METHOD_SINKHORN))
        events = list(self.client.watch(job.id))
        self.assertEqual([e.number for e in events], list(range(len(events))))
        self.assertTrue(any(e.progress.stage == "sinkhorn" for e in events))
        self.assertTrue(any(e.HasField("result") for e in events))
        self.assertEqual(events[-1].state.state, solverd.jobs_pb2.JOB_STATE_SUCCEEDED)
        # Resuming from an event number gives the rest of the same stream.
        self.assertEqual(list(self.client.watch(job.id, from_event=2)), events[2:])

    def test_bad_input_names_the_field(self):
        a = np.full(10, 0.1)
        a[3] = -0.1
        with self.assertRaises(grpc.RpcError) as raised:
            self.client.submit(ot.OtProblem(cost=solverd.tensor(random_cost(10, 10, 5)),
                                            a=solverd.tensor(a), eta=10))
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("a", raised.exception.details())
        with self.assertRaises(grpc.RpcError) as raised:
            self.client.get("no-such-job")
        self.assertEqual(raised.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_cancel_keeps_the_best_answer_so_far(self):
        # Random assignment at eta = 1200 takes classic Sinkhorn ~20,000
        # iterations.
        job = self.client.submit(ot.OtProblem(
            cost=solverd.tensor(random_cost(400, 400, 6)), eta=1200, tolerance=1e-12,
            max_iterations=10_000_000, method=ot.OT_METHOD_SINKHORN, overrelaxation=1))
        for event in self.client.watch(job.id):
            if event.HasField("progress"):
                self.client.cancel(job.id)
                break
        with self.assertRaises(solverd.JobCancelled) as raised:
            self.client.wait(job.id)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.CANCELLED)
        self.assertEqual(raised.exception.best, raised.exception.job.result.ot)
        partial = raised.exception.best
        self.assertEqual(partial.termination, ot.OT_TERMINATION_STOPPED)
        self.assertGreater(partial.iterations, 0)

    def test_idempotency_key_returns_the_same_job(self):
        problem = ot.OtProblem(cost=solverd.tensor(random_cost(8, 8, 7)), reg=0.1)
        first = self.client.submit(problem, idempotency_key="py-idem-1")
        again = self.client.submit(problem, idempotency_key="py-idem-1")
        self.assertEqual(first.id, again.id)
        self.assertIn(first.id, {j.id for j in self.client.jobs(family="ot")})

    def test_sor_sequence_with_a_tuner(self):
        self.client.create_tuner("py-client", sor.TUNER_ALGORITHM_TSALLIS_INF)
        sequence = sor.SorSequence(tuner="py-client", method=sor.SOR_METHOD_SSOR_CG)
        for shift in (0.0, 0.5, 1.0):
            sequence.systems.add(
                a=solverd.csr_matrix([0, 2, 5, 7], [0, 1, 0, 1, 2, 1, 2],
                                     [2 + shift, -1, -1, 2 + shift, -1, -1, 2 + shift]),
                b=solverd.tensor([1.0, 0.0, 1.0]))
        result = self.client.solve(sequence)
        self.assertTrue(all(s.converged for s in result.solves))
        self.assertEqual(self.client.get_tuner("py-client").systems, 3)
        self.client.delete_tuner("py-client")

    def test_dmmv_fir_design_beats_rounding(self):
        fir = solverd.dmmv_pb2.FirDesign(type=solverd.dmmv_pb2.FIR_TYPE_LOW_PASS, order=30,
                                         edges=[0.3, 0.4], bits=10)
        result = self.client.solve(solverd.dmmv_pb2.DmmvProblem(fir=fir, seed=3))
        taps = list(result.fir.taps)
        self.assertEqual(len(taps), 31)
        self.assertEqual(taps, taps[::-1])
        self.assertEqual(result.fir.scale, 2.0 ** -9)
        instance = result.instances[0]
        self.assertLess(instance.max_violation, 0.6 * instance.start_max_violation)
        # The response the server reports is the one of the taps it returns.
        w = np.linspace(0, 1, 2001)
        response = np.array([sum(k * result.fir.scale * np.cos(np.pi * f * (n - 15))
                                 for n, k in enumerate(taps)) for f in w])
        band = (w <= 0.3) | (w >= 0.4)
        error = np.where(w <= 0.3, np.abs(response - 1), np.abs(response))[band].max()
        self.assertLessEqual(error, result.fir.max_error + 1e-9)
        self.assertGreater(error, 0.9 * result.fir.max_error)

    def test_dmmv_direct_problem_and_its_errors(self):
        rng = np.random.default_rng(5)
        x = rng.normal(size=(40, 8))
        w = rng.uniform(-1, 1, 8)
        levels = solverd.dmmv_pb2.DmmvLevels(lo=-1, step=0.25, count=9)
        instance = solverd.dmmv_pb2.DmmvInstance(b=solverd.tensor(x @ w), levels=[levels],
                                                 start_values=solverd.tensor(w))
        direct = solverd.dmmv_pb2.DmmvDirect(x=solverd.tensor(x), instances=[instance] * 2)
        result = self.client.solve(solverd.dmmv_pb2.DmmvProblem(direct=direct))
        for r in result.instances:
            values = np.array(r.values)
            self.assertAlmostEqual(r.max_violation, np.abs(x @ values - x @ w).max(), places=9)
            np.testing.assert_allclose(values, -1 + 0.25 * np.array(r.level_indices))
            self.assertLessEqual(r.max_violation, r.start_max_violation)
        bad = solverd.dmmv_pb2.DmmvProblem(direct=direct)
        bad.direct.instances[1].levels[0].step = -1
        with self.assertRaises(grpc.RpcError) as raised:
            self.client.submit(bad)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("dmmv.direct.instances[1].levels[0]", raised.exception.details())
        with self.assertRaises(grpc.RpcError) as raised:
            self.client.submit(solverd.dmmv_pb2.DmmvProblem(direct=direct, stall_rounds=-2))
        self.assertEqual(raised.exception.details(), "dmmv.stall_rounds: negative")
        stalled = self.client.solve(solverd.dmmv_pb2.DmmvProblem(
            direct=direct, max_outer_iterations=500, stall_rounds=2))
        self.assertIn(stalled.instances[0].outer_iterations, range(2, 500))
        with self.assertRaises(grpc.RpcError) as raised:
            self.client.submit(solverd.dmmv_pb2.DmmvProblem(direct=direct, violation_cap=-1))
        self.assertEqual(raised.exception.details(),
                         "dmmv.violation_cap: must be finite and non-negative")

    def test_dmmv_largest_over_instances_then_polish(self):
        rng = np.random.default_rng(7)
        x = rng.normal(size=(40, 8))
        levels = [solverd.dmmv_pb2.DmmvLevels(lo=-1, step=0.25, count=9)]
        instances = []
        for offset in (2.0, 0.0, 0.0):  # instance 0 decides the largest t
            w = rng.uniform(-1, 1, 8)
            instances.append(solverd.dmmv_pb2.DmmvInstance(
                b=solverd.tensor(x @ w + offset), levels=levels, start_values=solverd.tensor(w)))
        direct = solverd.dmmv_pb2.DmmvDirect(x=solverd.tensor(x), instances=instances)
        largest = self.client.solve(solverd.dmmv_pb2.DmmvProblem(
            direct=direct, max_over_instances=True, max_outer_iterations=20))
        first, *rest = largest.instances
        self.assertLess(first.max_violation, first.start_max_violation)
        for r in rest:  # never near the largest: left at their start
            self.assertEqual(r.moves, 0)
            self.assertEqual(r.max_violation, r.start_max_violation)
        # The polish: from the min-max result, the least L2 within its t.
        direct.instances[0].ClearField("start_values")
        direct.instances[0].start_levels.extend(first.level_indices)
        polished = self.client.solve(solverd.dmmv_pb2.DmmvProblem(
            direct=solverd.dmmv_pb2.DmmvDirect(x=direct.x, instances=[direct.instances[0]]),
            violation_cap=first.max_violation, max_outer_iterations=20)).instances[0]
        self.assertLessEqual(polished.max_violation, first.max_violation + 1e-12)
        self.assertLessEqual(polished.l2, first.l2)

    def test_dmmv_sparse_direct_problem(self):
        rng = np.random.default_rng(6)
        x = rng.normal(size=(60, 20)) * (rng.uniform(size=(60, 20)) < 0.15)
        w = rng.uniform(-1, 1, 20)
        rows, cols = np.nonzero(x)
        offsets = np.searchsorted(rows, np.arange(61))
        csr = solverd.dmmv_pb2.DmmvCsr(cols=20, row_offsets=offsets.tolist(),
                                       columns=cols.tolist(), values=x[rows, cols].tolist())
        instance = solverd.dmmv_pb2.DmmvInstance(
            b=solverd.tensor(x @ w), levels=[solverd.dmmv_pb2.DmmvLevels(lo=-1, step=0.5, count=5)],
            start_values=solverd.tensor(w))
        direct = solverd.dmmv_pb2.DmmvDirect(x_csr=csr, instances=[instance])
        r = self.client.solve(solverd.dmmv_pb2.DmmvProblem(direct=direct)).instances[0]
        self.assertAlmostEqual(r.max_violation, np.abs(x @ np.array(r.values) - x @ w).max(),
                               places=9)
        self.assertLessEqual(r.max_violation, r.start_max_violation)
        bad = solverd.dmmv_pb2.DmmvProblem(direct=direct)
        bad.direct.x_csr.columns[0] = 20
        with self.assertRaises(grpc.RpcError) as raised:
            self.client.submit(bad)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("x_csr.columns[0]", raised.exception.details())
        # X as a blob of the serialized DmmvCsr, the results as raw bytes:
        # the same solve, the same answer.
        blob = self.client.upload_bytes(csr.SerializeToString()).blob_id
        by_blob = solverd.dmmv_pb2.DmmvProblem(direct=solverd.dmmv_pb2.DmmvDirect(
            x_csr_blob_id=blob, instances=[instance]), raw_results=True)
        raw = self.client.solve(by_blob).instances[0]
        self.assertEqual((len(raw.values), len(raw.level_indices)), (0, 0))
        np.testing.assert_array_equal(np.frombuffer(raw.values_raw, "<f8"), r.values)
        np.testing.assert_array_equal(np.frombuffer(raw.level_indices_raw, "<i8"),
                                      r.level_indices)
        self.assertEqual(raw.max_violation, r.max_violation)
        for mutate, field in ((lambda p: p.direct.x_csr.CopyFrom(csr), "dmmv.direct: set one of"),
                              (lambda p: setattr(p.direct, "x_csr_blob_id",
                                                 self.client.upload_bytes(b"\xff\xff").blob_id),
                               "dmmv.direct.x_csr_blob_id: blob"),
                              (lambda p: setattr(p.direct, "x_csr_blob_id", "nope"), "nope")):
            bad = solverd.dmmv_pb2.DmmvProblem()
            bad.CopyFrom(by_blob)
            mutate(bad)
            with self.assertRaises(grpc.RpcError) as raised:
                self.client.submit(bad)
            self.assertIn(raised.exception.code(), (grpc.StatusCode.INVALID_ARGUMENT,
                                                    grpc.StatusCode.NOT_FOUND))
            self.assertIn(field, raised.exception.details())

    def test_dmmv_tomography_recovers_a_binary_image(self):
        # The sinogram by the projector the proto documents, so this also
        # checks that the documentation is the server's projector.
        n, angles = 16, 8
        detectors = int(np.ceil(n * np.sqrt(2))) + 1
        image = np.zeros((n, n))
        image[4:12, 5:10] = 1
        image[7:9, 2:14] = 1
        sinogram = np.zeros((angles, detectors))
        r, c = np.indices((n, n))
        for a in range(angles):
            theta = np.pi * a / angles
            p = ((c - (n - 1) / 2) * np.cos(theta) + ((n - 1) / 2 - r) * np.sin(theta)
                 + (detectors - 1) / 2)
            first = np.floor(p).astype(int)
            np.add.at(sinogram[a], first, image * (1 - (p - first)))
            np.add.at(sinogram[a], np.minimum(first + 1, detectors - 1), image * (p - first))
        problem = solverd.dmmv_pb2.DmmvProblem(tomography=solverd.dmmv_pb2.Tomography(
            size=n, angles=angles, levels=[0, 1], sinogram=solverd.tensor(sinogram)))
        result = self.client.solve(problem)
        self.assertEqual((result.tomography.size, result.tomography.detectors), (n, detectors))
        self.assertEqual(len(result.tomography.start_image), n * n)
        np.testing.assert_array_equal(np.array(result.instances[0].values).reshape(n, n), image)
        problem.raw_results = True
        raw = self.client.solve(problem)
        np.testing.assert_array_equal(np.frombuffer(raw.tomography.start_image_raw, "<f8"),
                                      result.tomography.start_image)
        np.testing.assert_array_equal(np.frombuffer(raw.instances[0].values_raw, "<f8"),
                                      result.instances[0].values)
        problem.raw_results = False
        self.assertLess(result.instances[0].max_violation, 1e-9)
        problem.tomography.sinogram.CopyFrom(solverd.tensor(sinogram.T))
        with self.assertRaises(grpc.RpcError) as raised:
            self.client.submit(problem)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("dmmv.tomography.sinogram: shape", raised.exception.details())
        problem.tomography.sinogram.CopyFrom(solverd.tensor(sinogram))
        problem.tomography.settled_within = 0.5
        with self.assertRaises(grpc.RpcError) as raised:
            self.client.submit(problem)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("dmmv.tomography.settled_within", raised.exception.details())
        problem.tomography.settled_within = -1  # every pixel free: still exact
        result = self.client.solve(problem)
        np.testing.assert_array_equal(np.array(result.instances[0].values).reshape(n, n), image)
        for field, bad in (("noise_bound", -1.0), ("noise_bound", float("nan")),
                           ("start", 7)):
            wrong = type(problem)()
            wrong.CopyFrom(problem)
            setattr(wrong.tomography, field, bad)
            with self.assertRaises(grpc.RpcError) as raised:
                self.client.submit(wrong)
            self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("dmmv.tomography." + field, raised.exception.details())
        # Under a stated noise bound: least squares with the smoothness rows,
        # whose residual the result reports for the rays alone.
        problem.tomography.noise_bound = 0.01
        problem.tomography.start = solverd.dmmv_pb2.TOMOGRAPHY_START_BEST
        result = self.client.solve(problem)
        np.testing.assert_array_equal(np.array(result.instances[0].values).reshape(n, n), image)
        self.assertLess(result.tomography.max_residual, 1e-9)
        self.assertEqual(result.tomography.detectors, sinogram.shape[1])

    def quant_model(self):
        rng = np.random.default_rng(8)
        mix = rng.normal(size=(4, 32))
        x1 = rng.normal(size=(256, 4)) @ mix + 0.2 * rng.normal(size=(256, 32))
        model = {"embed.weight": rng.normal(size=(20, 32)).astype(np.float32),
                 "fc1.weight": (0.1 * rng.normal(size=(24, 32))).astype(np.float16),
                 "fc1.bias": rng.normal(size=24).astype(np.float32),
                 "fc2.weight": (0.1 * rng.normal(size=(8, 24))).astype(np.float32),
                 "norm.weight": np.ones((1, 8), np.float32)}
        calibration = {"fc1.inputs": x1.astype(np.float32),
                       "fc2.inputs": rng.normal(size=(256, 24)).astype(np.float32)}
        return model, calibration

    def solve_quant(self, method, model, calibration, **options):
        blob = self.client.upload_bytes(solverd.safetensors.save(model)).blob_id
        calib = self.client.upload_bytes(solverd.safetensors.save(calibration)).blob_id
        return self.client.solve(solverd.quant_pb2.QuantProblem(
            model=solverd.quant_pb2.QuantFile(blob_id=blob),
            calibration=solverd.quant_pb2.QuantFile(blob_id=calib), method=method, **options))

    def quantize(self, method, model, calibration, **options):
        result = self.solve_quant(method, model, calibration, **options)
        return result, solverd.safetensors.dequantize(
            self.client.download_bytes(result.output_blob_id))

    def test_quant_reports_what_the_file_holds(self):
        quant = solverd.quant_pb2
        model, calibration = self.quant_model()
        errors = {}
        for method in (quant.QUANT_METHOD_RTN, quant.QUANT_METHOD_GPTQ, quant.QUANT_METHOD_DMMV,
                       quant.QUANT_METHOD_NF4, quant.QUANT_METHOD_HQQ):
            bits = 0 if method == quant.QUANT_METHOD_NF4 else 3
            result, weights = self.quantize(method, model, calibration, bits=bits,
                                            group_size=16, double_quant=True)
            self.assertEqual([l.name for l in result.layers], ["fc1.weight", "fc2.weight"])
            self.assertEqual(result.copied_tensors, 3)
            for name in ("embed.weight", "fc1.bias", "norm.weight"):  # copied bit for bit
                np.testing.assert_array_equal(weights[name], model[name])
            for report in result.layers:
                w = model[report.name].astype(np.float64)
                x = calibration[report.name.replace(".weight", ".inputs")].astype(np.float64)
                diff = (w - weights[report.name]) @ x.T
                self.assertAlmostEqual(report.relative_output_error,
                                       np.linalg.norm(diff) / np.linalg.norm(w @ x.T), places=6)
                self.assertAlmostEqual(report.max_violation, np.abs(diff).max(), places=6)
            errors[method] = result.layers[0]
        rtn = errors[quant.QUANT_METHOD_RTN]
        self.assertLess(errors[quant.QUANT_METHOD_GPTQ].relative_output_error,
                        rtn.relative_output_error)
        self.assertLess(errors[quant.QUANT_METHOD_DMMV].max_violation, rtn.max_violation)

    def test_quant_bit_allocation_meets_the_budget(self):
        quant = solverd.quant_pb2
        model, calibration = self.quant_model()
        calibration["fc2.inputs"] *= 20  # fc2's absolute errors matter more
        result, weights = self.quantize(
            quant.QUANT_METHOD_RTN, model, calibration, group_size=32, target_bits=4.5,
            allocation_error=quant.QUANT_ALLOCATION_ERROR_ABSOLUTE)
        self.assertLessEqual(result.average_bits, 4.5)
        self.assertEqual(result.layer_budget_bytes, int(4.5 * (24 * 32 + 8 * 24) / 8))
        by_name = {l.name: l for l in result.layers}
        self.assertGreater(by_name["fc2.weight"].bits, by_name["fc1.weight"].bits)
        total = 0
        for report in result.layers:
            self.assertEqual([c.bits for c in report.candidates], [2, 3, 4, 8])
            used = [c for c in report.candidates if c.bits == report.bits][0]
            self.assertEqual(used.bytes, report.bytes_after)
            w = model[report.name].astype(np.float64)
            x = calibration[report.name.replace(".weight", ".inputs")].astype(np.float64)
            err = np.linalg.norm((w - weights[report.name]) @ x.T) ** 2
            self.assertAlmostEqual(used.output_error_squared / err, 1, places=6)
            self.assertEqual(used.allocation_error, used.output_error_squared)
            total += used.bytes
        # No other choice of candidates within the budget has less error.
        best = min(
            (sum(c.allocation_error for c in combo), sum(c.bytes for c in combo))
            for combo in itertools.product(*(l.candidates for l in result.layers))
            if sum(c.bytes for c in combo) <= result.layer_budget_bytes)
        self.assertAlmostEqual(best[0], sum(
            [c for c in l.candidates if c.bits == l.bits][0].allocation_error
            for l in result.layers))
        # By default the allocation sums squared relative errors.
        result, _ = self.quantize(quant.QUANT_METHOD_RTN, model, calibration, group_size=32,
                                  target_bits=4.5)
        for report in result.layers:
            used = [c for c in report.candidates if c.bits == report.bits][0]
            self.assertAlmostEqual(used.allocation_error / report.relative_output_error ** 2, 1,
                                   places=9)

    def test_quant_exports_hold_the_same_weights(self):
        """The GPTQ and GGUF files, read here from the layouts' definitions,
        hold the weights solverd's own layout holds."""
        quant = solverd.quant_pb2
        model, calibration = self.quant_model()
        model = {k: v for k, v in model.items() if k in ("fc1.weight", "fc1.bias")}
        options = dict(bits=4, group_size=32, symmetric=True)
        _, ours = self.quantize(quant.QUANT_METHOD_GPTQ, model, calibration, **options)
        expected = ours["fc1.weight"]  # [24, 32]
        result = self.solve_quant(quant.QUANT_METHOD_GPTQ, model, calibration,
                                  format=quant.QUANT_FORMAT_GPTQ, **options)
        self.assertEqual(result.format, "gptq")
        t, meta = solverd.safetensors.load(self.client.download_bytes(result.output_blob_id))
        self.assertEqual(json.loads(meta["quantize_config"])["bits"], 4)
        shifts = np.arange(8, dtype=np.uint32) * 4
        qweight = t["fc1.qweight"].view(np.uint32)  # [32 / 8, 24]
        codes = ((qweight[:, None, :] >> shifts[None, :, None]) & 15).reshape(32, 24)
        qzeros = t["fc1.qzeros"].view(np.uint32)  # [1, 24 / 8]
        zeros = (((qzeros[:, :, None] >> shifts) & 15).reshape(1, 24) + 1)[t["fc1.g_idx"]]
        scales = t["fc1.scales"].astype(np.float32)[t["fc1.g_idx"]]
        diff = codes.astype(np.float32) - zeros.astype(np.float32)
        np.testing.assert_array_equal((scales * diff).T.astype(np.float32), expected)

        result = self.solve_quant(quant.QUANT_METHOD_GPTQ, model, calibration,
                                  format=quant.QUANT_FORMAT_GGUF, **options)
        data = self.client.download_bytes(result.output_blob_id)
        self.assertEqual(data[:4], b"GGUF")
        tensors = read_gguf_tensors(data)
        self.assertEqual(tensors["fc1.weight"][:2], ([32, 24], 2))  # ne innermost first, Q4_0
        start = tensors["fc1.weight"][2]
        blocks = np.frombuffer(data[start:start + 24 * 18], dtype=np.uint8).reshape(24, 18)
        d = blocks[:, :2].copy().view(np.float16).astype(np.float32)
        qs = blocks[:, 2:]
        q = np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.float32) - 8
        np.testing.assert_array_equal((d * q).astype(np.float32), expected)

    def test_quant_errors_name_the_field(self):
        quant = solverd.quant_pb2
        model, _ = self.quant_model()
        data = solverd.safetensors.save(model)
        cases = [
            (quant.QuantProblem(model=quant.QuantFile(blob_id=self.client.upload_bytes(
                data[:-3]).blob_id)), grpc.StatusCode.INVALID_ARGUMENT, "quant.model: tensor"),
            (quant.QuantProblem(model=quant.QuantFile(blob_id=self.client.upload_bytes(
                data).blob_id), method=quant.QUANT_METHOD_GPTQ),
             grpc.StatusCode.INVALID_ARGUMENT, "quant.calibration: method gptq needs tensor"),
            (quant.QuantProblem(model=quant.QuantFile(blob_id="nope")),
             grpc.StatusCode.NOT_FOUND, "quant.model.blob_id"),
            (quant.QuantProblem(model=quant.QuantFile(blob_id=self.client.upload_bytes(
                data).blob_id), bits=9), grpc.StatusCode.INVALID_ARGUMENT, "quant.bits"),
            (quant.QuantProblem(model=quant.QuantFile(blob_id=self.client.upload_bytes(
                data).blob_id), method=quant.QUANT_METHOD_HQQ, symmetric=True),
             grpc.StatusCode.INVALID_ARGUMENT, "quant.symmetric"),
            (quant.QuantProblem(model=quant.QuantFile(blob_id=self.client.upload_bytes(
                data).blob_id), method=99), grpc.StatusCode.INVALID_ARGUMENT, "quant.method"),
            (quant.QuantProblem(model=quant.QuantFile(blob_id=self.client.upload_bytes(
                data).blob_id), bits=4, target_bits=3.5),
             grpc.StatusCode.INVALID_ARGUMENT, "quant.bits: leave unset"),
            (quant.QuantProblem(model=quant.QuantFile(blob_id=self.client.upload_bytes(
                data).blob_id), format=quant.QUANT_FORMAT_GGUF),
             grpc.StatusCode.INVALID_ARGUMENT, "quant.export: the gguf layout"),
            (quant.QuantProblem(model=quant.QuantFile(blob_id=self.client.upload_bytes(
                data).blob_id), target_bits=1),
             grpc.StatusCode.INVALID_ARGUMENT,
             "quant.target_bits: 1 is below the smallest allocation"),
            (quant.QuantProblem(model=quant.QuantFile(blob_id=self.client.upload_bytes(
                data).blob_id), target_bits=4, allocation_error=7),
             grpc.StatusCode.INVALID_ARGUMENT, "quant.allocation_error: unknown value 7"),
        ]
        for problem, code, fragment in cases:
            with self.assertRaises(grpc.RpcError) as raised:
                self.client.submit(problem)
            self.assertEqual(raised.exception.code(), code, fragment)
            self.assertIn(fragment, raised.exception.details())

    def test_examples_run(self):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        examples = os.environ["SOLVERD_EXAMPLES"]
        for name in sorted(os.listdir(examples)):
            if name.endswith(".py"):
                with self.subTest(example=name):
                    done = subprocess.run(
                        [sys.executable, os.path.join(examples, name),
                         "--server", self.server.address],
                        env=env, capture_output=True, text=True, timeout=120)
                    self.assertEqual(done.returncode, 0, done.stderr)


class QuantBatching(unittest.TestCase):
    """Small quant jobs queued together share a batch, run side by side,
    and each gets its own model's result."""

    def test_small_quant_jobs_share_a_batch(self):
        quant = solverd.quant_pb2
        with tempfile.TemporaryDirectory() as tmp:
            server = Server(os.environ["SOLVERD_BINARY"], tmp, "--cpu-workers=1",
                            "--solver-threads=2", "--max-batch=8", "--max-queue-delay-us=300000")
            try:
                with solverd.Client(server.address) as client:
                    rng = np.random.default_rng(5)
                    models = [{"fc.weight": rng.normal(size=(16, 64)).astype(np.float32)}
                              for _ in range(6)]
                    ids = [client.submit(quant.QuantProblem(
                        model=quant.QuantFile(blob_id=client.upload_bytes(
                            solverd.safetensors.save(m)).blob_id), bits=4)).id for m in models]
                    for job_id, model in zip(ids, models):
                        result = client.result(job_id, timeout=60)
                        weights = solverd.safetensors.dequantize(
                            client.download_bytes(result.output_blob_id))
                        self.assertLess(np.abs(weights["fc.weight"] - model["fc.weight"]).max(),
                                        0.5)
                url = f"http://127.0.0.1:{server.metrics_port}/metrics"
                with urllib.request.urlopen(url, timeout=10) as response:
                    metrics = response.read().decode()
            finally:
                server.stop()
        def scrape(name):
            return sum(float(line.split()[-1]) for line in metrics.splitlines()
                       if line.startswith(name + "{") and 'family="quant"' in line)
        self.assertEqual(scrape("solverd_batch_size_sum"), 6)
        self.assertLess(scrape("solverd_batch_size_count"), 6)  # fewer launches than jobs


class Replicas(unittest.TestCase):
    """Two replicas on one PostgreSQL behind one client target."""

    def watches_resume_after(self, end_first_replica, seed):
        """Two watches of one job, one on each replica (round-robin); after
        end_first_replica(server) ends the first replica, both see every
        event once, in order, and the job's success."""
        with tempfile.TemporaryDirectory() as tmp:
            database = Postgres(tmp)
            servers = []
            try:
                for k in range(2):
                    os.makedirs(os.path.join(tmp, str(k)))
                    servers.append(Server(os.environ["SOLVERD_BINARY"], os.path.join(tmp, str(k)),
                                          *database.store_flags, "--lease-seconds=2"))
                target = "ipv4:" + ",".join(s.address for s in servers)
                with solverd.Client(target) as client:
                    job = client.submit(ot.OtProblem(
                        cost=solverd.tensor(random_cost(200, 200, seed)), eta=20,
                        tolerance=1e-300, max_iterations=6000, check_every=1,
                        method=ot.OT_METHOD_SINKHORN))
                    watches = [client.watch(job.id) for _ in range(2)]
                    seen = [[next(w)] for w in watches]
                    end_first_replica(servers[0])
                    for events, w in zip(seen, watches):
                        events.extend(w)
                        self.assertEqual([e.number for e in events], list(range(len(events))))
                        self.assertEqual(events[-1].state.state,
                                         solverd.jobs_pb2.JOB_STATE_SUCCEEDED)
                        self.assertEqual(
                            sum(e.HasField("state") and e.state.state in solverd.TERMINAL_STATES
                                for e in events), 1)
                    self.assertEqual(client.get(job.id).state, solverd.jobs_pb2.JOB_STATE_SUCCEEDED)
            finally:
                for server in servers:
                    if server.process.poll() is None:
                        server.stop()
                database.stop()

    def test_a_watch_resumes_on_another_replica_when_its_own_dies(self):
        def kill(server):
            server.process.kill()
            server.process.wait()
        self.watches_resume_after(kill, seed=9)

    def test_a_watch_resumes_on_another_replica_when_its_own_shuts_down(self):
        # A replica shut down gracefully ends its watch streams UNAVAILABLE,
        # or CANCELLED when its gRPC server closes one first: either way
        # the watch carries on from the other replica.
        self.watches_resume_after(lambda server: server.stop(), seed=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--solverd", required=True)
    parser.add_argument("--examples", required=True)
    args, rest = parser.parse_known_args()
    os.environ["SOLVERD_BINARY"], os.environ["SOLVERD_EXAMPLES"] = args.solverd, args.examples
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
