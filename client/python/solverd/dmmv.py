"""Discrete Min-Max Violation with numpy in and out: choose each v_j from its
levels so that the largest weighted residual max_k w_k |(X v - b)_k| is
smallest; and the two builders the server has, FIR filters with integer
coefficients and discrete tomography.

    >>> import numpy as np, solverd.dmmv
    >>> X = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])
    >>> s = solverd.dmmv.solve(X, X @ [0.5, -1.0], levels=np.arange(-4, 5) / 4)
    >>> s.values.tolist(), s.max_violation
    ([0.5, -1.0], 0.0)

levels: one increasing list for every variable, uniform(lo, step, count)
for a grid, or a list of M of those (one per variable). b: [N], or [k, N]
for k instances on the same X (values are then [k, M] and the figures
lists). X: a dense array or a scipy.sparse matrix (sent as CSR). The
search is a heuristic, deterministic given `seed`. Each function takes
client= or server= and progress= (calls.py).
"""
import dataclasses
from typing import Optional, Sequence, Union

import numpy as np

from solverd import calls
from solverd.v1 import dmmv_pb2

_FIR_TYPES = {"lowpass": dmmv_pb2.FIR_TYPE_LOW_PASS, "highpass": dmmv_pb2.FIR_TYPE_HIGH_PASS,
              "bandpass": dmmv_pb2.FIR_TYPE_BAND_PASS}
_STARTS = {"sart": dmmv_pb2.TOMOGRAPHY_START_SART, "sirt": dmmv_pb2.TOMOGRAPHY_START_SIRT,
           "best": dmmv_pb2.TOMOGRAPHY_START_BEST}


def uniform(lo: float, step: float, count: int) -> dmmv_pb2.DmmvLevels:
    """The levels lo + step * q for q = 0 .. count - 1."""
    if step <= 0 or count < 1:
        raise ValueError(f"uniform levels need step > 0 and count >= 1, got {step}, {count}")
    return dmmv_pb2.DmmvLevels(lo=lo, step=step, count=count)


@dataclasses.dataclass
class Solution:
    """One solve: values [M] (or [k, M]) and the figures of each instance."""
    values: np.ndarray
    level_indices: np.ndarray     # into each variable's levels
    max_violation: Union[float, list]
    l2: Union[float, list]        # ||w .* (X v - b)||_2
    start_max_violation: Union[float, list]
    moves: Union[int, list]
    rounds: Union[int, list]      # large-neighbourhood rounds run
    seconds: float
    device: str
    job_id: str


@dataclasses.dataclass
class Filter:
    """A type-I linear-phase FIR filter with `bits`-bit coefficients."""
    taps: np.ndarray              # the impulse response [order + 1], = integer_taps * scale
    integer_taps: np.ndarray      # int64
    scale: float                  # 2^-(bits - 1)
    passband_deviation: float     # max |A(w) - 1| on the passband(s)
    stopband_peak: float          # max |A(w)| on the stopband(s)
    max_error: float              # the larger: the min-max criterion
    start_max_error: float        # of the rounded least-squares filter
    seconds: float
    job_id: str


@dataclasses.dataclass
class Reconstruction:
    """A discrete tomography solve: images are [size, size], row-major."""
    image: np.ndarray
    start_image: np.ndarray       # SART / SIRT, continuous; rounded: where the search began
    max_violation: float          # max |A image - sinogram| over the rays
    start_max_violation: float    # of the rounded start
    l2: float                     # of the system searched (weighted, with noise_bound)
    seconds: float
    job_id: str


def _levels(levels) -> list:
    """DmmvLevels for one shared set, or one per variable."""
    if isinstance(levels, dmmv_pb2.DmmvLevels):
        return [levels]
    if len(levels) and (isinstance(levels[0], dmmv_pb2.DmmvLevels) or np.ndim(levels[0]) == 1):
        return [l if isinstance(l, dmmv_pb2.DmmvLevels)
                else dmmv_pb2.DmmvLevels(values=np.asarray(l, np.float64).tolist())
                for l in levels]
    return [dmmv_pb2.DmmvLevels(values=np.asarray(levels, np.float64).reshape(-1).tolist())]


