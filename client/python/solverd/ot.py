"""Entropic optimal transport with numpy in and out, in POT's call shapes.

    >>> import numpy as np, solverd.ot
    >>> a, b = np.full(3, 1 / 3), np.full(2, 1 / 2)
    >>> M = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    >>> P = solverd.ot.sinkhorn(a, b, M, reg=0.1)   # the server at $SOLVERD_SERVER
    >>> P.shape, round(float(P.sum()), 4)
    ((3, 2), 1.0)
    >>> round(solverd.ot.sinkhorn2(a, b, M, reg=0.1), 4) == round(float((M * P).sum()), 4)
    True

sinkhorn() returns the plan as ot.sinkhorn does, sinkhorn2() the cost
<M, P> as ot.sinkhorn2 does, and solve() everything (Transport). `reg` is
POT's (the entropy's weight, 1/eta). The plan is not sent back: the
server returns the dual potentials (f, g), and the plan is formed here as
P_ij = exp((f_i + g_j - M_ij) / reg - 1), which is how the server forms
it. Point clouds (`X`, `Y`, `p`) send the points instead of the n x m
costs; their plan is formed only when asked for. method: "auto" (Sinkhorn
while it converges fast, then Sinkhorn-Newton-Sparse's Newton stage),
"sinkhorn" or "sns". Every function takes client= or server= and
progress= (calls.py).
"""
import dataclasses
from typing import Optional

import numpy as np

from solverd import calls
from solverd.v1 import ot_pb2

METHODS = {"auto": ot_pb2.OT_METHOD_AUTO, "sinkhorn": ot_pb2.OT_METHOD_SINKHORN,
           "sns": ot_pb2.OT_METHOD_SNS}


@dataclasses.dataclass
class Transport:
    """One solved problem: numpy arrays and plain numbers."""
    cost: float                 # <M, P>
    objective: float            # <M, P> + reg * sum P log P
    f: np.ndarray               # dual potential of the sources [n]
    g: np.ndarray               # of the targets [m]
    reg: float
    marginal_error: float       # ||P 1 - a||_1 + ||P^T 1 - b||_1
    iterations: int
    termination: str            # "CONVERGED", "MAX_ITERATIONS", ...
    device: str
    job_id: str
    plan: Optional[np.ndarray] = None  # [n, m]

    def plan_from(self, M: np.ndarray) -> np.ndarray:
        """The plan for costs M ([n, m]) from the potentials."""
        with np.errstate(invalid="ignore"):  # -inf potentials: zero rows
            return np.exp((self.f[:, None] + self.g[None, :] - M) / self.reg - 1.0)


def _marginal(client, values):
    """A Tensor of a marginal, or None for uniform (POT's empty list)."""
    if values is None or len(values) == 0:
        return None
    return calls.send(client, np.asarray(values, dtype=np.float64).reshape(-1))


def solve(a=None, b=None, M=None, reg: float = 0.0, *, X=None, Y=None, p: int = 2,
          method: str = "auto", tol: float = 1e-6, max_iter: int = 10000,
          plan: Optional[bool] = None, client=None, server: Optional[str] = None,
          progress: calls.Progress = None, timeout: Optional[float] = None,
          device: Optional[str] = None) -> Transport:
    """Solves one problem: costs M [n, m], or point clouds X [n, d] and
    Y [m, d] with cost |x - y|_p^p (p 1 or 2). a, b: marginals (None or
    empty: uniform). tol: on the marginal error; max_iter: iterations.
    plan: form the plan (default: with M, not with points)."""
    if reg <= 0:
        raise ValueError(f"reg must be > 0, got {reg}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    if (M is None) == (X is None or Y is None):
        raise ValueError("give M, or X and Y")
    with calls.connection(client, server) as c:
        problem = ot_pb2.OtProblem(reg=reg, method=METHODS[method], tolerance=tol,
                                   max_iterations=max_iter)
        if M is not None:
            M = np.asarray(M, dtype=np.float64)
            problem.cost.CopyFrom(calls.send(c, M))
        else:
            problem.points.x.CopyFrom(calls.send(c, X))
            problem.points.y.CopyFrom(calls.send(c, Y))
            problem.points.p = p
        for field, values in (("a", a), ("b", b)):
            tensor = _marginal(c, values)
            if tensor is not None:
                getattr(problem, field).CopyFrom(tensor)
        job, result = calls.run(c, problem, progress=progress, timeout=timeout, device=device,
                                description="ot")
    termination = ot_pb2.OtTermination.Name(result.termination)
    out = Transport(cost=result.transport_cost, objective=result.entropic_objective,
                    f=np.asarray(result.potential_x), g=np.asarray(result.potential_y), reg=reg,
                    marginal_error=result.marginal_error, iterations=result.iterations,
                    termination=termination[len("OT_TERMINATION_"):], device=result.device,
                    job_id=job.id)
    if plan or (plan is None and M is not None):
        out.plan = out.plan_from(M if M is not None else _point_costs(X, Y, p))
    return out


def _point_costs(X, Y, p: int) -> np.ndarray:
    d = np.asarray(X, np.float64)[:, None, :] - np.asarray(Y, np.float64)[None, :, :]
    return np.abs(d).sum(axis=2) if p == 1 else (d * d).sum(axis=2)


def sinkhorn(a, b, M, reg: float, method: str = "auto", numItermax: int = 10000,
             stopThr: float = 1e-6, log: bool = False, **kwargs):
    """The plan, as POT's ot.sinkhorn; with log=True also a dict (f, g,
    err, niter, job_id)."""
    t = solve(a, b, M, reg, method=method, tol=stopThr, max_iter=numItermax, plan=True,
              **kwargs)
    if not log:
        return t.plan
    return t.plan, {"f": t.f, "g": t.g, "err": [t.marginal_error], "niter": t.iterations,
                    "job_id": t.job_id}


def sinkhorn2(a, b, M, reg: float, method: str = "auto", numItermax: int = 10000,
              stopThr: float = 1e-6, **kwargs) -> float:
    """The transport cost <M, P>, as POT's ot.sinkhorn2 (the plan is not
    formed)."""
    return solve(a, b, M, reg, method=method, tol=stopThr, max_iter=numItermax, plan=False,
                 **kwargs).cost
