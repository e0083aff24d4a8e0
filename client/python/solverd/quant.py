"""The quant family: quantize() a model file or checkpoint folder through
the server, and calibration captured from a PyTorch model.

    import solverd.quant
    summary = solverd.quant.capture_calibration(model, batches, "calibration.safetensors",
                                                sample_rows=512)

runs `model` on each batch with forward hooks on its linear layers and
writes the calibration file GPTQ and bit allocation read: per group of
layers that read the same input, H = sum_k x_k x_k^T (accumulated in
float64 as the batches pass, never holding the activations) and the
number of tokens it sums, and optionally a uniform sample of input rows
for dmmv (reservoir sampling). Layers fed the same tensor (a block's q/k/v
projections, its MLP's gate and up) share one entry, named as the server
reads it: `P.{q_proj,k_proj,v_proj}.hessian`. PyTorch is imported only
here (Debian's python3-torch).
"""
import fnmatch
import os
import sys

import numpy as np

from solverd import safetensors


class _Group:
    """The layers that read one input, and what was accumulated from it."""

    def __init__(self, name, in_features):
        self.members = [name]
        self.in_features = in_features
        self.hessian = None  # float64 torch tensor [in, in]
        self.tokens = 0
        self.sample = None   # float32 torch tensor [sample_rows, in]
        self.seen = 0        # rows offered to the sample


class _Capture:
    def __init__(self, torch, sample_rows, generator):
        self.torch = torch
        self.sample_rows = sample_rows
        self.generator = generator
        self.groups = {}       # layer name -> _Group
        self.batch_inputs = []  # (input tensor, group) seen in this batch

    def hook(self, name, module, x):
        # `x` itself, not a detached view: layers that read one input are
        # handed the same tensor object, and that is how they are found.
        for seen, group in self.batch_inputs:
            if seen is x:  # one input, several layers: counted once
                if self.groups.setdefault(name, group) is not group:
                    raise ValueError(f"capture_calibration: layer {name} read the input of "
                                     f"{group.members[0]} in one batch, not in an earlier one")
                if name not in group.members:
                    group.members.append(name)
                return
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = _Group(name, module.in_features)
        elif group.members[0] != name:
            raise ValueError(f"capture_calibration: layer {name} no longer reads the input of "
                             f"{group.members[0]}")
        self.batch_inputs.append((x, group))
        self.accumulate(group, x.reshape(-1, x.shape[-1]))

    def accumulate(self, group, rows):
        torch = self.torch
        wide = rows.to(torch.float64)
        product = wide.T @ wide
        group.hessian = product if group.hessian is None else group.hessian + product
        group.tokens += rows.shape[0]
        if self.sample_rows > 0:
            self.offer(group, rows.to(torch.float32))

    def offer(self, group, rows):
        """Reservoir sampling (Algorithm R): each row seen so far is in the
        sample with the same probability."""
        torch, k = self.torch, self.sample_rows
        if group.sample is None:
            group.sample = torch.zeros(k, rows.shape[1], dtype=torch.float32, device=rows.device)
        index = torch.arange(group.seen, group.seen + rows.shape[0])
        slot = torch.where(index < k, index,
                           (torch.rand(index.shape, generator=self.generator) * (index + 1)).long())
        keep = slot < k
        group.sample[slot[keep].to(rows.device)] = rows[keep.to(rows.device)]
        group.seen += rows.shape[0]


def _entry_name(members):
    """The name one entry is stored under for `members`, or None when they
    do not share a parent module (each then gets a copy)."""
    if len(members) == 1:
        return members[0]
    parents = {m.rsplit(".", 1)[0] for m in members}
    if len(parents) != 1 or any("." not in m for m in members):
        return None
    return parents.pop() + ".{" + ",".join(m.rsplit(".", 1)[1] for m in members) + "}"


def _progress_bar(progress, total):
    if callable(progress):
        return progress, None
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None, None
    from tqdm import tqdm
    bar = tqdm(total=total, unit="batch", desc="calibration")
    return (lambda done, _total: bar.update(done - bar.n)), bar


def capture_calibration(model, batches, path, *, layers=("*",), exclude=(), sample_rows=0,
                        dtype="float32", progress=None, seed=0):
    """Runs `model` on every batch (a tensor: model(batch); a dict:
    model(**batch); a tuple: model(*batch)) under torch.no_grad() and writes
    the calibration safetensors file at `path` for the nn.Linear layers
    whose names match a glob of `layers` and none of `exclude`.

    sample_rows: rows of each group's inputs kept as `.inputs` (a uniform
    sample; dmmv needs them, GPTQ does not). dtype: "float32" (half the
    bytes) or "float64" for the Hessians. progress: None draws a tqdm bar
    on a terminal; True always, False never; a callable gets (batches done,
    total or None).

    Returns {entry name: {"layers": [...], "tokens": n, "in_features": d}}.
    Holding every Hessian at once takes sum(d^2) float64 values on the
    activations' device: for a large model capture a few blocks per call
    (layers=["model.layers.0.*", ...]).
    """
    import torch
    if dtype not in ("float32", "float64"):
        raise ValueError("dtype: float32 or float64")
    generator = torch.Generator().manual_seed(seed)
    capture = _Capture(torch, int(sample_rows), generator)
    handles = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        if not any(fnmatch.fnmatchcase(name, g) for g in layers) or \
                any(fnmatch.fnmatchcase(name, g) for g in exclude):
            continue
        handles.append(module.register_forward_pre_hook(
            lambda m, args, name=name: capture.hook(name, m, args[0])))
    if not handles:
        raise ValueError("capture_calibration: no nn.Linear layer matches `layers`")
    total = len(batches) if hasattr(batches, "__len__") else None
    report, bar = _progress_bar(progress, total)
    try:
        with torch.no_grad():
            for done, batch in enumerate(batches, 1):
                capture.batch_inputs = []
                if isinstance(batch, dict):
                    model(**batch)
                elif isinstance(batch, (tuple, list)):
                    model(*batch)
                else:
                    model(batch)
                capture.batch_inputs = []
                if report:
                    report(done, total)
    finally:
        for h in handles:
            h.remove()
        if bar is not None:
            bar.close()
    return _write(capture, path, np.float32 if dtype == "float32" else np.float64)


