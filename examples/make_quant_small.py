#!/usr/bin/env python3
"""Writes the files examples/quant_small.json names: a random 3-layer model
(model.safetensors, "layers.K.weight" F32) and calibration inputs for each
layer (calibration.safetensors, "layers.K.inputs" [256, in]), in
quant_small/ beside this script or in the folder given. numpy only; no
solverd package needed.

    python3 examples/make_quant_small.py && solverctl submit examples/quant_small.json --watch
"""
import json
import os
import struct
import sys

import numpy as np


def safetensors(tensors):
    """The bytes of a safetensors file of F32 arrays."""
    tensors = {name: np.ascontiguousarray(a, "<f4") for name, a in tensors.items()}
    header, offset = {}, 0
    for name, array in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(a.tobytes() for a in tensors.values())


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    folder = os.path.join(out, "quant_small")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    widths = [64, 128, 128, 64]
    weights, inputs = {}, {}
    for k, (n_in, n_out) in enumerate(zip(widths, widths[1:])):
        weights[f"layers.{k}.weight"] = rng.normal(size=(n_out, n_in)) / np.sqrt(n_in)
        inputs[f"layers.{k}.inputs"] = rng.normal(size=(256, n_in))
    for name, tensors in (("model", weights), ("calibration", inputs)):
        with open(os.path.join(folder, f"{name}.safetensors"), "wb") as f:
            f.write(safetensors(tensors))
    print(f"wrote {folder}/model.safetensors and calibration.safetensors")


if __name__ == "__main__":
    main()
