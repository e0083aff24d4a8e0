#!/usr/bin/python3
"""Writes dashboards/solverd.json, the Grafana dashboard of solverd's
metrics. Edit the panel list here and rerun; tests/deploy/dashboard_test.py
checks every query against a live /metrics scrape."""
import json
import os

DS = {"type": "prometheus", "uid": "prometheus"}


def quantiles(metric, by="family"):
    return [(f"p{q}", f"histogram_quantile(0.{q:02d}, sum by (le, {by}) "
                      f"(rate({metric}_bucket[5m])))") for q in (50, 95, 99)]


PANELS = [  # title, unit, [(legend, PromQL)]
    ("Queue depth", "short", [("queued", "solverd_queue_depth")]),
    ("Running jobs", "short", [("running", "solverd_running_jobs")]),
    ("Jobs finished / s by family and status", "ops",
     [("{{family}} {{status}}", "sum by (family, status) (rate(solverd_jobs_finished_total[1m]))")]),
    ("Jobs submitted / s by family", "ops",
     [("{{family}}", "sum by (family) (rate(solverd_jobs_submitted_total[1m]))")]),
    ("Job duration (run time)", "s",
     [(f"{{{{family}}}} {name}", q) for name, q in quantiles("solverd_job_duration_seconds")]),
    ("Queue wait", "s",
     [(f"{{{{family}}}} {name}", q) for name, q in quantiles("solverd_queue_wait_seconds")]),
    ("Batch size", "short",
     [("{{family}} mean", "sum by (family) (rate(solverd_batch_size_sum[5m])) / "
                          "sum by (family) (rate(solverd_batch_size_count[5m]))"),
      ("{{family}} p95", "histogram_quantile(0.95, sum by (le, family) "
                         "(rate(solverd_batch_size_bucket[5m])))")]),
    ("Solver iterations / s by family", "ops",
     [("{{family}}", "sum by (family) (rate(solverd_solver_iterations_total[1m]))")]),
    ("Device memory lent to jobs", "bytes",
     [("{{device}}", "solverd_device_memory_used_bytes")]),
    ("Replicas by version", "short",
     [("{{version}} cuda={{cuda}}", "count by (version, cuda) (solverd_build_info)")]),
    # The shared store (--store=postgres://...): whether each replica reaches
    # it, what it costs, and the claims, lease expiries and reconnects.
    ("Store up (replicas reaching it / replicas)", "short",
     [("up", "sum(solverd_store_up)"), ("replicas", "count(solverd_store_up)")]),
    ("Store operation latency", "s",
     [(f"{{{{operation}}}} {name}", q)
      for name, q in quantiles("solverd_store_operation_seconds", by="operation")
      if name != "p50"]),
    ("Store events / s", "ops",
     [("{{event}}", "sum by (event) (rate(solverd_store_events_total[1m]))")]),
]


def panel(index, title, unit, targets):
    return {
        "id": index + 1, "title": title, "type": "timeseries", "datasource": DS,
        "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": chr(ord("A") + k), "datasource": DS, "expr": expr,
                     "legendFormat": legend} for k, (legend, expr) in enumerate(targets)],
    }


dashboard = {
    "uid": "solverd", "title": "solverd", "schemaVersion": 39, "version": 1,
    "time": {"from": "now-1h", "to": "now"}, "refresh": "10s", "tags": ["solverd"],
    "panels": [panel(i, *p) for i, p in enumerate(PANELS)],
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboards", "solverd.json")
with open(path, "w") as f:
    json.dump(dashboard, f, indent=1)
    f.write("\n")
