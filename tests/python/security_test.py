#!/usr/bin/python3
"""TLS, mutual TLS and bearer tokens end to end: certificates made here with
openssl; a solverd with --tls_cert/--tls_key/--tls_client_ca and
--auth_tokens_file; the Python package and solverctl as clients.

Run: PYTHONPATH=<build>/python /usr/bin/python3 security_test.py
         --solverd PATH --solverctl PATH
"""
import argparse
import os
import subprocess
import sys
import tempfile
import unittest
import urllib.request

import grpc
import numpy as np

import solverd
from server_fixture import Server

ARGS = None
ALICE, BOB = "alice-token-0123456789", "bob-token-9876543210xyz"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    with open(os.path.join(d, "san.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, extra in (("server", ["-extfile", "san.cnf"]), ("client", [])):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", *extra, cwd=d)


def read(d, name):
    with open(os.path.join(d, name), "rb") as f:
        return f.read()


def small_problem(seed=0):
    cost = np.random.default_rng(seed).random((8, 8))
    return solverd.ot_pb2.OtProblem(cost=solverd.tensor(cost), reg=0.1)


def long_problem():
    cost = np.random.default_rng(1).random((400, 400))
    return solverd.ot_pb2.OtProblem(cost=solverd.tensor(cost), eta=1200, tolerance=1e-14,
                                    max_iterations=100_000_000,
                                    method=solverd.ot_pb2.OT_METHOD_SINKHORN, overrelaxation=1)


class Security(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        make_certificates(d)
        with open(os.path.join(d, "tokens"), "w") as f:
            f.write(f"alice {ALICE}\nbob {BOB}\n")
        cls.server = Server(ARGS.solverd, d, f"--tls_cert={d}/server.pem",
                            f"--tls_key={d}/server.key", f"--tls_client_ca={d}/ca.pem",
                            f"--auth_tokens_file={d}/tokens")
        cls.tls = dict(root_certificates=read(d, "ca.pem"), private_key=read(d, "client.key"),
                       certificate_chain=read(d, "client.pem"))

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()

    def client(self, token=None, **tls):
        return solverd.Client(self.server.address, token=token, timeout=10, **(tls or self.tls))

    def expect_code(self, code, call):
        with self.assertRaises(grpc.RpcError) as raised:
            call()
        self.assertEqual(raised.exception.code(), code, raised.exception.details())

    def test_plaintext_and_clients_without_a_certificate_are_refused(self):
        with solverd.Client(self.server.address, token=ALICE, timeout=5) as plain:
            self.expect_code(grpc.StatusCode.UNAVAILABLE, lambda: plain.submit(small_problem()))
        with self.client(ALICE, root_certificates=self.tls["root_certificates"]) as no_cert:
            self.expect_code(grpc.StatusCode.UNAVAILABLE, lambda: no_cert.submit(small_problem()))

    def test_calls_need_a_known_token(self):
        for token in (None, "not-a-token-of-this-server", ALICE + "x"):
            with self.client(token) as c:
                self.expect_code(grpc.StatusCode.UNAUTHENTICATED,
                                 lambda: c.submit(small_problem()))
                self.expect_code(grpc.StatusCode.UNAUTHENTICATED, lambda: list(c.jobs()))

    def test_each_token_sees_only_its_own_jobs(self):
        with self.client(ALICE) as alice, self.client(BOB) as bob:
            job = alice.submit(small_problem(), idempotency_key="same-key")
            self.assertEqual(job.owner, "alice")
            self.assertGreater(alice.result(job.id).transport_cost, 0)
            for call in (lambda: bob.get(job.id), lambda: bob.cancel(job.id),
                         lambda: list(bob.watch(job.id))):
                self.expect_code(grpc.StatusCode.PERMISSION_DENIED, call)
            self.assertNotIn(job.id, {j.id for j in bob.jobs()})
            self.assertIn(job.id, {j.id for j in alice.jobs()})
            # Idempotency keys are per token: bob's "same-key" is his own job.
            bobs = bob.submit(small_problem(), idempotency_key="same-key")
            self.assertNotEqual(bobs.id, job.id)
            self.assertEqual(alice.submit(small_problem(), idempotency_key="same-key").id, job.id)

    def test_health_and_metrics_stay_open_and_solverctl_speaks_tls(self):
        d = self.tmp.name
        tls_flags = [f"--tls_ca={d}/ca.pem", f"--tls_cert={d}/client.pem",
                     f"--tls_key={d}/client.key"]
        base = [ARGS.solverctl, f"--server={self.server.address}", *tls_flags]
        self.assertEqual(subprocess.run(base + ["health"], capture_output=True).returncode, 0)
        refused = subprocess.run(base + ["list"], capture_output=True, text=True)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("UNAUTHENTICATED", refused.stderr)
        env = dict(os.environ, SOLVERD_TOKEN=BOB)
        listed = subprocess.run(base + ["list"], capture_output=True, text=True, env=env)
        self.assertEqual(listed.returncode, 0, listed.stderr)
        url = f"http://127.0.0.1:{self.server.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            self.assertIn(b"solverd_jobs_submitted_total", response.read())


class QueuedJobQuota(unittest.TestCase):
    def test_a_token_past_its_queued_jobs_is_refused_alone(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "tokens"), "w") as f:
                f.write(f"alice {ALICE}\nbob {BOB}\n")
            server = Server(ARGS.solverd, d, f"--auth_tokens_file={d}/tokens", "--cpu_workers=1",
                            "--max_queued_jobs_per_token=1")
            try:
                with solverd.Client(server.address, token=ALICE, timeout=10) as alice, \
                        solverd.Client(server.address, token=BOB, timeout=10) as bob:
                    running = alice.submit(long_problem())
                    for event in alice.watch(running.id):  # wait until it holds the lane
                        if event.HasField("state") and \
                                event.state.state == solverd.jobs_pb2.JOB_STATE_RUNNING:
                            break
                    queued = alice.submit(long_problem())
                    with self.assertRaises(grpc.RpcError) as raised:
                        alice.submit(long_problem())
                    self.assertEqual(raised.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
                    self.assertIn("max_queued_jobs_per_token", raised.exception.details())
                    bobs = bob.submit(small_problem())  # bob's quota is his own
                    for job in (running, queued):
                        alice.cancel(job.id)
                    self.assertGreater(bob.result(bobs.id).transport_cost, 0)
            finally:
                server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--solverd", required=True)
    parser.add_argument("--solverctl", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
