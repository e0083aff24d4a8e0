"""safetensors files as numpy arrays, and solverd's quantized files back to
float: a reader written from the layouts' definitions (README, "quant"),
independent of the server's C++.

    data = safetensors.save({"fc.weight": w}, metadata={"k": "v"})
    tensors, metadata = safetensors.load(data)
    weights = safetensors.dequantize(quantized_bytes)   # {name: float32 array}
"""
import json
import struct

import numpy as np

_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
           "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}
_LAYER_PREFIX = "solverd.layer."


def _header(tensors, metadata):
    """The 8-byte length and JSON header for `tensors` ({name: contiguous
    little-endian array}), padded to a multiple of 8 bytes."""
    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = dict(metadata)
    for name, a in tensors.items():
        header[name] = {"dtype": _NAMES[a.dtype.newbyteorder("=")], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def _little_endian(tensors):
    out = {}
    for name, array in tensors.items():
        a = np.asarray(array)  # not ascontiguousarray: it makes scalars 1-D
        out[name] = np.require(a.astype(a.dtype.newbyteorder("<"), copy=False), requirements="C")
    return out


def save(tensors, metadata=None) -> bytes:
    """A safetensors file holding `tensors` ({name: array}) in the given order."""
    arrays = _little_endian(tensors)
    return _header(arrays, metadata) + b"".join(a.tobytes() for a in arrays.values())


def write(path, tensors, metadata=None):
    """save() straight to the file at `path`, one tensor at a time, so that
    a file of many large tensors is never built whole in memory."""
    arrays = _little_endian(tensors)
    with open(path, "wb") as f:
        f.write(_header(arrays, metadata))
        for a in arrays.values():
            f.write(memoryview(a.reshape(-1)).cast("B") if a.size else b"")


def load(data: bytes):
    """({name: array}, metadata) of a safetensors file."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", {})
    body = memoryview(data)[8 + n:]
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        if info["dtype"] == "BF16":
            raw = np.frombuffer(body[begin:end], dtype="<u2").astype(np.uint32) << 16
            array = raw.view(np.float32)
        else:
            array = np.frombuffer(body[begin:end], dtype=np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<"))
        tensors[name] = array.reshape(info["shape"])
    return tensors, metadata


def unpack_codes(packed: np.ndarray, cols: int, bits: int) -> np.ndarray:
    """Codes of a [rows, ceil(cols * bits / 8)] U8 array: each row a bit
    stream, code c in bits [c * bits, (c + 1) * bits), least significant first."""
    bit_stream = np.unpackbits(packed, axis=1, bitorder="little")[:, :cols * bits]
    weights = (1 << np.arange(bits)).astype(np.int64)
    return (bit_stream.reshape(packed.shape[0], cols, bits) * weights).sum(axis=2)


def dequantize(data: bytes):
    """{source tensor name: float32 weights} for each quantized layer of a
    solverd quantized file, plus every other tensor as stored."""
    tensors, metadata = load(data)
    out, used = {}, set()
    for key, value in metadata.items():
        if not key.startswith(_LAYER_PREFIX):
            continue
        layer, d = key[len(_LAYER_PREFIX):], json.loads(value)
        rows, cols = d["shape"]
        codes = unpack_codes(tensors[layer + ".qweight"], cols, d["bits"])
        used.add(layer + ".qweight")
        if d["method"] in ("nf4", "int8-blockwise"):
            book = tensors[layer + ".codebook"]
            if d["double_quant"]:
                c = tensors[layer + ".absmax_codes"].astype(np.float32)
                scales = np.repeat(tensors[layer + ".absmax_scales"], 256)[:len(c)]
                absmax = tensors[layer + ".absmax_offset"][0] + scales * (c - np.float32(128))
                used.update(layer + s for s in (".absmax_codes", ".absmax_scales", ".absmax_offset"))
            else:
                absmax = tensors[layer + ".absmax"]
                used.add(layer + ".absmax")
            flat = np.repeat(absmax, d["group_size"])[:rows * cols] * book[codes.reshape(-1)]
            out[d["source"]] = flat.reshape(rows, cols).astype(np.float32)
            used.add(layer + ".codebook")
        else:
            group = np.arange(cols) // d["group_size"]
            scales = tensors[layer + ".scales"].astype(np.float32)[:, group]
            zeros = tensors[layer + ".zeros"].astype(np.float32)[:, group]
            out[d["source"]] = (scales * (codes.astype(np.float32) - zeros)).astype(np.float32)
            used.update((layer + ".scales", layer + ".zeros"))
    for name, array in tensors.items():
        if name not in used:
            out[name] = array
    return out
