#!/usr/bin/python3
"""The quant benchmark's driver (see bench/quant/run): submits each method
to a running solverd, checks every returned file by dequantizing it here,
and writes bench/results/quant.{json,md}."""
import argparse
import json
import platform
import time

import numpy as np

import gnubg
import solverd
from solverd import safetensors

quant = solverd.quant_pb2
METHODS = [("solverd-rtn", quant.QUANT_METHOD_RTN), ("solverd-gptq", quant.QUANT_METHOD_GPTQ),
           ("solverd-dmmv", quant.QUANT_METHOD_DMMV), ("solverd-nf4", quant.QUANT_METHOD_NF4),
           ("solverd-hqq", quant.QUANT_METHOD_HQQ)]
ALLOCATION_BITS = 3.5


def machine():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()} ({len(__import__('os').sched_getaffinity(0))} cores)"
    return platform.processor()


def quantize(client, model_blob, calib_blob, method, bits, **options):
    problem = quant.QuantProblem(model=quant.QuantFile(blob_id=model_blob),
                                 calibration=quant.QuantFile(blob_id=calib_blob) if calib_blob else None,
                                 method=method, bits=bits, **options)
    return client.solve(problem)


def check_file(client, result, model, calibration):
    """The report's output errors, recomputed from the returned file."""
    weights = safetensors.dequantize(client.download_bytes(result.output_blob_id))
    for layer in result.layers:
        w = model[layer.name].astype(np.float64)
        x = calibration[layer.name.replace(".weight", ".inputs")].astype(np.float64)
        rel = np.linalg.norm((w - weights[layer.name]) @ x.T) / np.linalg.norm(w @ x.T)
        assert abs(rel - layer.relative_output_error) <= 1e-6 * max(1, rel), (layer.name, rel)


def record(records, case, system, result, metrics):
    for metric, value in metrics:
        records.append({"case": case, "system": system, "backend": result.device,
                        "metric": metric, "value": float(value)})


def total_squared_error(result, model, calibration, weights):
    total = 0.0
    for layer in result.layers:
        w = model[layer.name].astype(np.float64)
        x = calibration[layer.name.replace(".weight", ".inputs")].astype(np.float64)
        total += np.linalg.norm((w - weights[layer.name]) @ x.T) ** 2
    return total


def run_allocation(client, blobs, model, calibration, records, rows):
    """gptq with bits chosen per layer at 3.5 average bits against uniform
    3- and 4-bit gptq and rtn: summed squared output error over the layers
    (the quantity the allocation minimises)."""
    case = f"gnubg_bits{ALLOCATION_BITS}"
    runs = {"solverd-alloc": quantize(client, *blobs, quant.QUANT_METHOD_GPTQ, 0,
                                      target_bits=ALLOCATION_BITS)}
    for bits in (3, 4):
        for system, method in (("solverd-gptq", quant.QUANT_METHOD_GPTQ),
                               ("solverd-rtn", quant.QUANT_METHOD_RTN)):
            runs[f"{system} w{bits}"] = quantize(client, *blobs, method, bits)
    errors = {}
    for name, result in runs.items():
        weights = safetensors.dequantize(client.download_bytes(result.output_blob_id))
        errors[name] = total_squared_error(result, model, calibration, weights)
    for name, result in runs.items():
        if name == "solverd-alloc":
            record(records, case, name, result, (("output_error_squared", errors[name]),
                                                  ("average_bits", result.average_bits),
                                                  ("output_error_squared_over_rtn_w4",
                                                   errors[name] / errors["solverd-rtn w4"]),
                                                  ("seconds", result.seconds)))
        chosen = " ".join(str(l.bits) for l in result.layers) if name == "solverd-alloc" else ""
        rows.append(f"| {case} | {name} | {result.average_bits:.2f} | {errors[name]:.4g} | "
                    f"{errors[name] / errors['solverd-rtn w4']:.3f} | {chosen} |")


def run_gnubg(client, quick, records, rows, allocation_rows):
    model_bytes, calib_bytes = gnubg.convert("/usr/lib/gnubg/gnubg.wd")
    model, _ = safetensors.load(model_bytes)
    calibration, _ = safetensors.load(calib_bytes)
    model_blob = client.upload_bytes(model_bytes).blob_id
    calib_blob = client.upload_bytes(calib_bytes).blob_id
    run_allocation(client, (model_blob, calib_blob), model, calibration, records,
                   allocation_rows)
    for bits in (4, 3):
        case = f"gnubg_w{bits}"
        per_method = {}
        for system, method in METHODS:
            if method == quant.QUANT_METHOD_NF4 and bits != 4:
                continue
            result = quantize(client, model_blob, calib_blob, method,
                              0 if method == quant.QUANT_METHOD_NF4 else bits,
                              dmmv_time_limit_seconds=0.5 if quick else 2.0)
            check_file(client, result, model, calibration)
            per_method[system] = result
        rtn = per_method["solverd-rtn"]
        for system, result in per_method.items():
            rel = np.mean([l.relative_output_error for l in result.layers])
            viol_ratio = np.mean([l.max_violation / r.max_violation
                                  for l, r in zip(result.layers, rtn.layers)])
            rel_ratio = np.mean([l.relative_output_error / r.relative_output_error
                                 for l, r in zip(result.layers, rtn.layers)])
            seconds = sum(l.seconds for l in result.layers)
            record(records, case, system, result, (
                ("relative_output_error", rel),
                ("max_violation", np.mean([l.max_violation for l in result.layers])),
                ("seconds", seconds)))
            rows.append(f"| {case} | {system} | {rel:.5f} | {rel_ratio:.3f} | {viol_ratio:.3f} | "
                        f"{result.average_bits:.2f} | {seconds:.3f} |")


