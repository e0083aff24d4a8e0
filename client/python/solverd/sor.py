"""Sparse linear systems by SOR, SSOR or SSOR-preconditioned CG, numpy and
scipy.sparse in, numpy out, with omega fixed or learned online by a named
tuner on the server ("Learning to Relax").

    >>> import numpy as np, scipy.sparse as sp, solverd.sor
    >>> A = sp.diags([-1.0, 2.5, -1.0], [-1, 0, 1], shape=(50, 50))
    >>> s = solverd.sor.solve(A, np.ones(50), omega=1.2)
    >>> s.converged, bool(np.allclose(A @ s.x, 1, atol=1e-6))
    (True, True)

A: a scipy.sparse matrix (any format), or (row_ptr, col_idx, values)
arrays; b: [n], or [k, n] for k right-hand sides (x is then [k, n]).
method: "ssor-cg" (A symmetric positive definite), "sor", "ssor" or "cg".
omega: a fixed relaxation (default 1); tuner: a Tuner (or its name) that
chooses omega per system and learns from each solve. Each function takes
client= or server= and progress= (calls.py).
"""
import dataclasses
import io
from typing import Optional, Union

import numpy as np

from solverd import calls
from solverd.tensors import csr_matrix
from solverd.v1 import sor_pb2

METHODS = {"ssor-cg": sor_pb2.SOR_METHOD_SSOR_CG, "sor": sor_pb2.SOR_METHOD_SOR,
           "ssor": sor_pb2.SOR_METHOD_SSOR, "cg": sor_pb2.SOR_METHOD_CG}
ALGORITHMS = {"tsallis-inf": sor_pb2.TUNER_ALGORITHM_TSALLIS_INF,
              "tsallis-inf-cb": sor_pb2.TUNER_ALGORITHM_TSALLIS_INF_CB,
              "chebcb": sor_pb2.TUNER_ALGORITHM_CHEBCB,
              "grid-oracle": sor_pb2.TUNER_ALGORITHM_GRID_ORACLE,
              "fixed": sor_pb2.TUNER_ALGORITHM_FIXED}


@dataclasses.dataclass
class Solution:
    """One solve (x [n], or [k, n] with k right-hand sides; the figures
    then per right-hand side as lists)."""
    x: np.ndarray
    omega: Union[float, list]
    iterations: Union[int, list]
    relative_residual: Union[float, list]
    converged: Union[bool, list]
    seconds: float
    job_id: str


class Tuner:
    """A named tuner on the server, created if it does not exist (with the
    same configuration: ALREADY_EXISTS otherwise). config: CreateTuner's
    fields (grid, fixed_omega, seed, context_min, context_max, ...)."""

    def __init__(self, name: str, algorithm: str = "tsallis-inf", *, client=None,
                 server: Optional[str] = None, **config):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {sorted(ALGORITHMS)}, got {algorithm!r}")
        self.name = name
        with calls.connection(client, server) as c:
            self.state = c.create_tuner(name, ALGORITHMS[algorithm], **config)

    def refresh(self, *, client=None, server: Optional[str] = None) -> sor_pb2.Tuner:
        """The tuner's state now (arms, plays, systems seen)."""
        with calls.connection(client, server) as c:
            self.state = c.get_tuner(self.name)
        return self.state


def _matrix(payload: calls.Payload, A, system: sor_pb2.LinearSystem) -> None:
    """Puts A into `system`: inline, or as a Matrix Market blob when large."""
    if isinstance(A, tuple):
        row_ptr, col_idx, values = (np.asarray(v) for v in A)
        n = len(row_ptr) - 1
    else:
        csr = A.tocsr()
        if csr.shape[0] != csr.shape[1]:
            raise ValueError(f"A must be square, got {csr.shape}")
        row_ptr, col_idx, values, n = csr.indptr, csr.indices, csr.data, csr.shape[0]
    if 12 * len(values) + 8 * len(row_ptr) > calls.INLINE_BYTES:
        import scipy.io
        import scipy.sparse
        text = io.BytesIO()
        scipy.io.mmwrite(text, scipy.sparse.csr_matrix((values, col_idx, row_ptr), shape=(n, n)))
        system.a_blob_id = payload.upload_bytes(text.getvalue())
        return
    system.a.CopyFrom(csr_matrix(row_ptr, col_idx, values))


def solve(A, b, *, omega: Optional[float] = None, tuner: Union[Tuner, str, None] = None,
          method: str = "ssor-cg", tol: float = 1e-8, max_iter: int = 10000, x0=None,
          context: float = 0.0, ordering: str = "multicolor", client=None,
          server: Optional[str] = None, progress: calls.Progress = None,
          timeout: Optional[float] = None, device: Optional[str] = None) -> Solution:
    """Solves A x = b (see the module's docstring)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    if omega is not None and tuner is not None:
        raise ValueError("give omega or tuner, not both")
    b = np.asarray(b, dtype=np.float64)
    with calls.connection(client, server) as c, calls.Payload(c) as payload:
        system = sor_pb2.LinearSystem(context=context)
        _matrix(payload, A, system)
        system.b.CopyFrom(payload.send(b))
        if x0 is not None:
            system.x0.CopyFrom(payload.send(x0))
        sequence = sor_pb2.SorSequence(
            systems=[system], method=METHODS[method], tolerance=tol, max_iterations=max_iter,
            omega=omega or 0.0, tuner=tuner.name if isinstance(tuner, Tuner) else (tuner or ""),
            raw_solutions=True,
            ordering=sor_pb2.SOR_ORDERING_NATURAL if ordering == "natural"
            else sor_pb2.SOR_ORDERING_MULTICOLOR)
        job, result = calls.run(c, sequence, progress=progress, timeout=timeout, device=device,
                                description="sor")
    if isinstance(tuner, Tuner) and result.HasField("tuner_state"):
        tuner.state = result.tuner_state
    solves = sorted(result.solves, key=lambda s: s.rhs)
    many = b.ndim == 2

    def figure(name):
        values = [getattr(s, name) for s in solves]
        return values if many else values[0]

    x = np.array([np.frombuffer(s.x_raw, "<f8") for s in solves])
    return Solution(x=x if many else x[0], omega=figure("omega"),
                    iterations=figure("iterations"),
                    relative_residual=figure("relative_residual"),
                    converged=figure("converged"), seconds=result.seconds, job_id=job.id)