def _matrix(payload: calls.Payload, X, direct: dmmv_pb2.DmmvDirect) -> int:
    """Puts X into `direct` (dense, or CSR when scipy.sparse; a CSR past
    what the request has room for goes as a blob of its serialized
    DmmvCsr); its columns."""
    if hasattr(X, "tocsr"):
        csr = X.tocsr()
        csr.sort_indices()
        message = dmmv_pb2.DmmvCsr(
            cols=csr.shape[1], row_offsets=csr.indptr.astype(np.int64).tolist(),
            columns=csr.indices.astype(np.int32).tolist(),
            values=csr.data.astype(np.float64).tolist())
        size = message.ByteSize()
        if size > payload.inline_left:
            direct.x_csr_blob_id = payload.client.upload_bytes(
                message.SerializeToString()).blob_id
        else:
            payload.inline_left -= size
            direct.x_csr.CopyFrom(message)
        return csr.shape[1]
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be [N, M], got shape {X.shape}")
    direct.x.CopyFrom(payload.send(X))
    return X.shape[1]


def _rows(values, name: str, k: int):
    """`values` ([N] or [k, N], or None) as k rows (or Nones)."""
    if values is None:
        return [None] * k
    rows = np.asarray(values, dtype=np.float64)
    rows = rows.reshape(1, -1) if rows.ndim == 1 else rows
    if rows.ndim != 2 or rows.shape[0] != k:
        raise ValueError(f"{name} must be [N] or [{k}, N] like b, got shape {np.shape(values)}")
    return list(rows)


def _search(problem: dmmv_pb2.DmmvProblem, max_rounds, time_limit, destroy_size, seed,
            stall_rounds) -> None:
    problem.raw_results = True  # arrays as bytes: no per-value conversion here
    problem.max_outer_iterations = max_rounds
    problem.time_limit_seconds = time_limit or 0.0
    problem.destroy_size = destroy_size
    problem.seed = seed
    problem.stall_rounds = stall_rounds


def solve(X, b, levels, *, weights=None, start=None, max_rounds: int = 0,
          time_limit: Optional[float] = None, destroy_size: int = 0, seed: int = 0,
          stall_rounds: int = 0, largest_over_instances: bool = False,
          violation_cap: float = 0.0, client=None, server: Optional[str] = None,
          progress: calls.Progress = None, timeout: Optional[float] = None,
          device: Optional[str] = None) -> Solution:
    """Solves min_v max_k w_k |(X v - b)_k| over the levels (see the
    module's docstring). weights: [N] or [k, N], positive (default 1).
    start: continuous values [M] or [k, M] rounded to the levels (default:
    the levels nearest 0). max_rounds: large-neighbourhood rounds (0: the
    server's 200; -1: local search only); stall_rounds: stop once no
    instance improved for this many; time_limit: seconds.
    largest_over_instances: with b [k, N], minimize the largest t of the k
    instances instead of each one's (only those near it are searched).
    violation_cap > 0: t counts only above it, so the least L2 within it
    wins (a polish: start from a min-max result, cap at its t)."""
    b = np.asarray(b, dtype=np.float64)
    if b.ndim not in (1, 2):
        raise ValueError(f"b must be [N] or [k, N], got shape {b.shape}")
    many = b.ndim == 2
    bs = list(b) if many else [b]
    with calls.connection(client, server) as c, calls.Payload(c) as payload:
        direct = dmmv_pb2.DmmvDirect()
        _matrix(payload, X, direct)
        shared_levels = _levels(levels)
        for row, w, v0 in zip(bs, _rows(weights, "weights", len(bs)),
                              _rows(start, "start", len(bs))):
            instance = direct.instances.add(b=payload.send(row), levels=shared_levels)
            if w is not None:
                instance.weights.CopyFrom(payload.send(w))
            if v0 is not None:
                instance.start_values.CopyFrom(payload.send(v0))
        problem = dmmv_pb2.DmmvProblem(direct=direct, max_over_instances=largest_over_instances,
                                       violation_cap=violation_cap)
        _search(problem, max_rounds, time_limit, destroy_size, seed, stall_rounds)
        job, result = calls.run(c, problem, progress=progress, timeout=timeout, device=device,
                                description="dmmv")
    return _solution(result, many, job.id)


