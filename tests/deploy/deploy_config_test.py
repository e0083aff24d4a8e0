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
    def setUp(self):
        self.compose = load_yaml("deploy", "docker-compose.yml", loader=YamlWithComposeTags)
        self.services = self.compose["services"]

    def test_stack_wires_postgres_two_replicas_prometheus_and_grafana(self):
        self.assertEqual(set(self.services),
                         {"postgres", "solverd-1", "solverd-2", "prometheus", "grafana"})
        built = self.services["solverd-1"]["build"]
        self.assertEqual(built["dockerfile"], "Dockerfile")
        self.assertTrue(os.path.exists(source("deploy", built["context"], "Dockerfile")))
        self.assertEqual(set(self.services["solverd-1"]["ports"]), {"50051:50051", "9464:9464"})
        self.assertEqual(set(self.services["solverd-2"]["ports"]), {"50052:50051", "9465:9464"})
        prometheus = load_yaml("deploy", "prometheus.yml")
        targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
        self.assertEqual(targets, ["solverd-1:9464", "solverd-2:9464"])
        for volume in (self.services["grafana"]["volumes"] +
                       self.services["prometheus"]["volumes"]):
            self.assertTrue(os.path.exists(source("deploy", volume.split(":")[0])), volume)

    def test_replicas_share_the_postgres_service_and_its_password(self):
        postgres = self.services["postgres"]
        self.assertTrue(postgres["image"].startswith("postgres:"))
        self.assertEqual(postgres["environment"]["POSTGRES_PASSWORD_FILE"],
                         "/run/secrets/store_password")
        self.assertIn("postgres-data", postgres["volumes"][0])  # survives `down`
        self.assertIn("pg_isready", postgres["healthcheck"]["test"])
        secret = self.compose["secrets"]["store_password"]["file"]
        self.assertTrue(os.path.exists(source("deploy", secret)))
        user, db = postgres["environment"]["POSTGRES_USER"], postgres["environment"]["POSTGRES_DB"]
        for name in ("solverd-1", "solverd-2"):
            replica = self.services[name]
            args = replica["command"]
            self.assertLessEqual(set(flag_names(args)), solverd_flags())
            self.assertIn(f"--store=postgres://{user}@postgres:5432/{db}", args)
            self.assertIn("--store-password-file=/run/secrets/store_password", args)
            self.assertIn("store_password", replica["secrets"])
            self.assertEqual(replica["depends_on"]["postgres"]["condition"], "service_healthy")
            self.assertNotIn("volumes", replica)  # stateless: everything is in the store
            gpu = replica["deploy"]["resources"]["reservations"]["devices"][0]
            self.assertEqual((gpu["driver"], gpu["capabilities"]), ("nvidia", ["gpu"]))
            self.assertGreater(int(replica["stop_grace_period"].rstrip("s")), 30)
        override = load_yaml("deploy", "docker-compose.cpu.yml", loader=YamlWithComposeTags)
        for name in ("solverd-1", "solverd-2"):
            self.assertIsNone(override["services"][name]["deploy"])  # !reset: no GPU


