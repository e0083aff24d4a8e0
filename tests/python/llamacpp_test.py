#!/usr/bin/python3
"""llama.cpp itself loads and runs solverd's GGUF files of a Llama-family
Hugging Face checkpoint. A small random Llama (grouped-query attention,
RoPE, SwiGLU, a byte-level BPE tokenizer.json with two special tokens) is
written as a two-shard checkpoint, converted by solverd to GGUF F16 and
quantized to Q8_0 and Q4_0, and scored by llama.cpp (npm's node-llama-cpp, its prebuilt CPU
build, never compiled here): its next-token logits must match a float64
NumPy forward pass of the same codes (solverd's own layout of the same
quantization) to a few percent RMS, where a wrong tensor name, Q/K row
order or hyperparameter gives about 100%, and its perplexity must be within
0.5% of the unquantized model's at F16, 1% at Q8_0 and 25% at Q4_0 (this random model
loses more at 4 bits than a trained one).

When npm cannot install node-llama-cpp (no registry) the test prints
SKIPPED and why.
  llamacpp_test.py SOURCE_DIR WORK_DIR   (SOLVERD_BINARY and PYTHONPATH set)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

import solverd
from server_fixture import Server

quant = solverd.quant_pb2

CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 258,
          "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
          "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
          "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": False,
          "bos_token_id": 256, "eos_token_id": 257, "torch_dtype": "float16"}


def byte_level_tokenizer():
    """GPT-2's byte-to-character map as a BPE vocabulary with no merges:
    token b is byte b; <s> and </s> follow as special tokens."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) +
                 list(range(ord("®"), ord("ÿ") + 1)))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return {"version": "1.0",
            "added_tokens": [{"id": 256, "content": "<s>", "special": True},
                             {"id": 257, "content": "</s>", "special": True}],
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False},
            "decoder": {"type": "ByteLevel"},
            "model": {"type": "BPE", "vocab": {chars[b]: b for b in range(256)}, "merges": []}}


def llama_weights(seed=11):
    rng = np.random.default_rng(seed)
    h, ff, kv, v = 64, 128, 32, 258
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
    for name, value in (("config.json", CONFIG), ("tokenizer.json", byte_level_tokenizer()),
                        ("model.safetensors.index.json", {"weight_map": weight_map})):
        with open(os.path.join(folder, name), "w") as f:
            json.dump(value, f)


