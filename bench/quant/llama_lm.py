"""The llama.cpp benchmark's model: a Llama-architecture language model
(RMSNorm, rotary position embeddings, grouped-query attention, SwiGLU MLP,
untied output head) over bytes, trained here on the King James Bible (the
text lm.py splits) and saved as the Hugging Face checkpoint folder a user
would have: config.json, tokenizer.json (a byte-level BPE vocabulary
llama.cpp loads: bytes 0..255, then <s> and </s>), and the weights in two
shards with model.safetensors.index.json. Every linear layer's rows are
whole K-quant super-blocks (widths 256 and 768).

A window is <s> and CONTEXT - 1 bytes, predicting those bytes and the
next; perplexity is per byte over the first EVAL_BYTES held-out bytes, the
same windows PyTorch and llama.cpp (bench/quant/llama_bench.py) score."""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import lm
from solverd import safetensors

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "llamacpp"))
import llamacpp  # noqa: E402

CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 258,
          "hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4,
          "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
          "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": False,
          "bos_token_id": 256, "eos_token_id": 257, "torch_dtype": "float32"}
CONTEXT = CONFIG["max_position_embeddings"]
BOS = CONFIG["bos_token_id"]
EVAL_BYTES = 16384  # held-out bytes scored: 128 windows


class RMSNorm(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + CONFIG["rms_norm_eps"]) * \
            self.weight


def rotate(x, cos, sin):
    """Hugging Face's RoPE: each head's first half paired with its second."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        c = CONFIG
        self.heads, self.kv_heads = c["num_attention_heads"], c["num_key_value_heads"]
        self.head_dim = c["hidden_size"] // self.heads
        width = c["hidden_size"]
        self.q_proj = nn.Linear(width, width, bias=False)
        self.k_proj = nn.Linear(width, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(width, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(width, width, bias=False)

    def forward(self, x, cos, sin):
        batch, length, _ = x.shape
        def heads(t, n):
            return t.view(batch, length, n, self.head_dim).transpose(1, 2)
        q = rotate(heads(self.q_proj(x), self.heads), cos, sin)
        k = rotate(heads(self.k_proj(x), self.kv_heads), cos, sin)
        v = heads(self.v_proj(x), self.kv_heads)
        k, v = (t.repeat_interleave(self.heads // self.kv_heads, 1) for t in (k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        future = torch.triu(torch.ones(length, length, dtype=torch.bool), 1)
        attended = scores.masked_fill(future, float("-inf")).softmax(-1) @ v
        return self.o_proj(attended.transpose(1, 2).reshape(batch, length, -1))


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        width, ff = CONFIG["hidden_size"], CONFIG["intermediate_size"]
        self.gate_proj = nn.Linear(width, ff, bias=False)
        self.up_proj = nn.Linear(width, ff, bias=False)
        self.down_proj = nn.Linear(ff, width, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        width = CONFIG["hidden_size"]
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(width), RMSNorm(width)
        self.self_attn, self.mlp = Attention(), Mlp()

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaLM(nn.Module):
    """State dict keys are Hugging Face's (model.layers.N.self_attn.q_proj...)."""

    def __init__(self):
        super().__init__()
        c = CONFIG
        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.model.layers = nn.ModuleList(Block() for _ in range(c["num_hidden_layers"]))
        self.model.norm = RMSNorm(c["hidden_size"])
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        for name, tensor in self.named_parameters():
            if tensor.dim() == 2:
                nn.init.normal_(tensor, std=0.02)

    def forward(self, tokens):
        head_dim = CONFIG["hidden_size"] // CONFIG["num_attention_heads"]
        inv = 1.0 / CONFIG["rope_theta"] ** (torch.arange(0, head_dim, 2).float() / head_dim)
        angles = torch.arange(tokens.shape[1]).float()[:, None] * inv[None, :]
        angles = torch.cat([angles, angles], -1)
        cos, sin = angles.cos(), angles.sin()
        x = self.model.embed_tokens(tokens)
        for block in self.model.layers:
            x = block(x, cos, sin)
        return self.lm_head(self.model.norm(x))


