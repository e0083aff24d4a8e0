#!/usr/bin/python3
"""Static checks of the deployment files against the code they deploy
(Docker cannot build here, nor Kubernetes run): the Dockerfile's stages,
user, ports, health check and entry point; the compose stack; the
Kubernetes manifests' ports, probes, grace periods and flags, every flag
checked against the real binary's --help; the Grafana dashboard being
what make_dashboard.py writes.

Run: /usr/bin/python3 deploy_config_test.py --source DIR --solverd PATH
"""
import argparse
import json
import os
import re
import subprocess
import sys
import unittest

import yaml

ARGS = None


def source(*parts):
    return os.path.join(ARGS.source, *parts)


def read(*parts):
    with open(source(*parts)) as f:
        return f.read()


def load_yaml(*parts, loader=yaml.SafeLoader):
    return yaml.load(read(*parts), loader)


def dockerfile_instructions():
    """(instruction, argument) pairs, continuation lines joined."""
    text = re.sub(r"\\\n", " ", read("Dockerfile"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def solverd_flags():
    """Flag names solverd accepts, with dashes (as the manifests use them)."""
    help_text = subprocess.run([ARGS.solverd, "--helpfull"], capture_output=True,
                               text=True).stdout
    return {name.replace("_", "-") for name in re.findall(r"^\s+--(\w+)", help_text, re.M)}


def flag_names(args):
    return [a[2:].split("=", 1)[0].replace("_", "-") for a in args if a.startswith("--")]


class YamlWithComposeTags(yaml.SafeLoader):
    """Reads compose's !reset tag (an override that clears a key)."""


YamlWithComposeTags.add_constructor("!reset", lambda loader, node: None)


class Dockerfile(unittest.TestCase):
    def setUp(self):
        self.steps = dockerfile_instructions()
        stages, current = {}, None
        for word, arg in self.steps:
            if word == "FROM":
                image, _, name = arg.partition(" AS ")
                current = name.strip()
                stages[current] = {"image": image, "steps": []}
            elif current:
                stages[current]["steps"].append((word, arg))
        self.stages = stages

    def of(self, stage, word):
        return [arg for w, arg in self.stages[stage]["steps"] if w == word]

    def test_builds_on_cuda_devel_and_runs_on_the_matching_runtime(self):
        self.assertEqual(list(self.stages), ["build", "runtime"])
        self.assertIn("nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU}", self.stages["build"]["image"])
        self.assertIn("nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU}",
                      self.stages["runtime"]["image"])

    def test_runtime_copies_exactly_the_install_tree(self):
        build = " ".join(self.of("build", "RUN"))
        self.assertIn("cmake --install /build --prefix /opt/solverd", build)
        self.assertIn("--component bundled_libs", build)  # what install_test.sh runs too
        self.assertIn("-DSOLVERD_BUILD_TESTS=OFF", build)
        self.assertEqual(self.of("runtime", "COPY"), ["--from=build /opt/solverd /opt/solverd"])

    def test_build_stage_installs_what_install_deps_does(self):
        packages = " ".join(self.of("build", "RUN")).split()
        for needed in ("cmake", "ninja-build", "libgrpc++-dev", "protobuf-compiler-grpc",
                       "libprotobuf-dev", "protobuf-compiler", "libabsl-dev",
                       "prometheus-cpp-dev", "libsqlite3-dev"):
            self.assertIn(needed, packages)
        deps = read("scripts", "install-deps.sh")
        for needed in ("libgrpc++-dev", "protobuf-compiler-grpc", "prometheus-cpp-dev",
                       "libsqlite3-dev"):
            self.assertIn(needed, deps)

    def test_user_ports_healthcheck_and_entrypoint(self):
        users = self.of("runtime", "USER")
        self.assertEqual(len(users), 1)
        self.assertNotIn(users[0], ("root", "0"))
        self.assertEqual(self.of("runtime", "EXPOSE"), ["50051 9464"])
        entrypoint = json.loads(self.of("runtime", "ENTRYPOINT")[0])
        self.assertEqual(entrypoint, ["/opt/solverd/bin/solverd"])
        cmd = json.loads(self.of("runtime", "CMD")[0])
        self.assertIn("--listen=0.0.0.0:50051", cmd)
        self.assertIn("--metrics-port=9464", cmd)
        self.assertIn("--metrics-address=0.0.0.0", cmd)
        self.assertLessEqual(set(flag_names(cmd)), solverd_flags())
        health = self.of("runtime", "HEALTHCHECK")[0]
        probe = json.loads(health.split("CMD", 1)[1])
        self.assertEqual(probe[0], "/opt/solverd/bin/solverctl")
        self.assertEqual(probe[-1], "health")
        self.assertIn("--server=127.0.0.1:50051", probe)


class Compose(unittest.TestCase):
    def test_stack_wires_solverd_prometheus_and_grafana(self):
        compose = load_yaml("deploy", "docker-compose.yml", loader=YamlWithComposeTags)
        services = compose["services"]
        self.assertEqual(set(services), {"solverd", "prometheus", "grafana"})
        solverd = services["solverd"]
        self.assertEqual(solverd["build"]["dockerfile"], "Dockerfile")
        self.assertTrue(os.path.exists(source("deploy", solverd["build"]["context"], "Dockerfile")))
        self.assertEqual(set(solverd["ports"]), {"50051:50051", "9464:9464"})
        gpu = solverd["deploy"]["resources"]["reservations"]["devices"][0]
        self.assertEqual((gpu["driver"], gpu["capabilities"]), ("nvidia", ["gpu"]))
        self.assertGreater(int(solverd["stop_grace_period"].rstrip("s")), 30)
        override = load_yaml("deploy", "docker-compose.cpu.yml", loader=YamlWithComposeTags)
        self.assertIsNone(override["services"]["solverd"]["deploy"])  # !reset: no GPU
        prometheus = load_yaml("deploy", "prometheus.yml")
        targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
        self.assertEqual(targets, ["solverd:9464"])
        for volume in services["grafana"]["volumes"] + services["prometheus"]["volumes"]:
            self.assertTrue(os.path.exists(source("deploy", volume.split(":")[0])), volume)


class Kubernetes(unittest.TestCase):
    def setUp(self):
        self.docs = {}  # by kind, the ConfigMaps by name
        for name in load_yaml("deploy", "k8s", "kustomization.yaml")["resources"]:
            doc = load_yaml("deploy", "k8s", name)
            key = doc["metadata"]["name"] if doc["kind"] == "ConfigMap" else doc["kind"]
            self.docs[key] = doc
        self.assertEqual(set(self.docs), {"solverd-flags", "solverd-adapter-rules", "Deployment",
                                          "Service", "HorizontalPodAutoscaler", "PodMonitor"})

    def container(self):
        return self.docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]

    def test_flags_exist_in_the_binary(self):
        flags = solverd_flags()
        args = self.container()["args"]
        self.assertLessEqual(set(flag_names(args)), flags)
        self.assertIn("--flagfile=/etc/solverd/flags", args)
        file_flags = self.docs["solverd-flags"]["data"]["flags"].split()
        self.assertLessEqual(set(flag_names(file_flags)), flags)

    def test_ports_probes_gpu_and_grace(self):
        c = self.container()
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(ports, {"grpc": 50051, "metrics": 9464})
        self.assertIn("--listen=0.0.0.0:50051", c["args"])
        self.assertIn("--metrics-port=9464", c["args"])
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            self.assertEqual(c[probe]["grpc"]["port"], 50051, probe)  # gRPC health service
        self.assertEqual(c["resources"]["limits"]["nvidia.com/gpu"], 1)
        pod = self.docs["Deployment"]["spec"]["template"]["spec"]
        grace = re.search(r"--grace_period=(\d+)s", self.docs["solverd-flags"]["data"]["flags"])
        self.assertGreater(pod["terminationGracePeriodSeconds"], int(grace.group(1)))
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])

    def test_service_monitor_and_hpa_point_at_solverd(self):
        service = self.docs["Service"]["spec"]
        self.assertEqual(service["clusterIP"], "None")  # headless: client-side balancing
        self.assertEqual({p["targetPort"] for p in service["ports"]}, {"grpc", "metrics"})
        endpoint = self.docs["PodMonitor"]["spec"]["podMetricsEndpoints"][0]
        self.assertEqual((endpoint["port"], endpoint["path"]), ("metrics", "/metrics"))
        hpa = self.docs["HorizontalPodAutoscaler"]["spec"]
        self.assertEqual(hpa["scaleTargetRef"]["name"], self.docs["Deployment"]["metadata"]["name"])
        self.assertEqual(hpa["metrics"][0]["pods"]["metric"]["name"], "solverd_queue_depth")
        rules = yaml.safe_load(self.docs["solverd-adapter-rules"]["data"]["config.yaml"])["rules"]
        self.assertEqual(rules[0]["name"]["as"], "solverd_queue_depth")


class Dashboard(unittest.TestCase):
    def test_committed_dashboard_is_what_the_generator_writes(self):
        path = source("deploy", "grafana", "dashboards", "solverd.json")
        with open(path) as f:
            committed = f.read()
        subprocess.run([sys.executable, source("deploy", "grafana", "make_dashboard.py")],
                       check=True)
        try:
            with open(path) as f:
                self.assertEqual(f.read(), committed, "rerun make_dashboard.py")
        finally:
            with open(path, "w") as f:
                f.write(committed)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", required=True)
    parser.add_argument("--solverd", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
