#!/usr/bin/python3
"""The monitoring path end to end: a real solverd on a real PostgreSQL (the
shared store, as the compose stack and the manifests run it) runs a few
jobs; every metric the Grafana dashboard and the autoscaler use appears in
its live /metrics scrape; and a real Prometheus (Debian's) scrapes it,
ingests the samples, and evaluates every dashboard query without error.

Run: /usr/bin/python3 metrics_stack_test.py --source DIR --solverd PATH
         --solverctl PATH [--prometheus PATH]
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from server_fixture import Postgres, Server  # noqa: E402

ARGS = None
JOBS = 3


def dashboard_queries():
    path = os.path.join(ARGS.source, "deploy", "grafana", "dashboards", "solverd.json")
    with open(path) as f:
        dashboard = json.load(f)
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def metric_names(text):
    return {re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            for line in text.splitlines() if line and not line.startswith("#")}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


class MetricsStack(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Class cleanups run even when setUpClass fails part way, so a
        # started PostgreSQL or solverd never outlives the test.
        cls.tmp = tempfile.TemporaryDirectory()
        cls.addClassCleanup(cls.tmp.cleanup)
        cls.database = Postgres(cls.tmp.name)
        cls.addClassCleanup(cls.database.stop)
        cls.server = Server(ARGS.solverd, cls.tmp.name, *cls.database.store_flags)
        cls.addClassCleanup(cls.server.stop)
        for _ in range(JOBS):
            subprocess.run([ARGS.solverctl, f"--server={cls.server.address}", "demo", "ot",
                            "--n=40"], check=True, capture_output=True, timeout=60)
        url = f"http://127.0.0.1:{cls.server.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            cls.scrape = response.read().decode()

    def test_dashboard_and_autoscaler_use_exported_metrics(self):
        exported = metric_names(self.scrape)
        used = {m for q in dashboard_queries() for m in re.findall(r"\bsolverd_[a-z_]+", q)}
        self.assertGreaterEqual(len(used), 9)
        self.assertEqual(used - exported, set())
        self.assertIn("solverd_queue_depth", exported)  # the HPA's metric
        self.assertIn("solverd_store_operation_seconds_bucket", exported)  # on the shared store

    def test_prometheus_ingests_the_scrape_and_evaluates_every_panel(self):
        binary = ARGS.prometheus or shutil.which("prometheus")
        if binary is None:
            self.skipTest("prometheus is not installed (scripts/install-deps.sh installs it)")
        port = free_port()
        config = os.path.join(self.tmp.name, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: solverd\n"
                    f"    static_configs: [{{targets: ['127.0.0.1:{self.server.metrics_port}']}}]\n")
        prometheus = subprocess.Popen(
            [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
             f"--storage.tsdb.path={os.path.join(self.tmp.name, 'tsdb')}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            api = f"http://127.0.0.1:{port}/api/v1/query?query="
            finished = None
            for _ in range(120):
                try:
                    answer = http_json(api + urllib.parse.quote(
                        'sum(solverd_jobs_finished_total{status="succeeded"})'))
                    if answer["data"]["result"]:
                        finished = float(answer["data"]["result"][0]["value"][1])
                        break
                except OSError:
                    pass  # not listening yet
                time.sleep(0.5)
            self.assertEqual(finished, JOBS, "Prometheus never ingested solverd's samples")
            for query in dashboard_queries():
                answer = http_json(api + urllib.parse.quote(query))
                self.assertEqual(answer["status"], "success", query)
        finally:
            prometheus.terminate()
            prometheus.wait(timeout=30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", required=True)
    parser.add_argument("--solverd", required=True)
    parser.add_argument("--solverctl", required=True)
    parser.add_argument("--prometheus")
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