def reference_logits(weights, tokens):
    """Hugging Face's Llama forward pass in float64: RMSNorm, RoPE on each
    head's two halves, grouped-query causal attention, SwiGLU."""
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

    h = w["model.embed_tokens.weight"][tokens]
    mask = np.triu(np.full((t, t), -np.inf), 1)
    for layer in range(c["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        x = rms(h, w[p + "input_layernorm.weight"])
        q = rope((x @ w[p + "self_attn.q_proj.weight"].T).reshape(t, heads, hd))
        k = rope((x @ w[p + "self_attn.k_proj.weight"].T).reshape(t, kv_heads, hd))
        v = (x @ w[p + "self_attn.v_proj.weight"].T).reshape(t, kv_heads, hd)
        k, v = (np.repeat(a, heads // kv_heads, axis=1) for a in (k, v))
        scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(hd) + mask
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        attended = np.einsum("hqk,khd->qhd", scores, v).reshape(t, heads * hd)
        h = h + attended @ w[p + "self_attn.o_proj.weight"].T
        x = rms(h, w[p + "post_attention_layernorm.weight"])
        gate = x @ w[p + "mlp.gate_proj.weight"].T
        h = h + ((gate / (1 + np.exp(-gate))) * (x @ w[p + "mlp.up_proj.weight"].T)) @ \
            w[p + "mlp.down_proj.weight"].T
    return rms(h, w["model.norm.weight"]) @ w["lm_head.weight"].T


def perplexity(logits, tokens):
    logits = np.asarray(logits, np.float64)[:-1]
    logits = logits - logits.max(-1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return float(np.exp(-log_p[np.arange(len(tokens) - 1), tokens[1:]].mean()))


def install_node_llama_cpp(source, work):
    """node-llama-cpp (the version package.json pins, its Linux x64 CPU build
    only) installed in `work`; returns None, or why it could not be."""
    if os.path.isdir(os.path.join(work, "node_modules", "node-llama-cpp")):
        return None
    if shutil.which("npm") is None or shutil.which("node") is None:
        return "node and npm are not installed"
    os.makedirs(work, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(os.path.join(source, "tests", "llamacpp", name), work)
    # (npm ci would insist on every platform's optional binaries in the lock.)
    done = subprocess.run(["npm", "install", "--omit=optional", "--no-audit", "--no-fund",
                           "--loglevel=error"], cwd=work, capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        return "npm could not install node-llama-cpp (registry unreachable?): " + \
            done.stderr.strip()[-300:]
    return None


def llamacpp_logits(work, gguf, tokens):
    tokens_file = gguf + ".tokens.json"
    with open(tokens_file, "w") as f:
        json.dump([int(t) for t in tokens], f)
    done = subprocess.run(["node", os.path.join(work, "score.mjs"), gguf, tokens_file],
                          cwd=work, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise AssertionError(f"llama.cpp could not run {gguf}:\n{done.stderr[-2000:]}")
    scored = json.loads(done.stdout)
    assert scored["n_vocab"] == CONFIG["vocab_size"], scored["n_vocab"]
    return np.asarray(scored["logits"])


def main():
    source, work = sys.argv[1], sys.argv[2]
    reason = install_node_llama_cpp(source, work)
    if reason is not None:
        print("SKIPPED:", reason)
        return 0
    shutil.copy(os.path.join(source, "tests", "llamacpp", "score.mjs"), work)
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "root")
        weights = llama_weights()
        write_checkpoint(os.path.join(root, "tiny-llama"), weights)
        tokens = np.random.default_rng(4).integers(0, 256, size=48)
        tokens[0] = CONFIG["bos_token_id"]
        reference = reference_logits(weights, tokens)
        ref_ppl = perplexity(reference, tokens)
        server = Server(os.environ["SOLVERD_BINARY"], tmp, f"--data-root={root}")
        try:
            with solverd.Client(server.address) as client:
                # F16: the checkpoint's own weights; Q8_0 and Q4_0 by RTN.
                for name, bits, tolerance in (("F16", 0, 0.005), ("Q8_0", 8, 0.01),
                                              ("Q4_0", 4, 0.25)):
                    options = dict(model=quant.QuantFile(checkpoint_path="tiny-llama"), bits=bits,
                                   group_size=32, symmetric=True)
                    gguf_type = quant.QUANT_GGUF_TYPE_F16 if bits == 0 else \
                        quant.QUANT_GGUF_TYPE_FROM_BITS
                    result = client.solve(quant.QuantProblem(
                        format=quant.QUANT_FORMAT_GGUF, gguf_type=gguf_type, **options))
                    gguf = os.path.join(tmp, f"tiny-{name}.gguf")
                    with open(gguf, "wb") as f:
                        f.write(client.download_bytes(result.output_blob_id))
                    logits = llamacpp_logits(work, gguf, tokens)
                    ppl = perplexity(logits, tokens)
                    if bits == 0:
                        same_codes = reference
                    else:  # the same codes in solverd's own layout, run here
                        ours = client.solve(quant.QuantProblem(**options))
                        same_codes = reference_logits(solverd.safetensors.dequantize(
                            client.download_bytes(ours.output_blob_id)), tokens)
                    # llama.cpp rounds activations for these dot products.
                    spread = np.sqrt(((logits - same_codes) ** 2).mean()) / same_codes.std()
                    print(f"{name}: {result.output_bytes} bytes, llama.cpp perplexity "
                          f"{ppl:.3f} against {ref_ppl:.3f} unquantized; logits differ from "
                          f"the same weights run here by {spread:.4f} of their spread (RMS)")
                    assert abs(ppl / ref_ppl - 1) <= tolerance, (name, ppl, ref_ppl)
                    # Wrong names or RoPE order give differences about 1.
                    assert spread < 0.05, spread
        finally:
            server.stop()
    print("llama.cpp ran solverd's F16, Q8_0 and Q4_0 GGUF files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
