"""GGUF files (llama.cpp's format) as numpy arrays: metadata, and every
tensor dequantized to float32, written from the GGUF v3 specification and
ggml's block layouts (ggml-common.h), independent of the server's C++.

    tensors, metadata = gguf.load(data)   # {name: float32 array}, {key: value}
    types = gguf.tensor_types(data)       # {name: "Q4_K", ...}
    weights = gguf.llama_to_hf(tensors, metadata)  # Hugging Face's names again

Arrays have the tensor's shape outermost first (a weight [out, in]), as
safetensors and PyTorch order it; GGUF lists dimensions innermost first.
Types read: F32, F16, BF16, Q4_0, Q8_0, Q4_K, Q5_K, Q6_K.
"""
import struct

import numpy as np

_TYPE_NAMES = {0: "F32", 1: "F16", 2: "Q4_0", 8: "Q8_0", 12: "Q4_K", 13: "Q5_K",
               14: "Q6_K", 30: "BF16"}
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_HALF = np.dtype("<f2")
# One block of each quantized type, as ggml lays it out.
_BLOCKS = {
    "Q4_0": np.dtype([("d", _HALF), ("q", "u1", 16)]),
    "Q8_0": np.dtype([("d", _HALF), ("q", "i1", 32)]),
    "Q4_K": np.dtype([("d", _HALF), ("dmin", _HALF), ("scales", "u1", 12), ("qs", "u1", 128)]),
    "Q5_K": np.dtype([("d", _HALF), ("dmin", _HALF), ("scales", "u1", 12), ("qh", "u1", 32),
                      ("qs", "u1", 128)]),
    "Q6_K": np.dtype([("ql", "u1", 128), ("qh", "u1", 64), ("scales", "i1", 16), ("d", _HALF)]),
}
_BLOCK_WEIGHTS = {"Q4_0": 32, "Q8_0": 32, "Q4_K": 256, "Q5_K": 256, "Q6_K": 256}


class _Reader:
    def __init__(self, data):
        self.data, self.at = memoryview(data), 0

    def take(self, fmt):
        (value,) = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return value

    def string(self):
        n = self.take("<Q")
        self.at += n
        return bytes(self.data[self.at - n:self.at]).decode("utf-8")

    def value(self, kind):
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            element, n = self.take("<I"), self.take("<Q")
            return [self.value(element) for _ in range(n)]
        if kind not in _SCALARS:
            raise ValueError(f"gguf: unknown metadata value type {kind}")
        return self.take(_SCALARS[kind])


def _parse(data):
    r = _Reader(data)
    if bytes(r.data[:4]) != b"GGUF":
        raise ValueError("gguf: not a GGUF file (no magic)")
    r.at = 4
    version = r.take("<I")
    if version != 3:
        raise ValueError(f"gguf: version {version}; only 3 is read")
    n_tensors, n_kv = r.take("<Q"), r.take("<Q")
    metadata = {}
    for _ in range(n_kv):
        key = r.string()
        metadata[key] = r.value(r.take("<I"))
    infos = []
    for _ in range(n_tensors):
        name = r.string()
        dims = [r.take("<Q") for _ in range(r.take("<I"))]
        infos.append((name, tuple(reversed(dims)), r.take("<I"), r.take("<Q")))
    alignment = metadata.get("general.alignment", 32)
    base = (r.at + alignment - 1) // alignment * alignment
    return metadata, infos, base


def _k_scales_and_mins(scales):
    """Q4_K / Q5_K: the 12 bytes of 6-bit scales and mins, as [blocks, 8] each."""
    s = scales.astype(np.int32)
    sc = np.empty(s.shape[:-1] + (8,), np.int32)
    m = np.empty_like(sc)
    sc[..., :4] = s[..., 0:4] & 63
    m[..., :4] = s[..., 4:8] & 63
    sc[..., 4:] = (s[..., 8:12] & 0xF) | ((s[..., 0:4] >> 6) << 4)
    m[..., 4:] = (s[..., 8:12] >> 4) | ((s[..., 4:8] >> 6) << 4)
    return sc, m