def _raw_or(raw: bytes, dtype: str, repeated) -> np.ndarray:
    """An array from its raw bytes field (raw_results), else from the
    repeated one (a server from before raw_results)."""
    return np.frombuffer(raw, dtype) if raw else np.asarray(repeated, dtype=dtype)


def _values(r: dmmv_pb2.DmmvInstanceResult) -> np.ndarray:
    return _raw_or(r.values_raw, "<f8", r.values)


def _level_indices(r: dmmv_pb2.DmmvInstanceResult) -> np.ndarray:
    return _raw_or(r.level_indices_raw, "<i8", r.level_indices)


def _solution(result: dmmv_pb2.DmmvResult, many: bool, job_id: str) -> Solution:
    instances = list(result.instances)

    def figure(name):
        values = [getattr(r, name) for r in instances]
        return values if many else values[0]

    values = np.array([_values(r) for r in instances])
    indices = np.array([_level_indices(r) for r in instances])
    return Solution(values=values if many else values[0],
                    level_indices=indices if many else indices[0],
                    max_violation=figure("max_violation"), l2=figure("l2"),
                    start_max_violation=figure("start_max_violation"), moves=figure("moves"),
                    rounds=figure("outer_iterations"), seconds=result.seconds,
                    device=result.device, job_id=job_id)


def fir(order: int, bands: Sequence[float], bits: int = 8, *, btype: str = "lowpass",
        max_rounds: int = 0, time_limit: Optional[float] = None, seed: int = 0,
        stall_rounds: int = 0, client=None, server: Optional[str] = None,
        progress: calls.Progress = None, timeout: Optional[float] = None,
        device: Optional[str] = None) -> Filter:
    """A type-I linear-phase filter of even `order` whose coefficients are
    k / 2^(bits-1), with the smallest largest deviation from 1 on the
    passband(s) and 0 on the stopband(s). bands: edges as fractions of
    Nyquist, increasing in (0, 1): lowpass (pass end, stop start);
    highpass (stop end, pass start); bandpass (stop end, pass start, pass
    end, stop start).

        >>> import solverd.dmmv
        >>> f = solverd.dmmv.fir(20, [0.3, 0.5], bits=8, seed=1)
        >>> f.taps.shape, bool((f.taps == f.taps[::-1]).all()), f.max_error < 0.1
        ((21,), True, True)
    """
    if btype not in _FIR_TYPES:
        raise ValueError(f"btype must be one of {sorted(_FIR_TYPES)}, got {btype!r}")
    design = dmmv_pb2.FirDesign(type=_FIR_TYPES[btype], order=order, edges=list(bands),
                                bits=bits)
    problem = dmmv_pb2.DmmvProblem(fir=design)
    _search(problem, max_rounds, time_limit, 0, seed, stall_rounds)
    with calls.connection(client, server) as c:
        job, result = calls.run(c, problem, progress=progress, timeout=timeout, device=device,
                                description="fir")
    integers = np.asarray(result.fir.taps, dtype=np.int64)
    return Filter(taps=integers * result.fir.scale, integer_taps=integers,
                  scale=result.fir.scale, passband_deviation=result.fir.passband_deviation,
                  stopband_peak=result.fir.stopband_peak, max_error=result.fir.max_error,
                  start_max_error=result.instances[0].start_max_violation,
                  seconds=result.seconds, job_id=job.id)


def default_detectors(size: int) -> int:
    """The server's detector count for a size x size image: ceil(n sqrt 2) + 1."""
    return int(np.ceil(size * np.sqrt(2.0))) + 1


