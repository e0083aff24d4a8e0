#!/usr/bin/python3
"""A Python gRPC client against a real solverd: discovers the API through
server reflection, checks grpc.health.v1.Health, and runs an ot job.

Uses only Debian's python3-grpcio and python3-grpc-tools (stubs are
generated from proto/ into a temporary directory at test time).
Run: /usr/bin/python3 client_test.py --solverd PATH --proto-root PATH
"""
import argparse
import os
import sys
import tempfile
import unittest

from server_fixture import Server

ARGS = None


def generate_stubs(proto_root, out_dir):
    from grpc_tools import protoc
    import grpc_tools
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    here = os.path.dirname(os.path.abspath(__file__))
    # Every API file, so a new family's proto needs no change here.
    api = sorted(os.listdir(os.path.join(proto_root, "solverd/v1")))
    protos = [(proto_root, f"solverd/v1/{name}") for name in api if name.endswith(".proto")] + [
        # Compiled from its own directory, so the module is `health_pb2`
        # rather than grpc.health.v1, which the grpc package would shadow.
        (os.path.join(proto_root, "grpc/health/v1"), "health.proto"),
        (here, "reflection_v1alpha.proto"),
    ]
    for root, proto in protos:
        rc = protoc.main(["protoc", f"-I{root}", f"-I{proto_root}", f"-I{include}",
                          f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", proto])
        if rc != 0:
            raise RuntimeError(f"protoc failed on {proto}")
    sys.path.insert(0, out_dir)


class SolverdPythonClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        generate_stubs(ARGS.proto_root, cls.tmp.name)
        cls.server = Server(ARGS.solverd, cls.tmp.name)
        import grpc
        cls.channel = grpc.insecure_channel(cls.server.address)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.server.stop()
        cls.tmp.cleanup()

    def test_reflection_lists_and_describes_the_api(self):
        import reflection_v1alpha_pb2 as rpb
        import reflection_v1alpha_pb2_grpc as rgrpc
        from google.protobuf import descriptor_pb2
        stub = rgrpc.ServerReflectionStub(self.channel)
        requests = [rpb.ServerReflectionRequest(list_services=""),
                    rpb.ServerReflectionRequest(file_containing_symbol="solverd.v1.SolverService")]
        responses = list(stub.ServerReflectionInfo(iter(requests), timeout=10))
        services = {s.name for s in responses[0].list_services_response.service}
        self.assertIn("solverd.v1.SolverService", services)
        self.assertIn("grpc.health.v1.Health", services)
        files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                 for b in responses[1].file_descriptor_response.file_descriptor_proto]
        methods = {m.name for f in files for s in f.service if s.name == "SolverService"
                   for m in s.method}
        self.assertTrue({"SubmitJob", "WatchJob", "GetJob", "ListJobs", "CancelJob",
                         "UploadBlob", "DownloadBlob", "SolveOt"} <= methods, methods)

    def test_health_is_serving(self):
        import health_pb2
        import health_pb2_grpc
        stub = health_pb2_grpc.HealthStub(self.channel)
        response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        self.assertEqual(response.status, health_pb2.HealthCheckResponse.SERVING)

    def test_submit_and_watch_an_ot_job(self):
        from solverd.v1 import jobs_pb2, jobs_pb2_grpc
        stub = jobs_pb2_grpc.SolverServiceStub(self.channel)
        spec = jobs_pb2.JobSpec()
        cost = spec.ot.cost
        cost.shape.extend([2, 2])
        cost.values.extend([0.0, 1.0, 1.0, 0.0])
        spec.ot.reg = 0.05
        job = stub.SubmitJob(jobs_pb2.SubmitJobRequest(spec=spec), timeout=10)
        events = list(stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job.id), timeout=30))
        self.assertEqual(events[-1].state.state, jobs_pb2.JOB_STATE_SUCCEEDED)
        result = [e.result.ot for e in events if e.HasField("result")][0]
        self.assertLess(result.transport_cost, 1e-6)  # the identity plan costs 0

    def test_tune_sor_through_a_named_tuner(self):
        from solverd.v1 import jobs_pb2, jobs_pb2_grpc, sor_pb2
        stub = jobs_pb2_grpc.SolverServiceStub(self.channel)
        stub.CreateTuner(sor_pb2.CreateTunerRequest(
            name="py", algorithm=sor_pb2.TUNER_ALGORITHM_CHEBCB), timeout=10)
        sequence = sor_pb2.SorSequence(tuner="py", method=sor_pb2.SOR_METHOD_SSOR_CG)
        for shift in (0.0, 0.5, 1.0):
            system = sequence.systems.add(context=shift)
            system.a.rows = 3
            system.a.row_ptr.extend([0, 2, 5, 7])
            system.a.col_idx.extend([0, 1, 0, 1, 2, 1, 2])
            system.a.values.extend([2 + shift, -1, -1, 2 + shift, -1, -1, 2 + shift])
            system.b.values.extend([1.0, 0.0, 1.0])
        events = list(stub.TuneSor(sor_pb2.TuneSorRequest(sequence=sequence), timeout=30))
        self.assertEqual(events[-1].state.state, jobs_pb2.JOB_STATE_SUCCEEDED)
        result = [e.result.sor for e in events if e.HasField("result")][0]
        self.assertEqual(len(result.solves), 3)
        self.assertTrue(all(s.converged for s in result.solves))
        tuner = stub.GetTuner(sor_pb2.GetTunerRequest(name="py"), timeout=10)
        self.assertEqual(tuner.systems, 3)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--solverd", required=True)
    parser.add_argument("--proto-root", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