def windows(text: bytes, count: int) -> torch.Tensor:
    """`count` consecutive windows [<s>, CONTEXT bytes] of `text`: inputs are
    [:, :-1] and targets [:, 1:]."""
    data = lm.as_tokens(text[:count * CONTEXT]).view(count, CONTEXT)
    return torch.cat([torch.full((count, 1), BOS), data], 1)


def eval_windows(held: bytes) -> torch.Tensor:
    return windows(held, EVAL_BYTES // CONTEXT)


def load(weights: dict) -> LlamaLM:
    model = LlamaLM()
    model.load_state_dict({name: torch.from_numpy(np.array(w, dtype=np.float32))
                           for name, w in weights.items()})
    return model.eval()


@torch.no_grad()
def perplexity(weights: dict, held: bytes) -> float:
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    model, data = load(weights), eval_windows(held)
    nll = 0.0
    for start in range(0, len(data), 32):
        batch = data[start:start + 32]
        logits = model(batch[:, :-1])
        nll += F.cross_entropy(logits.reshape(-1, CONFIG["vocab_size"]),
                               batch[:, 1:].reshape(-1), reduction="sum").item()
    return math.exp(nll / (len(data) * CONTEXT))


def calibration_windows(train: bytes, sequences=32) -> torch.Tensor:
    """[sequences, CONTEXT] model inputs (<s> and bytes) spread over the
    training text."""
    stride = (len(train) - CONTEXT) // sequences
    data = torch.cat([windows(train[i * stride:], 1) for i in range(sequences)])
    return data[:, :-1]


def calibration(weights: dict, train: bytes, sequences=32) -> dict:
    """Every linear layer's inputs, from the model run on
    calibration_windows()."""
    return lm.linear_inputs(load(weights), calibration_windows(train, sequences))


def save_checkpoint(weights: dict, folder: str, metadata: dict):
    """A Hugging Face folder: config, tokenizer, two shards and their index."""
    os.makedirs(folder, exist_ok=True)
    names = list(weights)
    half = len(names) // 2
    weight_map = {}
    for index, members in enumerate((names[:half], names[half:])):
        shard = f"model-{index + 1:05d}-of-00002.safetensors"
        with open(os.path.join(folder, shard), "wb") as f:
            f.write(safetensors.save({n: weights[n] for n in members}, metadata))
        weight_map.update({n: shard for n in members})
    tokenizer = llamacpp.byte_level_tokenizer(BOS, CONFIG["eos_token_id"])
    for name, value in (("config.json", CONFIG), ("tokenizer.json", tokenizer),
                        ("model.safetensors.index.json",
                         {"metadata": metadata, "weight_map": weight_map})):
        with open(os.path.join(folder, name), "w") as f:
            json.dump(value, f, indent=1)


def load_checkpoint(folder: str) -> dict:
    index = json.load(open(os.path.join(folder, "model.safetensors.index.json")))
    weights = {}
    for shard in sorted(set(index["weight_map"].values())):
        weights.update(safetensors.load(open(os.path.join(folder, shard), "rb").read())[0])
    return weights


def train(minutes: float, folder: str):
    torch.manual_seed(0)
    train_text, held = lm.split(lm.kjv_text())
    tokens = lm.as_tokens(train_text)
    model = LlamaLM()
    batch = 32

    def next_batch():
        offsets = torch.randint(0, len(tokens) - CONTEXT, (batch,))
        data = torch.stack([tokens[o:o + CONTEXT] for o in offsets])
        return torch.cat([torch.full((batch, 1), BOS), data], 1)

    step = lm.fit(model, minutes, 2e-3, next_batch)
    weights = {name: t.detach().numpy().copy() for name, t in model.state_dict().items()}
    ppl = perplexity(weights, held)
    metadata = {"training": f"AdamW lr 2e-3 wd 0.1, batch {batch}x{CONTEXT}, {step} steps, "
                            f"seed 0, bench/quant/lm.py train-llama --minutes {minutes}",
                "perplexity_fp32": f"{ppl:.4f} per byte on the first {EVAL_BYTES} held-out "
                                   "bytes"}
    save_checkpoint(weights, folder, metadata)
    print(f"{step} steps, held-out perplexity {ppl:.4f}; wrote {folder}")