def _dequantize_blocks(kind, blocks):
    """[blocks, weights per block] float32 values of an array of blocks."""
    d = blocks["d"].astype(np.float32)[:, None]
    if kind == "Q8_0":
        return d * blocks["q"].astype(np.float32)
    if kind == "Q4_0":
        q = np.concatenate([blocks["q"] & 0xF, blocks["q"] >> 4], axis=1)
        return d * (q.astype(np.float32) - 8)
    if kind == "Q6_K":
        ql, qh = blocks["ql"].reshape(-1, 2, 64), blocks["qh"].reshape(-1, 2, 32)
        low = np.concatenate([ql[..., :32] & 0xF, ql[..., 32:] & 0xF, ql[..., :32] >> 4,
                              ql[..., 32:] >> 4], axis=2)           # [n, half, 128]
        high = np.concatenate([(qh >> s) & 3 for s in (0, 2, 4, 6)], axis=2)
        q = (low | (high << 4)).astype(np.float32).reshape(-1, 256) - 32
        scales = np.repeat(blocks["scales"].astype(np.float32), 16, axis=1)
        return (d * scales) * q
    # Q4_K, Q5_K: chunk c of 64 weights is the low then high nibbles of bytes [32c, 32c + 32).
    qs = blocks["qs"].reshape(-1, 4, 32)
    q = np.stack([qs & 0xF, qs >> 4], axis=2).reshape(-1, 256).astype(np.int32)
    if kind == "Q5_K":
        bit = np.arange(8)[None, :, None]                          # group g: bit g of qh
        q += (((blocks["qh"][:, None, :] >> bit) & 1) * 16).reshape(-1, 256)
    sc, m = _k_scales_and_mins(blocks["scales"])
    dmin = blocks["dmin"].astype(np.float32)[:, None]
    scale = np.repeat(d * sc.astype(np.float32), 32, axis=1)
    offset = np.repeat(dmin * m.astype(np.float32), 32, axis=1)
    return scale * q.astype(np.float32) - offset


def _tensor(data, kind, shape, start):
    count = int(np.prod(shape)) if shape else 1
    if kind in ("F32", "F16"):
        dtype = np.dtype("<f4" if kind == "F32" else "<f2")
        values = np.frombuffer(data, dtype, count, start).astype(np.float32)
    elif kind == "BF16":
        bits = np.frombuffer(data, "<u2", count, start).astype(np.uint32) << 16
        values = bits.view(np.float32)
    else:
        n = count // _BLOCK_WEIGHTS[kind]
        values = _dequantize_blocks(kind, np.frombuffer(data, _BLOCKS[kind], n, start))
    return values.reshape(shape)


def tensor_types(data):
    """{name: type name} of a GGUF file's tensors, in file order."""
    _, infos, _ = _parse(data)
    return {name: _TYPE_NAMES.get(kind, str(kind)) for name, _, kind, _ in infos}


def load(data):
    """({name: float32 array}, metadata) of a GGUF file."""
    metadata, infos, base = _parse(data)
    tensors = {}
    for name, shape, kind, offset in infos:
        if kind not in _TYPE_NAMES:
            raise ValueError(f"gguf: tensor {name} has type {kind}, which this reader lacks")
        tensors[name] = _tensor(data, _TYPE_NAMES[kind], shape, base + offset)
    return tensors, metadata


# llama.cpp's tensor names for a Llama-family checkpoint's (blk.N. for
# model.layers.N.), as its converter writes them.
_LLAMA_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm",
                "output": "lm_head", "attn_norm": "input_layernorm",
                "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
                "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
                "ffn_norm": "post_attention_layernorm", "ffn_gate": "mlp.gate_proj",
                "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def llama_to_hf(tensors, metadata):
    """A Llama-family GGUF's tensors under Hugging Face's names, with the Q
    and K rows of a "llama" file put back from llama.cpp's RoPE order
    (each head's rotation pairs adjacent) to Hugging Face's (first half
    with second half)."""
    arch = metadata["general.architecture"]
    heads = metadata[f"{arch}.attention.head_count"]
    kv_heads = metadata.get(f"{arch}.attention.head_count_kv", heads)
    out = {}
    for name, value in tensors.items():
        parts = name.split(".")
        if parts[0] != "blk":
            out[f"{_LLAMA_NAMES[parts[0]]}.{parts[-1]}"] = value
            continue
        groups = {"attn_q": heads, "attn_k": kv_heads}.get(parts[2])
        if arch == "llama" and groups and value.ndim == 2:
            rows, cols = value.shape
            value = value.reshape(groups, rows // groups // 2, 2, cols).swapaxes(1, 2) \
                .reshape(rows, cols)
        out[f"model.layers.{parts[1]}.{_LLAMA_NAMES[parts[2]]}.{parts[3]}"] = value
    return out
