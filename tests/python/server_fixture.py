"""Starts a real solverd on loopback ports for the Python tests, and a
real PostgreSQL for those that run replicas on the shared store."""
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest


class Server:
    """A solverd process on free loopback ports: `address` is its gRPC
    host:port, `metrics_port` its Prometheus port."""

    def __init__(self, binary, work_dir, *flags, preexec_fn=None):
        port_file = os.path.join(work_dir, "ports")
        self.port_file = port_file
        self.process = subprocess.Popen(
            [binary, "--listen=127.0.0.1:0", "--metrics-port=0", f"--port-file={port_file}",
             *flags], stderr=subprocess.DEVNULL, preexec_fn=preexec_fn)
        for _ in range(1000):
            if os.path.exists(port_file) and os.path.getsize(port_file) > 0:
                break
            if self.process.poll() is not None:
                raise RuntimeError(f"solverd exited with {self.process.returncode}")
            time.sleep(0.01)
        with open(port_file) as f:
            grpc_port, metrics_port = f.read().split()
        self.address = f"127.0.0.1:{grpc_port}"
        self.metrics_port = int(metrics_port)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


class ServerTestCase(unittest.TestCase):
    """Tests against one solverd (SOLVERD_BINARY) started for the class
    with FLAGS ("{tmp}" is the class's temporary folder), gone with it
    (failures included): `server`, `tmp` and a solverd.Client, `client`."""

    FLAGS = ()

    @classmethod
    def setUpClass(cls):
        import solverd  # the tests that use this class have the package
        cls.tmp = tempfile.TemporaryDirectory()
        cls.addClassCleanup(cls.tmp.cleanup)
        cls.server = Server(os.environ["SOLVERD_BINARY"], cls.tmp.name,
                            *[f.format(tmp=cls.tmp.name) for f in cls.FLAGS])
        cls.addClassCleanup(cls.server.stop)
        cls.client = solverd.Client(cls.server.address)
        cls.addClassCleanup(cls.client.close)


class Postgres:
    """A real PostgreSQL (Debian's initdb and pg_ctl) in a fresh directory
    under `work_dir`, on a free loopback port, with password authentication;
    as root it runs as the `postgres` user, since PostgreSQL refuses root.
    `store_flags` are the solverd flags that point a replica at it."""

    def __init__(self, work_dir):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            raise unittest.SkipTest("PostgreSQL is not installed (scripts/install-deps.sh)")
        self.bin = os.path.dirname(bins[-1])
        self.dir = os.path.join(work_dir, "pg")
        os.makedirs(self.dir)
        os.chmod(work_dir, 0o755)
        self.as_user = []
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.password_file = os.path.join(self.dir, "password")
        with open(self.password_file, "w") as f:
            f.write(f"test-{os.getpid()}\n")
        os.chmod(self.password_file, 0o644)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._run("initdb", "-D", self.data, "-U", "solverd", "--auth=scram-sha-256",
                  f"--pwfile={self.password_file}", "-E", "UTF8", "--no-instructions")
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w", "-t", "30",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1", "start")
        self.store_flags = [f"--store=postgres://solverd@127.0.0.1:{self.port}/postgres",
                            f"--store-password-file={self.password_file}"]

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    def _run(self, tool, *args):
        subprocess.run([*self.as_user, os.path.join(self.bin, tool), *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self):
        self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