class Kubernetes(unittest.TestCase):
    def setUp(self):
        self.docs = {}  # by (kind, name)
        for name in load_yaml("deploy", "k8s", "kustomization.yaml")["resources"]:
            doc = load_yaml("deploy", "k8s", name)
            self.docs[(doc["kind"], doc["metadata"]["name"])] = doc
        self.assertEqual(set(self.docs), {
            ("ConfigMap", "solverd-flags"), ("ConfigMap", "solverd-adapter-rules"),
            ("Secret", "solverd-store"), ("Deployment", "solverd"), ("Service", "solverd"),
            ("Service", "solverd-headless"), ("PodDisruptionBudget", "solverd"),
            ("HorizontalPodAutoscaler", "solverd"), ("StatefulSet", "solverd-postgres"),
            ("Service", "solverd-postgres"), ("PodMonitor", "solverd")})

    def pod(self):
        return self.docs[("Deployment", "solverd")]["spec"]["template"]["spec"]

    def container(self):
        return self.pod()["containers"][0]

    def flags_file(self):
        return self.docs[("ConfigMap", "solverd-flags")]["data"]["flags"]

    def test_flags_exist_in_the_binary(self):
        flags = solverd_flags()
        args = self.container()["args"]
        self.assertLessEqual(set(flag_names(args)), flags)
        self.assertIn("--flagfile=/etc/solverd/flags", args)
        self.assertLessEqual(set(flag_names(self.flags_file().split())), flags)

    def test_ports_probes_gpu_and_grace(self):
        c = self.container()
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(ports, {"grpc": 50051, "metrics": 9464})
        self.assertIn("--listen=0.0.0.0:50051", c["args"])
        self.assertIn("--metrics-port=9464", c["args"])
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            self.assertEqual(c[probe]["grpc"]["port"], 50051, probe)  # gRPC health service
        self.assertNotIn("service", c["readinessProbe"]["grpc"])  # "": follows the store
        self.assertEqual(c["livenessProbe"]["grpc"]["service"], "liveness")
        self.assertEqual(c["resources"]["limits"]["nvidia.com/gpu"], 1)
        grace = re.search(r"--grace_period=(\d+)s", self.flags_file())
        self.assertGreater(self.pod()["terminationGracePeriodSeconds"], int(grace.group(1)))
        self.assertTrue(self.pod()["securityContext"]["runAsNonRoot"])

    def test_replicas_are_stateless_on_the_store_from_the_secret(self):
        self.assertNotIn("state_dir", self.flags_file())
        c = self.container()
        # The one scratch volume stages outputs on their way into the store.
        scratch = [v["name"] for v in self.pod()["volumes"] if "emptyDir" in v]
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        self.assertEqual(scratch, ["outputs"])
        self.assertIn(f"--output-root={mounts['outputs']}", c["args"])
        env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
        self.assertIn("--store=$(SOLVERD_STORE)", c["args"])
        self.assertEqual(env["SOLVERD_STORE"], {"name": "solverd-store", "key": "uri"})
        password_flag = next(a for a in c["args"] if a.startswith("--store-password-file="))
        password_path = password_flag.split("=", 1)[1]
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        volume = next(v for v in self.pod()["volumes"] if v["name"] == "store-password")
        self.assertEqual(volume["secret"]["secretName"], "solverd-store")
        item = volume["secret"]["items"][0]
        self.assertEqual(os.path.join(mounts["store-password"], item["path"]), password_path)
        secret = self.docs[("Secret", "solverd-store")]["stringData"]
        self.assertEqual(item["key"], "password")
        self.assertNotIn(secret["password"], secret["uri"])  # never on a command line

    def test_bundled_postgres_is_a_statefulset_on_a_pvc_named_by_the_uri(self):
        statefulset = self.docs[("StatefulSet", "solverd-postgres")]["spec"]
        self.assertEqual(statefulset["replicas"], 1)
        claim = statefulset["volumeClaimTemplates"][0]
        container = statefulset["template"]["spec"]["containers"][0]
        self.assertIn(claim["metadata"]["name"], {m["name"] for m in container["volumeMounts"]})
        env = {e["name"]: e for e in container["env"]}
        self.assertEqual(env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"],
                         {"name": "solverd-store", "key": "password"})
        uri = self.docs[("Secret", "solverd-store")]["stringData"]["uri"]
        service = self.docs[("Service", "solverd-postgres")]
        self.assertEqual(statefulset["serviceName"], service["metadata"]["name"])
        port = service["spec"]["ports"][0]["port"]
        self.assertEqual(uri, f"postgres://{env['POSTGRES_USER']['value']}@"
                              f"{service['metadata']['name']}:{port}/{env['POSTGRES_DB']['value']}")
        self.assertEqual(service["spec"]["selector"], statefulset["selector"]["matchLabels"])

    def test_services_pdb_monitor_and_hpa_point_at_solverd(self):
        labels = self.docs[("Deployment", "solverd")]["spec"]["selector"]["matchLabels"]
        service = self.docs[("Service", "solverd")]["spec"]
        self.assertNotIn("clusterIP", service)  # an ordinary Service: any pod serves any job
        self.assertEqual({p["targetPort"] for p in service["ports"]}, {"grpc", "metrics"})
        headless = self.docs[("Service", "solverd-headless")]["spec"]
        self.assertEqual(headless["clusterIP"], "None")  # dns:/// round-robin over pods
        self.assertEqual(headless["selector"], labels)
        pdb = self.docs[("PodDisruptionBudget", "solverd")]["spec"]
        self.assertEqual(pdb["selector"]["matchLabels"], labels)
        self.assertEqual(pdb["maxUnavailable"], 1)
        monitor = self.docs[("PodMonitor", "solverd")]["spec"]
        endpoint = monitor["podMetricsEndpoints"][0]
        self.assertEqual((endpoint["port"], endpoint["path"]), ("metrics", "/metrics"))
        hpa = self.docs[("HorizontalPodAutoscaler", "solverd")]["spec"]
        self.assertEqual(hpa["scaleTargetRef"]["name"], "solverd")
        external = hpa["metrics"][0]["external"]["metric"]["name"]
        rules = yaml.safe_load(
            self.docs[("ConfigMap", "solverd-adapter-rules")]["data"]["config.yaml"])
        rule = rules["externalRules"][0]
        self.assertEqual(rule["name"]["as"], external)
        self.assertIn("solverd_queue_depth", rule["seriesQuery"])
        self.assertTrue(rule["metricsQuery"].startswith("max("))  # each pod reports the cluster's


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
