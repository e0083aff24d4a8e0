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
costs; their plan is formed only when asked for. A batch of costs
[k, n, m] (or of point clouds) is one job:

    >>> Ms = np.stack([M, 2 * M])
    >>> solverd.ot.sinkhorn(a, b, Ms, reg=0.1).shape, solverd.ot.sinkhorn2(a, b, Ms, 0.1).shape
    ((2, 3, 2), (2,))

method: "auto" (Sinkhorn
while it converges fast, then Sinkhorn-Newton-Sparse's Newton stage),
"sinkhorn" or "sns". Every function takes client= or server= and
progress= (calls.py).
"""
import dataclasses
from typing import List, Optional, Union

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
    sinkhorn_seconds: float = 0.0      # time in each method (auto runs both; 0 in a batch)
    newton_seconds: float = 0.0
    cg_seconds: float = 0.0            # of newton_seconds, solving the Newton systems

    def plan_from(self, M: np.ndarray) -> np.ndarray:
        """The plan for costs M ([n, m]) from the potentials."""
        plan = np.add.outer(self.f, self.g)  # one n x m array, worked in place
        with np.errstate(invalid="ignore"):  # -inf potentials: zero rows
            plan -= M
            plan /= self.reg
            plan -= 1.0
            return np.exp(plan, out=plan)


def _marginal(payload: calls.Payload, values):
    """A Tensor of a marginal, or None for uniform (POT's empty list)."""
    if values is None or len(values) == 0:
        return None
    return payload.send(np.asarray(values, dtype=np.float64).reshape(-1))


def _per_problem(values, k: int, name: str) -> list:
    """A marginal for each of k problems: one shared ([n] or None) or [k, n]."""
    if values is None or len(values) == 0 or np.ndim(values) == 1:
        return [values] * k
    if np.ndim(values) != 2 or len(values) != k:
        raise ValueError(f"{name} must be [n] or [{k}, n] for {k} problems, "
                         f"got shape {np.shape(values)}")
    return list(values)


def _problem(payload: calls.Payload, a, b, M, X, Y, p: int, **settings) -> ot_pb2.OtProblem:
    problem = ot_pb2.OtProblem(**settings)
    if M is not None:
        problem.cost.CopyFrom(payload.send(M))
    else:
        problem.points.x.CopyFrom(payload.send(X))
        problem.points.y.CopyFrom(payload.send(Y))
        problem.points.p = p
    for field, values in (("a", a), ("b", b)):
        tensor = _marginal(payload, values)
        if tensor is not None:
            getattr(problem, field).CopyFrom(tensor)
    return problem


def _transport(result: ot_pb2.OtResult, reg: float, job_id: str) -> Transport:
    termination = ot_pb2.OtTermination.Name(result.termination)
    return Transport(cost=result.transport_cost, objective=result.entropic_objective,
                     f=np.asarray(result.potential_x), g=np.asarray(result.potential_y), reg=reg,
                     marginal_error=result.marginal_error, iterations=result.iterations,
                     termination=termination[len("OT_TERMINATION_"):], device=result.device,
                     job_id=job_id, sinkhorn_seconds=result.sinkhorn_seconds,
                     newton_seconds=result.newton_seconds, cg_seconds=result.cg_seconds)


def solve(a=None, b=None, M=None, reg: float = 0.0, *, X=None, Y=None, p: int = 2,
          method: str = "auto", tol: float = 1e-6, max_iter: int = 10000,
          plan: Optional[bool] = None, client=None, server: Optional[str] = None,
          progress: calls.Progress = None, timeout: Optional[float] = None,
          device: Optional[str] = None,
          overrelaxation: float = 0.0) -> Union[Transport, List[Transport]]:
    """Solves one problem: costs M [n, m], or point clouds X [n, d] and
    Y [m, d] with cost |x - y|_p^p (p 1 or 2). a, b: marginals (None or
    empty: uniform). tol: on the marginal error; max_iter: iterations.
    plan: form the plan (default: with M, not with points).
    overrelaxation: Sinkhorn's omega (0: tuned by the solver; 1: classic
    Sinkhorn; up to 1.95: fixed).

    A batch: M [k, n, m] (or X [k, n, d] and Y [k, m, d]) solves k
    problems in one job and returns k Transports; a and b are then shared
    ([n], [m]) or per problem ([k, n], [k, m])."""
    if reg <= 0:
        raise ValueError(f"reg must be > 0, got {reg}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    if (M is None) == (X is None or Y is None):
        raise ValueError("give M, or X and Y")
    M = None if M is None else np.asarray(M, dtype=np.float64)
    batched = np.ndim(M if M is not None else X) == 3
    k = len(M if M is not None else X) if batched else 1
    costs = list(M) if batched and M is not None else [M] * k
    xs, ys = (list(X), list(Y)) if batched and M is None else ([X] * k, [Y] * k)
    settings = dict(reg=reg, method=METHODS[method], tolerance=tol, max_iterations=max_iter,
                    overrelaxation=overrelaxation)
    with calls.connection(client, server) as c, calls.Payload(c) as payload:
        problems = [_problem(payload, ak, bk, Mk, Xk, Yk, p, **settings) for ak, bk, Mk, Xk, Yk
                    in zip(_per_problem(a, k, "a"), _per_problem(b, k, "b"), costs, xs, ys)]
        request = ot_pb2.OtBatch(problems=problems) if batched else problems[0]
        job, result = calls.run(c, request, progress=progress, timeout=timeout, device=device,
                                description="ot")
    results = result.results if batched else [result]
    out = [_transport(r, reg, job.id) for r in results]
    if plan or (plan is None and M is not None):
        for t, Mk, Xk, Yk in zip(out, costs, xs, ys):
            t.plan = t.plan_from(Mk if Mk is not None else _point_costs(Xk, Yk, p))
    return out if batched else out[0]


def _point_costs(X, Y, p: int) -> np.ndarray:
    d = np.asarray(X, np.float64)[:, None, :] - np.asarray(Y, np.float64)[None, :, :]
    return np.abs(d).sum(axis=2) if p == 1 else (d * d).sum(axis=2)


def sinkhorn(a, b, M, reg: float, method: str = "auto", numItermax: int = 10000,
             stopThr: float = 1e-6, log: bool = False, **kwargs):
    """The plan, as POT's ot.sinkhorn; with log=True also a dict (f, g,
    err, niter, job_id). M [k, n, m]: the k plans [k, n, m] of one batch
    job (f, g stacked; err and niter lists)."""
    solved = solve(a, b, M, reg, method=method, tol=stopThr, max_iter=numItermax, plan=True,
                   **kwargs)
    if isinstance(solved, Transport):
        if not log:
            return solved.plan
        return solved.plan, {"f": solved.f, "g": solved.g, "err": [solved.marginal_error],
                             "niter": solved.iterations, "job_id": solved.job_id}
    plans = np.stack([t.plan for t in solved])
    if not log:
        return plans
    return plans, {"f": np.stack([t.f for t in solved]), "g": np.stack([t.g for t in solved]),
                   "err": [t.marginal_error for t in solved],
                   "niter": [t.iterations for t in solved], "job_id": solved[0].job_id}


def sinkhorn2(a, b, M, reg: float, method: str = "auto", numItermax: int = 10000,
              stopThr: float = 1e-6, **kwargs):
    """The transport cost <M, P>, as POT's ot.sinkhorn2 (the plan is not
    formed); M [k, n, m]: the k costs as an array [k]."""
    solved = solve(a, b, M, reg, method=method, tol=stopThr, max_iter=numItermax, plan=False,
                   **kwargs)
    if isinstance(solved, Transport):
        return solved.cost
    return np.array([t.cost for t in solved])
