"""The Python package as a user installs it: client/python built into a
fresh venv (Debian's python3 with --system-site-packages, pip offline,
no build isolation) from a copy of the checkout, imported from there in
a clean process (no PYTHONPATH), against a real solverd: the version is
the server's, and real bad requests raise the typed errors."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from server_fixture import Server  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class InstalledPackage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.addClassCleanup(cls.tmp.cleanup)
        checkout = os.path.join(cls.tmp.name, "checkout")
        for part in ("client", "proto"):
            shutil.copytree(os.path.join(ROOT, part), os.path.join(checkout, part),
                            ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        shutil.copy(os.path.join(ROOT, "VERSION"), checkout)
        venv = os.path.join(cls.tmp.name, "venv")
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv],
                       check=True)
        cls.python = os.path.join(venv, "bin", "python")
        install = subprocess.run(
            [cls.python, "-m", "pip", "install", "--no-build-isolation", "--no-index", "-q",
             os.path.join(checkout, "client", "python")], capture_output=True, text=True)
        if install.returncode != 0:
            raise RuntimeError(f"pip install failed:\n{install.stdout}\n{install.stderr}")
        cls.server = Server(os.environ["SOLVERD_BINARY"], cls.tmp.name)
        cls.addClassCleanup(cls.server.stop)

    def run_python(self, code):
        """The JSON that `code` prints, run by the venv's python in a
        folder of its own, without PYTHONPATH."""
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["SOLVERD_SERVER"] = self.server.address
        done = subprocess.run([self.python, "-c", textwrap.dedent(code)], capture_output=True,
                              text=True, cwd=self.tmp.name, env=env, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        return json.loads(done.stdout)

    def test_it_imports_from_the_venv_with_the_servers_version(self):
        got = self.run_python("""
            import json, solverd
            print(json.dumps([solverd.__version__, solverd.__file__]))""")
        with open(os.path.join(ROOT, "VERSION")) as f:
            version = f.read().strip()
        self.assertEqual(got[0], version)
        self.assertTrue(got[1].startswith(os.path.join(self.tmp.name, "venv")), got[1])
        server = subprocess.run([os.environ["SOLVERD_BINARY"], "--version"],
                                capture_output=True, text=True)
        self.assertEqual(server.stdout.strip(), f"solverd {version}")

    def test_the_docstring_examples_run(self):
        got = self.run_python("""
            import doctest, json, solverd, solverd.dmmv, solverd.errors, solverd.ot, solverd.sor
            modules = (solverd.dmmv, solverd.errors, solverd.ot, solverd.sor)
            results = [doctest.testmod(m) for m in modules]
            print(json.dumps([[r.failed, r.attempted] for r in results]))""")
        self.assertEqual([failed for failed, _ in got], [0, 0, 0, 0])
        self.assertNotIn(0, [attempted for _, attempted in got])  # each has examples

    def test_real_bad_requests_raise_typed_errors(self):
        got = self.run_python("""
            import json, os, grpc, numpy as np, solverd
            out = {}
            with solverd.Client(os.environ["SOLVERD_SERVER"]) as client:
                try:
                    client.submit(solverd.ot_pb2.OtProblem(
                        cost=solverd.tensor(np.ones((3, 3))), eta=-1))
                except solverd.InvalidArgument as e:
                    out["invalid"] = [e.field, e.reason, e.code().name,
                                      isinstance(e, grpc.RpcError), isinstance(e, solverd.Error),
                                      isinstance(e.__cause__, grpc.RpcError)]
                try:
                    client.get("no-such-job")
                except solverd.NotFound as e:
                    out["not_found"] = [e.code().name, e.details()]
                try:
                    list(client.watch("no-such-job"))
                except solverd.NotFound as e:
                    out["watch"] = e.code().name
                job = client.submit(solverd.ot_pb2.OtProblem(
                    cost=solverd.tensor(np.random.default_rng(1).random((300, 300))),
                    eta=2000, tolerance=1e-14, max_iterations=10_000_000, overrelaxation=1))
                client.cancel(job.id)
                try:
                    client.wait(job.id)
                except solverd.JobCancelled as e:
                    out["cancelled"] = [e.code().name, e.job.id == job.id,
                                        isinstance(e, solverd.JobFailed)]
            print(json.dumps(out))""")
        self.assertEqual(got["invalid"], ["ot.eta", "must be positive and finite",
                                          "INVALID_ARGUMENT", True, True, True])
        self.assertEqual(got["not_found"], ["NOT_FOUND", "job no-such-job not found"])
        self.assertEqual(got["watch"], "NOT_FOUND")
        self.assertEqual(got["cancelled"], ["CANCELLED", True, True])


if __name__ == "__main__":
    unittest.main()
