#!/usr/bin/python3
"""llama.cpp itself loads and runs solverd's GGUF files of a Llama-family
Hugging Face checkpoint. A small random Llama (grouped-query attention,
RoPE, SwiGLU, a byte-level BPE tokenizer.json with two special tokens) is
written as a two-shard checkpoint, converted by solverd to GGUF F16,
quantized to Q8_0, Q4_0, Q4_K, Q5_K, Q6_K and Q4_K_M (by round to nearest,
and Q4_K_M by GPTQ too, calibrated on the model's own activations), and
scored by llama.cpp (npm's node-llama-cpp, its prebuilt CPU build, never
compiled here): its next-token logits must match a float64 NumPy forward
pass of the file's own weights (read back by the Python package's GGUF
reader, written from ggml's block layouts and llama.cpp's naming) to a few
percent RMS, where a
wrong tensor name, Q/K row order, block layout or hyperparameter gives
about 100%; its perplexity must be within 0.5% of the unquantized model's
at F16, 1% at Q8_0 and 2% at Q6_K (looser bounds at 4 and 5 bits: this
random model loses more there than a trained one); and GPTQ's Q4_K_M
logits must lie closer to the unquantized model's than round to nearest's
(a random model's perplexity on random text is too flat to rank them).

When npm cannot install node-llama-cpp (no registry) the test prints
SKIPPED and why.
  llamacpp_test.py WORK_DIR   (SOLVERD_BINARY and PYTHONPATH set)
"""
import json
import os
import sys
import tempfile

import numpy as np

import solverd
from server_fixture import Server

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "llamacpp"))
import llamacpp  # noqa: E402

quant = solverd.quant_pb2

# Rows of 256 and 512 weights: whole K-quant super-blocks.
CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 258,
          "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
          "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
          "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": False,
          "bos_token_id": 256, "eos_token_id": 257, "torch_dtype": "float16"}


def llama_weights(seed=11):
    rng = np.random.default_rng(seed)
    h, ff, kv, v = 256, 512, 128, 258
    def w(rows, cols, gain=1.0):
        return (gain * rng.normal(size=(rows, cols)) / np.sqrt(cols)).astype(np.float16)
    out = {"model.embed_tokens.weight": rng.normal(size=(v, h)).astype(np.float16)}
    for layer in range(2):
        b = f"model.layers.{layer}."
        out.update({
            b + "input_layernorm.weight": (1 + 0.1 * rng.normal(size=h)).astype(np.float16),
            b + "self_attn.q_proj.weight": w(h, h, 2), b + "self_attn.k_proj.weight": w(kv, h, 2),
            b + "self_attn.v_proj.weight": w(kv, h), b + "self_attn.o_proj.weight": w(h, h),
            b + "post_attention_layernorm.weight": (1 + 0.1 * rng.normal(size=h)).astype(np.float16),
            b + "mlp.gate_proj.weight": w(ff, h), b + "mlp.up_proj.weight": w(ff, h),
            b + "mlp.down_proj.weight": w(h, ff)})
    out["model.norm.weight"] = np.ones(h, np.float16)
    out["lm_head.weight"] = w(v, h, 2)
    return out


def write_checkpoint(folder, weights):
    os.makedirs(folder)
    names = list(weights)
    shards = {"model-00001-of-00002.safetensors": names[:8],
              "model-00002-of-00002.safetensors": names[8:]}
    weight_map = {}
    for shard, members in shards.items():
        with open(os.path.join(folder, shard), "wb") as f:
            f.write(solverd.safetensors.save({n: weights[n] for n in members}))
        weight_map.update({n: shard for n in members})
    tokenizer = llamacpp.byte_level_tokenizer(CONFIG["bos_token_id"], CONFIG["eos_token_id"])
    for name, value in (("config.json", CONFIG), ("tokenizer.json", tokenizer),
                        ("model.safetensors.index.json", {"weight_map": weight_map})):
        with open(os.path.join(folder, name), "w") as f:
            json.dump(value, f)


