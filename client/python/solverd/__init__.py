"""Python client for solverd.

    import numpy as np, solverd
    with solverd.Client("127.0.0.1:50051") as client:
        problem = solverd.ot_pb2.OtProblem(cost=solverd.tensor(np.random.rand(50, 60)), reg=0.05)
        print(client.solve(problem).transport_cost)

The generated messages are importable as solverd.common_pb2, jobs_pb2,
ot_pb2, sor_pb2, dmmv_pb2 and quant_pb2; Client wraps the SolverService calls,
raising the typed errors of solverd.errors.
"""
from solverd.v1 import common_pb2, dmmv_pb2, jobs_pb2, ot_pb2, quant_pb2, sor_pb2  # noqa: F401
from solverd import aio, dmmv, files, gguf, ot, quant, safetensors, sor  # noqa: F401
from solverd._version import __version__  # noqa: F401
from solverd.client import Client, TERMINAL_STATES  # noqa: F401
from solverd.errors import (AlreadyExists, DataLoss, DeadlineExceeded, Error,  # noqa: F401
                            FailedPrecondition, InvalidArgument, JobCancelled, JobFailed,
                            NotFound, PermissionDenied, ResourceExhausted, Unauthenticated,
                            Unavailable)
from solverd.tensors import array, csr_matrix, tensor  # noqa: F401