def numpy_rtn(w, bits, group):
    """Asymmetric per-group RTN in numpy, the same grid as solverd's."""
    rows, cols = w.shape
    g = w.astype(np.float32).reshape(rows, cols // group, group)
    lo, hi = np.minimum(g.min(2), 0), np.maximum(g.max(2), 0)
    maxq = 2 ** bits - 1
    scale = ((hi - lo) / maxq).astype(np.float16).astype(np.float32)
    scale[scale == 0] = 1
    zero = np.clip(np.rint(-lo / scale), 0, maxq)
    q = np.clip(np.rint(g / scale[..., None]) + zero[..., None], 0, maxq)
    return (scale[..., None] * (q - zero[..., None])).reshape(rows, cols)


def run_throughput(client, quick, records, rows):
    n = 1024 if quick else 4096
    case = "rtn_throughput_fp16_4096" if not quick else "rtn_throughput_fp16_1024"
    w = (0.02 * np.random.default_rng(1).standard_normal((n, n))).astype(np.float16)
    blob = client.upload_bytes(safetensors.save({"layer.weight": w})).blob_id
    result = quantize(client, blob, "", quant.QUANT_METHOD_RTN, 4)
    ours = result.layers[0].seconds
    start = time.perf_counter()
    numpy_rtn(w, 4, 128)
    theirs = time.perf_counter() - start
    for system, seconds in (("solverd-rtn", ours), ("numpy-rtn", theirs)):
        records.append({"case": case, "system": system, "backend": "cpu", "metric": "seconds",
                        "value": seconds})
        records.append({"case": case, "system": system, "backend": "cpu",
                        "metric": "bytes_per_second", "value": w.nbytes / seconds})
    rows.append(f"| {case} | {w.nbytes / ours / 1e9:.2f} GB/s ({ours:.3f} s) | "
                f"{w.nbytes / theirs / 1e9:.2f} GB/s ({theirs:.3f} s) | {theirs / ours:.1f} |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="bench/results/quant")
    args = parser.parse_args()
    records, gnubg_rows, allocation_rows, throughput_rows = [], [], [], []
    with solverd.Client(args.server) as client:
        run_gnubg(client, args.quick, records, gnubg_rows, allocation_rows)
        run_throughput(client, args.quick, records, throughput_rows)
    where = machine()
    json.dump({"family": "quant", "machine": where, "command": "bench/quant/run",
               "records": records}, open(args.out + ".json", "w"), indent=1)
    md = [f"# quant: solverd's methods on gnubg's trained networks, and RTN throughput", "",
          f"Machine: {where}. Command: `bench/quant/run`. One CPU lane. Layers: the 12 linear "
          "layers of Debian gnubg's six networks (gnubg.wd, converted by bench/quant/gnubg.py), "
          "group size 128, asymmetric; calibration inputs are synthetic (512 sparse 0/1 vectors "
          "for the first layers, their sigmoid activations for the second). Every returned file "
          "is dequantized by the Python reader and its output error recomputed.", "",
          "relative output error: mean over layers of ||(W - Q) X^T||_F / ||W X^T||_F; ratios: "
          "mean over layers of the method's figure over RTN's; max violation: max |x . (w - q)|.",
          "", "| case | system | rel. output error | / RTN | max violation / RTN | avg bits | "
          "seconds |", "|---|---|---|---|---|---|---|", *gnubg_rows, "",
          f"## Bit allocation at {ALLOCATION_BITS} average bits (gptq, widths from 2, 3, 4, 8 "
          "per layer)", "",
          "Summed over the 12 layers: ||(W - Q) X^T||_F^2 on the calibration inputs, recomputed "
          "from the returned files; / RTN w4: over uniform 4-bit RTN's.", "",
          "| case | system | avg bits | output error^2 | / RTN w4 | bits per layer |",
          "|---|---|---|---|---|---|", *allocation_rows, "",
          "## RTN throughput (4-bit, group 128, one fp16 layer; quantize time from the layer "
          "report)", "", "| case | solverd-rtn | numpy-rtn | solverd speed-up |", "|---|---|---|---|",
          *throughput_rows, ""]
    open(args.out + ".md", "w").write("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