def reference_logits(weights, tokens, inputs=None):
    """Hugging Face's Llama forward pass in float64: RMSNorm, RoPE on each
    head's two halves, grouped-query causal attention, SwiGLU. `inputs`, a
    dict, gets each linear layer's inputs ("<layer>.inputs": calibration)."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    c = CONFIG
    heads, kv_heads = c["num_attention_heads"], c["num_key_value_heads"]
    hd = c["hidden_size"] // heads
    t = len(tokens)
    inv = 1.0 / c["rope_theta"] ** (np.arange(0, hd, 2) / hd)
    angles = np.arange(t)[:, None] * inv[None, :]
    cos = np.cos(np.concatenate([angles, angles], 1))[:, None, :]
    sin = np.sin(np.concatenate([angles, angles], 1))[:, None, :]

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + c["rms_norm_eps"]) * g

    def rope(x):
        rotated = np.concatenate([-x[..., hd // 2:], x[..., :hd // 2]], -1)
        return x * cos + rotated * sin

    def linear(name, x):
        if inputs is not None:
            inputs.setdefault(name + ".inputs", []).append(x.astype(np.float32))
        return x @ w[name + ".weight"].T

    h = w["model.embed_tokens.weight"][tokens]
    mask = np.triu(np.full((t, t), -np.inf), 1)
    for layer in range(c["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        x = rms(h, w[p + "input_layernorm.weight"])
        q = rope(linear(p + "self_attn.q_proj", x).reshape(t, heads, hd))
        k = rope(linear(p + "self_attn.k_proj", x).reshape(t, kv_heads, hd))
        v = linear(p + "self_attn.v_proj", x).reshape(t, kv_heads, hd)
        k, v = (np.repeat(a, heads // kv_heads, axis=1) for a in (k, v))
        scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(hd) + mask
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        attended = np.einsum("hqk,khd->qhd", scores, v).reshape(t, heads * hd)
        h = h + linear(p + "self_attn.o_proj", attended)
        x = rms(h, w[p + "post_attention_layernorm.weight"])
        gate = linear(p + "mlp.gate_proj", x)
        h = h + linear(p + "mlp.down_proj",
                       (gate / (1 + np.exp(-gate))) * linear(p + "mlp.up_proj", x))
    return rms(h, w["model.norm.weight"]) @ w["lm_head.weight"].T


def calibration_file(weights):
    """Every linear layer's inputs over 32 random sequences, as solverd's
    calibration file wants them."""
    inputs = {}
    rng = np.random.default_rng(7)
    for _ in range(32):
        tokens = rng.integers(0, 256, size=48)
        tokens[0] = CONFIG["bos_token_id"]
        reference_logits(weights, tokens, inputs)
    return solverd.safetensors.save({k: np.concatenate(v) for k, v in inputs.items()})


def perplexity(logits, tokens):
    logits = np.asarray(logits, np.float64)[:-1]
    logits = logits - logits.max(-1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return float(np.exp(-log_p[np.arange(len(tokens) - 1), tokens[1:]].mean()))


def main():
    work = sys.argv[1]
    reason = llamacpp.install(work)
    if reason is not None:
        print("SKIPPED:", reason)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "root")
        weights = llama_weights()
        write_checkpoint(os.path.join(root, "tiny-llama"), weights)
        tokens = np.random.default_rng(4).integers(0, 256, size=48)
        tokens[0] = CONFIG["bos_token_id"]
        reference = reference_logits(weights, tokens)
        server = Server(os.environ["SOLVERD_BINARY"], tmp, f"--data-root={root}")
        try:
            with solverd.Client(server.address) as client:
                calibration = client.upload_bytes(calibration_file(weights)).blob_id
                errors = score_files(client, work, tmp, tokens, reference, calibration)
        finally:
            server.stop()
    print("llama.cpp ran solverd's", ", ".join(errors), "GGUF files")
    assert errors["Q4_K_M-gptq"] < errors["Q4_K_M"], errors
    return 0


# name: (the problem's fields, the largest perplexity change from unquantized)
FILES = {
    "F16": (dict(gguf_type=quant.QUANT_GGUF_TYPE_F16), 0.005),
    "Q8_0": (dict(bits=8, group_size=32, symmetric=True), 0.01),
    "Q6_K": (dict(gguf_type=quant.QUANT_GGUF_TYPE_Q6_K), 0.02),
    "Q5_K": (dict(gguf_type=quant.QUANT_GGUF_TYPE_Q5_K), 0.1),
    "Q4_0": (dict(bits=4, group_size=32, symmetric=True), 0.25),
    "Q4_K": (dict(gguf_type=quant.QUANT_GGUF_TYPE_Q4_K), 0.25),
    "Q4_K_M": (dict(gguf_type=quant.QUANT_GGUF_TYPE_Q4_K_M), 0.25),
    "Q4_K_M-gptq": (dict(gguf_type=quant.QUANT_GGUF_TYPE_Q4_K_M,
                         method=quant.QUANT_METHOD_GPTQ), 0.25),
}
# The types Q4_K_M gives the two blocks' attn_v and ffn_down (llama.cpp's
# rule: block 1 is in the last eighth) and the others.
Q4_K_M_TYPES = {"blk.0.attn_v.weight": "Q4_K", "blk.1.attn_v.weight": "Q6_K",
                "blk.0.ffn_down.weight": "Q4_K", "blk.1.ffn_down.weight": "Q6_K",
                "blk.1.ffn_up.weight": "Q4_K", "output.weight": "F16"}


def score_files(client, work, tmp, tokens, reference, calibration):
    """Scores each file with llama.cpp; returns {name: its logits' RMS
    distance from the unquantized model's, over their spread}."""
    ref_ppl = perplexity(reference, tokens)
    errors = {}
    for name, (fields, tolerance) in FILES.items():
        if fields.get("method") == quant.QUANT_METHOD_GPTQ:
            fields = dict(fields, calibration=quant.QuantFile(blob_id=calibration))
        result = client.solve(quant.QuantProblem(
            model=quant.QuantFile(checkpoint_path="tiny-llama"), format=quant.QUANT_FORMAT_GGUF,
            **fields))
        data = client.download_bytes(result.output_blob_id)
        gguf = os.path.join(tmp, f"tiny-{name}.gguf")
        with open(gguf, "wb") as f:
            f.write(data)
        if name.startswith("Q4_K_M"):
            types = solverd.gguf.tensor_types(data)
            assert {k: types[k] for k in Q4_K_M_TYPES} == Q4_K_M_TYPES, types
        logits = llamacpp.logits_after(work, gguf, tokens)
        assert logits.shape[1] == CONFIG["vocab_size"], logits.shape
        ppl = perplexity(logits, tokens)
        same_weights = reference_logits(solverd.gguf.llama_to_hf(*solverd.gguf.load(data)),
                                        tokens)
        # llama.cpp rounds activations for these dot products.
        spread = np.sqrt(((logits - same_weights) ** 2).mean()) / same_weights.std()
        errors[name] = np.sqrt(((logits - reference) ** 2).mean()) / reference.std()
        print(f"{name}: {result.output_bytes} bytes, llama.cpp perplexity {ppl:.4f} against "
              f"{ref_ppl:.4f} unquantized, logits {errors[name]:.4f} of their spread from "
              f"the unquantized model's and {spread:.4f} from the file's weights run here")
        assert abs(ppl / ref_ppl - 1) <= tolerance, (name, ppl, ref_ppl)
        # Wrong names, RoPE order or blocks give differences about 1.
        assert spread < 0.05, (name, spread)
    return errors


if __name__ == "__main__":
    sys.exit(main())