def project(image, angles: int, detectors: Optional[int] = None) -> np.ndarray:
    """The sinogram [angles, detectors] of an n x n image under the
    server's projector (pixel-driven, parallel beam: pixel (r, c) at x =
    c - (n-1)/2, y = (n-1)/2 - r projects at angle pi a / angles onto
    s = x cos + y sin, its mass split linearly between the two nearest
    detectors), to make a test sinogram or check a reconstruction."""
    image = np.asarray(image, dtype=np.float64)
    size = image.shape[0]
    if image.shape != (size, size):
        raise ValueError(f"image must be square, got shape {image.shape}")
    detectors = detectors or default_detectors(size)
    half = (size - 1) / 2.0
    rows, cols = np.divmod(np.arange(size * size), size)
    x, y, mass = cols - half, half - rows, image.reshape(-1)
    sinogram = np.zeros((angles, detectors))
    for a in range(angles):
        theta = np.pi * a / angles
        p = x * np.cos(theta) + y * np.sin(theta) + (detectors - 1) / 2.0
        first = np.floor(p)
        frac = p - first
        first = first.astype(np.int64)
        for hit, weight in ((first, 1 - frac), (first + 1, frac)):
            inside = (hit >= 0) & (hit < detectors)
            sinogram[a] += np.bincount(hit[inside], weights=weight[inside] * mass[inside],
                                       minlength=detectors)
    return sinogram


def tomography(sinogram, size: int, levels: Sequence[float], *, noise_bound: float = 0.0,
               smoothness: float = 0.0, reweight_rounds: int = 0, start: str = "best",
               start_iterations: int = 0,
               settled_within: float = 0.0, max_rounds: int = 0,
               time_limit: Optional[float] = None, destroy_size: int = 0, seed: int = 0,
               stall_rounds: int = 0, client=None, server: Optional[str] = None,
               progress: calls.Progress = None, timeout: Optional[float] = None,
               device: Optional[str] = None) -> Reconstruction:
    """A size x size image whose pixels take the grey `levels` (increasing,
    at least 2) from its sinogram [angles, detectors] (project()'s
    geometry). noise_bound: the largest |noise| of a ray, as you know it
    (uniform noise: its half-width; Gaussian: about 3 deviations). With it
    the image is a regularized least-squares fit (rays weighted by the
    noise, plus `smoothness` (0: the server's 2; negative: none) times
    the squared jumps between neighbours over the level range), which
    does not fit the noise; without it, the smallest largest residual.
    reweight_rounds: with noise_bound, solves after the first with each
    neighbour term reweighted from the last image towards counting jumps
    (0: the server's 2; negative: none, the squared jumps alone).
    start: "sart", "sirt" or "best" (both, the better rounding by the
    objective), the continuous reconstruction rounded to begin from
    (start_iterations sweeps; 0: its default). settled_within: pixels that
    close to a level (a fraction of the gap, below 0.5) keep it; 0: the
    server's 0.35; negative: every pixel may take every level."""
    if start not in _STARTS:
        raise ValueError(f"start must be one of {sorted(_STARTS)}, got {start!r}")
    sinogram = np.asarray(sinogram, dtype=np.float64)
    if sinogram.ndim != 2:
        raise ValueError(f"sinogram must be [angles, detectors], got shape {sinogram.shape}")
    with calls.connection(client, server) as c, calls.Payload(c) as payload:
        spec = dmmv_pb2.Tomography(
            size=size, angles=sinogram.shape[0], detectors=sinogram.shape[1],
            levels=list(np.asarray(levels, np.float64)), sinogram=payload.send(sinogram),
            start=_STARTS[start], start_iterations=start_iterations,
            settled_within=settled_within, noise_bound=noise_bound, smoothness=smoothness,
            reweight_rounds=reweight_rounds)
        problem = dmmv_pb2.DmmvProblem(tomography=spec)
        _search(problem, max_rounds, time_limit, destroy_size, seed, stall_rounds)
        job, result = calls.run(c, problem, progress=progress, timeout=timeout, device=device,
                                description="tomography")
    r = result.instances[0]
    n = result.tomography.size
    start = _raw_or(result.tomography.start_image_raw, "<f8", result.tomography.start_image)
    return Reconstruction(image=_values(r).reshape(n, n), start_image=start.reshape(n, n),
                          max_violation=result.tomography.max_residual,
                          start_max_violation=result.tomography.start_max_residual, l2=r.l2,
                          seconds=result.seconds, job_id=job.id)
