"""The calibration half of the quant benchmark (cases llama_test_model_w4
and _w3): the Llama test model (llama_lm.py, cached) quantized by rtn, by
gptq from the fp32 model's activations (the inputs file: every linear
layer's inputs, as lm.linear_inputs captures them), by gptq from the
Hessians solverd.quant.capture_calibration writes from the same windows,
and by gptq calibrated sequentially by the server from the windows' token
ids (toward the fp32 model's outputs), at 4 and 3 bits, group 128; each
output read back by the Python package and scored by PyTorch on held-out
text. calibration_bytes is the size of the
calibration file the client uploads. Every calibrated system runs on
CALIBRATION_SETS sets of windows (the same windows shifted along the text):
on a model this small the order of float sums alone moves a 3-bit
perplexity by 0.2%, so one set cannot tell two methods apart; the records
give the mean over the sets and its spread (max - min)."""
import os
import tempfile
import time

import numpy as np

import lm
import llama_lm
import llama_bench
import solverd

quant = solverd.quant_pb2
SEQUENCES = 32  # calibration windows of training text, as case llama_test_model
CALIBRATION_SETS = 3
SYSTEMS = (("solverd-rtn", quant.QUANT_METHOD_RTN, None),
           ("solverd-gptq", quant.QUANT_METHOD_GPTQ, "inputs"),
           ("solverd-gptq-hessian", quant.QUANT_METHOD_GPTQ, "hessian"),
           ("solverd-gptq-sequential", quant.QUANT_METHOD_GPTQ, "tokens"))


def calibration_files(weights, train, shift):
    """{kind: bytes of the calibration file} for the three kinds, from the
    windows spread over the text from byte `shift` on."""
    windows = llama_lm.calibration_windows(train[shift:], SEQUENCES)
    tokens = solverd.safetensors.save({"tokens": windows.numpy().astype(np.int32)})
    inputs = solverd.safetensors.save(lm.linear_inputs(llama_lm.load(weights), windows))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "hessian.safetensors")
        solverd.quant.capture_calibration(llama_lm.load(weights), list(windows.split(8)), path,
                                          progress=False)
        with open(path, "rb") as f:
            hessian = f.read()
    return {"inputs": inputs, "hessian": hessian, "tokens": tokens}


def quantize(client, held, fields):
    """(perplexity, seconds) of one Quantize call."""
    start = time.perf_counter()
    result = client.solve(quant.QuantProblem(**fields), timeout=None)
    seconds = time.perf_counter() - start
    dequantized = solverd.safetensors.dequantize(client.download_bytes(result.output_blob_id))
    return llama_lm.perplexity(dequantized, held), seconds, result.device


def run_calibration(client, records, rows):
    """Every system at 4 and 3 bits; the rows of the markdown table."""
    folder = llama_bench.test_model()
    weights = llama_lm.load_checkpoint(folder)
    train, held = lm.split(lm.kjv_text())
    fp32 = llama_lm.perplexity(weights, held)
    rows.append(f"| fp32 | | {fp32:.4f} | | | | |")
    model = client.upload_checkpoint(folder, progress=False)
    stride = (len(train) - llama_lm.CONTEXT) // SEQUENCES
    runs = {}  # (system, bits) -> [(perplexity, seconds, device)] over the sets
    sizes = {}
    for shift in range(CALIBRATION_SETS):
        files = calibration_files(weights, train, shift * stride // CALIBRATION_SETS)
        sizes = {kind: len(data) for kind, data in files.items()}
        blobs = {kind: quant.QuantFile(blob_id=client.upload_bytes(data).blob_id)
                 for kind, data in files.items()}
        for bits in (4, 3):
            for system, method, kind in SYSTEMS:
                if kind is None and shift > 0:
                    continue  # rtn reads no calibration
                fields = dict(model=model, method=method, bits=bits, group_size=128)
                if kind is not None:
                    fields["calibration_tokens" if kind == "tokens" else "calibration"] = \
                        blobs[kind]
                runs.setdefault((system, bits), []).append(quantize(client, held, fields))
    for bits in (4, 3):
        case = f"{llama_bench.CASE}_w{bits}"
        records.append({"case": case, "system": "fp32", "backend": "cpu",
                        "metric": "perplexity", "value": fp32})
        for system, _, kind in SYSTEMS:
            got = runs[(system, bits)]
            ppl = float(np.mean([p for p, _, _ in got]))
            spread = max(p for p, _, _ in got) - min(p for p, _, _ in got)
            seconds = float(np.mean([s for _, s, _ in got]))
            sent = sizes[kind] if kind is not None else 0
            for metric, value in (("perplexity", ppl), ("perplexity_spread", spread),
                                  ("calibration_bytes", sent), ("seconds", seconds)):
                records.append({"case": case, "system": system, "backend": got[0][2],
                                "metric": metric, "value": float(value)})
            rows.append(f"| {system} | {bits} | {ppl:.4f} | {spread:.4f} | {ppl / fp32:.4f} | "
                        f"{sent} | {seconds:.2f} |")
            print(rows[-1], flush=True)


def section(rows):
    return [f"## Calibration: activations or Hessians (cases {llama_bench.CASE}_w4, _w3)", "",
            "The Llama test model of case llama_test_model in solverd's own format, group 128, "
            "perplexity per byte by PyTorch on the weights read back by the Python package. "
            f"Calibration: {SEQUENCES} windows of training text through the fp32 model, sent as "
            "every linear layer's inputs (solverd-gptq) or as the Hessians "
            "solverd.quant.capture_calibration writes (solverd-gptq-hessian: one F32 entry per "
            "input, shared by q/k/v and by gate/up); solverd-gptq-sequential sends the windows' "
            "token ids and the server runs the model block by block, each layer calibrated on "
            "the outputs of the layers already quantized and rounded toward the fp32 model's "
            "outputs (a reference pass beside; GPTAQ's asymmetric calibration). Each "
            "calibrated system runs on "
            f"{CALIBRATION_SETS} sets of windows (shifted along the text): perplexity is the "
            "mean over the sets and spread its max - min (the order of float sums alone moves "
            "a 3-bit perplexity of this small model by 0.2%, so one set cannot rank methods). "
            "calibration_bytes: the file the client uploads. seconds: the Quantize call, upload "
            "excluded, mean over the sets.", "",
            "| system | bits | perplexity | spread | / fp32 | calibration bytes | seconds |",
            "|---|---|---|---|---|---|---|", *rows, ""]