def _write(capture, path, hessian_dtype):
    tensors, summary, written = {}, {}, set()
    for group in capture.groups.values():
        if id(group) in written:
            continue
        written.add(id(group))
        shared = _entry_name(group.members)
        for name in [shared] if shared else group.members:
            tensors[name + ".hessian"] = group.hessian.cpu().numpy().astype(hessian_dtype)
            tensors[name + ".tokens"] = np.array(group.tokens, dtype=np.int64)
            if group.sample is not None:
                rows = min(group.seen, capture.sample_rows)
                tensors[name + ".inputs"] = group.sample[:rows].cpu().numpy()
            summary[name] = {"layers": list(group.members), "tokens": group.tokens,
                             "in_features": group.in_features}
    safetensors.write(path, tensors)
    return summary


# --- quantize: a model file or checkpoint folder through the server ---

_METHODS = ("rtn", "gptq", "dmmv", "nf4", "int8-blockwise", "hqq")
_FORMATS = ("solverd", "gptq", "gguf")
_GGUF_TYPES = ("from-bits", "f16", "q4_k", "q5_k", "q6_k", "q4_k_m")


class Quantized:
    """What quantize() made: `path` (the file, or the folder of a gptq
    checkpoint), the server's QuantResult as `result`, and its job id."""

    def __init__(self, path, result, job_id):
        self.path, self.result, self.job_id = path, result, job_id
        self.average_bits = result.average_bits
        self.bytes = result.output_bytes
        self.layers = list(result.layers)


def _enum(proto, prefix, name, choices, what):
    if name not in choices:
        raise ValueError(f"{what} must be one of {list(choices)}, got {name!r}")
    return getattr(proto, prefix + name.upper().replace("-", "_"))


def _upload(client, path, progress):
    """A QuantFile for a file or a checkpoint folder, uploaded."""
    if os.path.isdir(path):
        return client.upload_checkpoint(path, progress=progress)
    from solverd.v1 import quant_pb2
    return quant_pb2.QuantFile(blob_id=client.upload_file(path, progress=progress).blob_id)


def _save(client, result, out, progress):
    """Downloads the output to `out`: a file, or (a gptq checkpoint, sent
    as a tar) a folder of its files."""
    if not result.output_files:
        client.download_file(result.output_blob_id, out, size=result.output_bytes,
                             progress=progress)
        return out
    import tarfile
    import tempfile
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(out))) as tmp:
        packed = os.path.join(tmp, "output.tar")
        client.download_file(result.output_blob_id, packed, size=result.output_bytes,
                             progress=progress)
        os.makedirs(out, exist_ok=True)
        with tarfile.open(packed) as tar:
            for name in result.output_files:  # only the members the server named
                member = tar.getmember(name)
                if os.path.isabs(name) or ".." in name.split("/") or not member.isfile():
                    raise IOError(f"unexpected member {name!r} in the output")
                with tar.extractfile(member) as src, open(os.path.join(out, name), "wb") as dst:
                    dst.write(src.read())
    return out


def quantize(model, *, method="rtn", bits=4, group_size=128, out=None, calibration=None,
             calibration_tokens=None, calibration_text=None, format="solverd",
             gguf_type=None, client=None, server=None, progress=True, timeout=None,
             device=None, **fields):
    """Quantizes a safetensors file or a Hugging Face checkpoint folder on
    the server, streaming it up and the result down to `out` (None: keep it
    on the server, result.output_blob_id). calibration: a calibration file
    path (inputs or Hessians, capture_calibration writes one);
    calibration_tokens: an int array [sequences, length]; calibration_text:
    a str (tokenized by the checkpoint's tokenizer on the server). fields:
    any other QuantProblem field (k_quant=True, target_bits=3.5, ...).

        >>> q = solverd.quant.quantize("model.safetensors", bits=4,        # doctest: +SKIP
        ...                            out="model-q4.safetensors")
    """
    from solverd import calls
    from solverd.v1 import quant_pb2
    problem = quant_pb2.QuantProblem(
        method=_enum(quant_pb2, "QUANT_METHOD_", method, _METHODS, "method"), bits=bits,
        group_size=group_size,
        format=_enum(quant_pb2, "QUANT_FORMAT_", format, _FORMATS, "format"), **fields)
    if gguf_type is not None:
        problem.gguf_type = _enum(quant_pb2, "QUANT_GGUF_TYPE_", gguf_type, _GGUF_TYPES,
                                  "gguf_type")
    with calls.connection(client, server) as c:
        problem.model.CopyFrom(_upload(c, os.fspath(model), progress))
        if calibration is not None:
            problem.calibration.CopyFrom(_upload(c, os.fspath(calibration), progress))
        if calibration_tokens is not None:
            tokens = safetensors.save({"tokens": np.asarray(calibration_tokens, np.int32)})
            problem.calibration_tokens.blob_id = c.upload_bytes(tokens).blob_id
        if calibration_text is not None:
            problem.calibration_text.blob_id = c.upload_bytes(calibration_text.encode()).blob_id
        job, result = calls.run(c, problem, progress=progress, timeout=timeout, device=device,
                                description="quant")
        path = _save(c, result, os.fspath(out), progress) if out is not None else None
    return Quantized(path, result, job.id)
