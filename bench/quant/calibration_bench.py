"""The calibration half of the quant benchmark (cases llama_test_model_w4
and _w3): the Llama test model (llama_lm.py, cached) quantized by rtn, by
gptq from the fp32 model's activations (the inputs file: every linear
layer's inputs, as lm.linear_inputs captures them), by gptq from the
Hessians solverd.quant.capture_calibration writes from the same windows,
and by gptq calibrated sequentially by the server from the windows' token
ids, at 4 and 3 bits, group 128; each output read back by the Python package and
scored by PyTorch on held-out text. calibration_bytes is the size of the
calibration file the client uploads."""
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
SYSTEMS = (("solverd-rtn", quant.QUANT_METHOD_RTN, None),
           ("solverd-gptq", quant.QUANT_METHOD_GPTQ, "inputs"),
           ("solverd-gptq-hessian", quant.QUANT_METHOD_GPTQ, "hessian"),
           ("solverd-gptq-sequential", quant.QUANT_METHOD_GPTQ, "tokens"))


def calibration_files(weights, train):
    """{kind: bytes of the calibration file} for the three kinds."""
    windows = llama_lm.calibration_windows(train, SEQUENCES)
    tokens = solverd.safetensors.save({"tokens": windows.numpy().astype(np.int32)})
    inputs = solverd.safetensors.save(lm.linear_inputs(llama_lm.load(weights), windows))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "hessian.safetensors")
        solverd.quant.capture_calibration(llama_lm.load(weights), list(windows.split(8)), path,
                                          progress=False)
        with open(path, "rb") as f:
            hessian = f.read()
    return {"inputs": inputs, "hessian": hessian, "tokens": tokens}


def run_calibration(client, records, rows):
    """Every system at 4 and 3 bits; the rows of the markdown table."""
    folder = llama_bench.test_model()
    weights = llama_lm.load_checkpoint(folder)
    train, held = lm.split(lm.kjv_text())
    fp32 = llama_lm.perplexity(weights, held)
    rows.append(f"| fp32 | | {fp32:.4f} | | | |")
    model = client.upload_checkpoint(folder, progress=False)
    files = calibration_files(weights, train)
    blobs = {kind: quant.QuantFile(blob_id=client.upload_bytes(data).blob_id)
             for kind, data in files.items()}
    for bits in (4, 3):
        case = f"{llama_bench.CASE}_w{bits}"
        records.append({"case": case, "system": "fp32", "backend": "cpu",
                        "metric": "perplexity", "value": fp32})
        for system, method, kind in SYSTEMS:
            fields = dict(model=model, method=method, bits=bits, group_size=128)
            if kind is not None:
                fields["calibration_tokens" if kind == "tokens" else "calibration"] = blobs[kind]
            start = time.perf_counter()
            result = client.solve(quant.QuantProblem(**fields), timeout=None)
            seconds = time.perf_counter() - start
            dequantized = solverd.safetensors.dequantize(
                client.download_bytes(result.output_blob_id))
            ppl = llama_lm.perplexity(dequantized, held)
            sent = len(files[kind]) if kind is not None else 0
            for metric, value in (("perplexity", ppl), ("calibration_bytes", sent),
                                  ("seconds", seconds)):
                records.append({"case": case, "system": system, "backend": result.device,
                                "metric": metric, "value": float(value)})
            rows.append(f"| {system} | {bits} | {ppl:.4f} | {ppl / fp32:.4f} | {sent} | "
                        f"{seconds:.2f} |")
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
            "the outputs of the layers already quantized. calibration_bytes: the file the "
            "client uploads. seconds: the Quantize call, upload excluded.", "",
            "| system | bits | perplexity | / fp32 | calibration bytes | seconds |",
            "|---|---|---|---|---|---|", *rows, ""]
