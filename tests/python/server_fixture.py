"""Starts a real solverd on loopback ports for the Python tests."""
import os
import signal
import subprocess
import time


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
