"""The llama.cpp half of the quant benchmark (case llama_test_model): the
Llama-architecture model trained here (llama_lm.py; cached, trained on
first use) goes to solverd as a Hugging Face checkpoint, comes back as GGUF
files of each type, and each file is scored twice on the same held-out
windows: by llama.cpp itself (npm's node-llama-cpp, prebuilt CPU build)
and by PyTorch on the file's own weights read back by the Python package.
System fp32 is the unquantized model in PyTorch. $SOLVERD_BENCH_LLAMA_MODEL
names another folder for the model."""
import os
import time

import numpy as np

import lm
import llama_lm
import solverd
from llama_lm import llamacpp

quant = solverd.quant_pb2
CASE = "llama_test_model"
CACHE = os.environ.get("SOLVERD_BENCH_LLAMA_MODEL",
                       os.path.expanduser("~/.cache/solverd-bench/llama-test-model"))
TRAIN_MINUTES = 20
# system: the QuantProblem's fields (calibration added for gptq).
SYSTEMS = [
    ("solverd-gguf-f16", dict(gguf_type=quant.QUANT_GGUF_TYPE_F16)),
    ("solverd-gguf-q8_0", dict(bits=8, group_size=32, symmetric=True)),
    ("solverd-gguf-q4_0", dict(bits=4, group_size=32, symmetric=True)),
    # Q4_K is Q4_0's size (4.5 bits per weight): the equal-size comparison.
    ("solverd-gguf-q4_k", dict(gguf_type=quant.QUANT_GGUF_TYPE_Q4_K)),
    ("solverd-gguf-q4_k-gptq", dict(gguf_type=quant.QUANT_GGUF_TYPE_Q4_K,
                                    method=quant.QUANT_METHOD_GPTQ)),
    ("solverd-gguf-q4_k_m", dict(gguf_type=quant.QUANT_GGUF_TYPE_Q4_K_M)),
    ("solverd-gguf-q4_k_m-gptq", dict(gguf_type=quant.QUANT_GGUF_TYPE_Q4_K_M,
                                      method=quant.QUANT_METHOD_GPTQ)),
    # Each layer's K type (Q4_K, Q5_K, Q6_K) chosen by bit allocation within
    # the tensor bytes of the file before it (Q4_K_M's), rather than by
    # llama.cpp's fixed rule.
    ("solverd-gguf-kquant-alloc-gptq", dict(gguf_type=quant.QUANT_GGUF_TYPE_Q4_K,
                                            method=quant.QUANT_METHOD_GPTQ,
                                            target_bytes="previous")),
]


def test_model():
    """The cached checkpoint folder, trained first if missing."""
    if not os.path.isdir(CACHE):
        print(f"training the Llama test model ({TRAIN_MINUTES} minutes) into {CACHE}",
              flush=True)
        llama_lm.train(TRAIN_MINUTES, CACHE + ".partial")
        os.rename(CACHE + ".partial", CACHE)
    return CACHE


def llamacpp_perplexity(work, gguf, held):
    windows = llama_lm.eval_windows(held).numpy()
    nll, count = llamacpp.negative_log_likelihood(work, gguf, windows)
    return float(np.exp(nll / count))


def run_llama(client, records, rows, work):
    """Every system's GGUF file of the test model, scored by llama.cpp and
    PyTorch; the rows of the markdown table."""
    reason = llamacpp.install(work)
    if reason is not None:
        raise SystemExit("llama.cpp is needed for case " + CASE + ": " + reason)
    folder = test_model()
    weights = llama_lm.load_checkpoint(folder)
    train, held = lm.split(lm.kjv_text())
    fp32 = llama_lm.perplexity(weights, held)
    records.append({"case": CASE, "system": "fp32", "backend": "cpu",
                    "metric": "torch_perplexity", "value": fp32})
    rows.append(f"| fp32 | | | {fp32:.4f} | | | |")
    model = client.upload_checkpoint(folder, progress=False)
    calibration = client.upload_bytes(solverd.safetensors.save(
        llama_lm.calibration(weights, train))).blob_id
    previous = None
    for system, fields in SYSTEMS:
        if fields.get("method") == quant.QUANT_METHOD_GPTQ:
            fields = dict(fields, calibration=quant.QuantFile(blob_id=calibration))
        if fields.get("target_bytes") == "previous":
            fields = dict(fields, target_bytes=previous.bytes_after)
        start = time.perf_counter()
        result = client.solve(quant.QuantProblem(model=model, format=quant.QUANT_FORMAT_GGUF,
                                                 **fields), timeout=None)
        seconds = time.perf_counter() - start
        previous = result
        data = client.download_bytes(result.output_blob_id)
        gguf = os.path.join(work, f"{system}.gguf")
        with open(gguf, "wb") as f:
            f.write(data)
        ours = llamacpp_perplexity(work, gguf, held)
        torch_ppl = llama_lm.perplexity(solverd.gguf.llama_to_hf(*solverd.gguf.load(data)), held)
        os.remove(gguf)
        for metric, value in (("llamacpp_perplexity", ours), ("torch_perplexity", torch_ppl),
                              ("bytes", result.output_bytes), ("seconds", seconds)):
            records.append({"case": CASE, "system": system, "backend": result.device,
                            "metric": metric, "value": float(value)})
        types = solverd.gguf.tensor_types(data)
        mix = ", ".join(f"{n} {t}" for t, n in sorted(
            {t: sum(1 for v in types.values() if v == t) for t in set(types.values())}.items()))
        rows.append(f"| {system} | {result.output_bytes} | {ours:.4f} | {torch_ppl:.4f} | "
                    f"{ours / fp32:.4f} | {seconds:.2f} | {mix} |")
        print(rows[-1], flush=True)


def section(rows):
    """The markdown section of case llama_test_model."""
    return [f"## llama.cpp on the Llama test model (case {CASE})", "",
            "The Llama-architecture model trained here (bench/quant/llama_lm.py: width 256, 4 "
            "blocks, 4 query and 2 key-value heads, SwiGLU 768, byte vocabulary with <s> and "
            "</s>; a two-shard Hugging Face folder) quantized from its folder to GGUF by solverd "
            "and run by llama.cpp itself (npm's node-llama-cpp, prebuilt CPU build). Perplexity "
            f"per byte over {llama_lm.EVAL_BYTES // llama_lm.CONTEXT} held-out windows of <s> and "
            f"{llama_lm.CONTEXT} bytes, each from an empty context: by llama.cpp on the file, and "
            "by PyTorch on the file's weights read back by solverd.gguf. gptq's calibration: 32 "
            "windows of training text through the fp32 model. seconds: the Quantize call, "
            "upload excluded. kquant-alloc: bit allocation (relative output error) among Q4_K, "
            "Q5_K and Q6_K per layer within Q4_K_M-gptq's tensor bytes.", "",
            "| system | bytes | llama.cpp perplexity | PyTorch perplexity | llama.cpp / fp32 | "
            "seconds | tensor types |", "|---|---|---|---|---|---|---|", *rows, ""]
