#!/usr/bin/python3
"""Converts Debian gnubg's trained networks (/usr/lib/gnubg/gnubg.wd) to a
safetensors model, plus calibration inputs for its layers.

gnubg.wd is a float32 binary file: the magic 472.3782 and a version, then
six networks, each: int32 inputs, hidden, outputs, trained; float32
beta_hidden, beta_output; hidden weights [inputs][hidden], output weights
[hidden][outputs], hidden thresholds [hidden], output thresholds [outputs].
Each network becomes netK.hidden.{weight,bias} ([hidden, inputs], as
linear layers store it) and netK.output.{weight,bias}.

The calibration inputs are synthetic: gnubg's inputs are sparse 0/1 board
encodings, so layer 1 sees random sparse binary vectors (density 0.1) and
layer 2 the sigmoid hidden activations those produce. No real positions.
"""
import argparse
import struct

import numpy as np

from solverd import safetensors  # PYTHONPATH=<build>/python

MAGIC = 472.3782


def read_networks(path):
    data = open(path, "rb").read()
    magic, _version = struct.unpack("<2f", data[:8])
    if abs(magic - MAGIC) > 1e-3:
        raise ValueError(f"{path}: not a gnubg binary weights file")
    offset, nets = 8, []
    while offset < len(data):
        n_in, n_hidden, n_out, _trained = struct.unpack("<4i", data[offset:offset + 16])
        beta_hidden, beta_out = struct.unpack("<2f", data[offset + 16:offset + 24])
        offset += 24

        def take(count):
            nonlocal offset
            a = np.frombuffer(data, "<f4", count, offset).copy()
            offset += 4 * count
            return a
        hidden = take(n_in * n_hidden).reshape(n_in, n_hidden).T
        output = take(n_hidden * n_out).reshape(n_hidden, n_out).T
        nets.append({"hidden.weight": np.ascontiguousarray(hidden),
                     "output.weight": np.ascontiguousarray(output),
                     "hidden.bias": take(n_hidden), "output.bias": take(n_out),
                     "beta_hidden": beta_hidden})
    return nets


def convert(path, tokens=512, seed=1):
    model, calibration = {}, {}
    rng = np.random.default_rng(seed)
    for k, net in enumerate(read_networks(path)):
        for name in ("hidden.weight", "hidden.bias", "output.weight", "output.bias"):
            model[f"net{k}.{name}"] = net[name]
        n_in = net["hidden.weight"].shape[1]
        x = (rng.random((tokens, n_in)) < 0.1).astype(np.float32)
        pre = x @ net["hidden.weight"].T + net["hidden.bias"]
        h = 1 / (1 + np.exp(-np.clip(net["beta_hidden"] * pre, -60, 60)))
        calibration[f"net{k}.hidden.inputs"] = x
        calibration[f"net{k}.output.inputs"] = h.astype(np.float32)
    return safetensors.save(model, {"source": path}), safetensors.save(calibration)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", default="/usr/lib/gnubg/gnubg.wd")
    parser.add_argument("--model", required=True)
    parser.add_argument("--calibration", required=True)
    args = parser.parse_args()
    model, calibration = convert(args.weights)
    open(args.model, "wb").write(model)
    open(args.calibration, "wb").write(calibration)


if __name__ == "__main__":
    main()
