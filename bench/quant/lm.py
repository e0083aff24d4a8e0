#!/usr/bin/python3
"""The quant benchmark's language models, which the project trains itself
on the King James Bible (public domain; text from Debian's bible-kjv and
bible-kjv-text packages):
 - a small byte-level GPT-style transformer, kept in
   bench/quant/data/kjv-lm.safetensors with its training settings and fp32
   perplexity in the file's metadata;
 - a Llama-architecture model (llama_lm.py: RMSNorm, RoPE, grouped-query
   attention, SwiGLU, a byte-level tokenizer.json) saved as a Hugging Face
   checkpoint folder in two shards, for the llama.cpp benchmark.

  lm.py train [--minutes M] [--out PATH]   trains and writes the byte-level model
  lm.py perplexity PATH                     held-out perplexity of a model file
  lm.py train-llama [--minutes M] [--out FOLDER]   trains and writes the Llama folder

The benchmark (compare.py) imports this module: it dequantizes each method's
output, loads it into the same network and measures perplexity on the same
held-out text, and it takes calibration inputs for every linear layer from
the model run on training text."""
import argparse
import math
import os
import re
import subprocess
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from solverd import safetensors

MODEL_PATH = "bench/quant/data/kjv-lm.safetensors"
WIDTH, LAYERS, HEADS, CONTEXT = 256, 4, 4, 128
BLOCK_BYTES, HELD_OUT_EVERY = 16384, 20  # every 20th 16 KiB block is held out
EVAL_BYTES = 65536  # held-out bytes scored by perplexity(); whole windows of CONTEXT


def kjv_text() -> bytes:
    """The whole KJV as prose: one verse per line, references stripped."""
    out = subprocess.run(["bible", "-f", "gen1:1-rev22:21"], check=True,
                         capture_output=True, text=True).stdout
    verses = [re.sub(r"^\S+?\d+:\d+ ", "", line) for line in out.splitlines() if line]
    return ("\n".join(verses) + "\n").encode("ascii")


def split(text: bytes):
    blocks = [text[i:i + BLOCK_BYTES] for i in range(0, len(text), BLOCK_BYTES)]
    train = b"".join(b for i, b in enumerate(blocks) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1)
    held = b"".join(b for i, b in enumerate(blocks) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1)
    return train, held


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(WIDTH), nn.LayerNorm(WIDTH)
        self.attn = nn.ModuleDict({"qkv": nn.Linear(WIDTH, 3 * WIDTH),
                                   "proj": nn.Linear(WIDTH, WIDTH)})
        self.mlp = nn.ModuleDict({"fc": nn.Linear(WIDTH, 4 * WIDTH),
                                  "proj": nn.Linear(4 * WIDTH, WIDTH)})

    def forward(self, x):
        batch, length, _ = x.shape
        q, k, v = self.attn["qkv"](self.norm1(x)).split(WIDTH, 2)
        q, k, v = (t.view(batch, length, HEADS, WIDTH // HEADS).transpose(1, 2)
                   for t in (q, k, v))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(WIDTH // HEADS)
        future = torch.triu(torch.ones(length, length, dtype=torch.bool), 1)
        attended = scores.masked_fill(future, float("-inf")).softmax(-1) @ v
        x = x + self.attn["proj"](attended.transpose(1, 2).reshape(batch, length, WIDTH))
        return x + self.mlp["proj"](F.gelu(self.mlp["fc"](self.norm2(x))))


class ByteLM(nn.Module):
    """GPT-style, pre-norm, output head tied to the byte embedding (so the
    only 2-D tensors a quantizer selects by default are the 16 linear layers)."""

    def __init__(self):
        super().__init__()
        self.tok_embed = nn.Embedding(256, WIDTH)
        self.pos_embed = nn.Embedding(CONTEXT, WIDTH)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.norm = nn.LayerNorm(WIDTH)
        for name, tensor in self.named_parameters():
            if name.endswith(".bias"):
                nn.init.zeros_(tensor)
            elif tensor.dim() == 2:  # GPT-2's initialisation; N(0, 1) logits would be huge
                nn.init.normal_(tensor, std=0.02)

    def forward(self, tokens):
        x = self.tok_embed(tokens) + self.pos_embed.weight[:tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.norm(x) @ self.tok_embed.weight.T


def as_tokens(text: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(text), dtype=torch.uint8).long()


def load(weights: dict) -> ByteLM:
    """A ByteLM holding the given tensors (numpy arrays by name, any float dtype)."""
    model = ByteLM()
    state = {name: torch.from_numpy(np.array(w, dtype=np.float32)) for name, w in weights.items()}
    model.load_state_dict(state)
    return model.eval()


@torch.no_grad()
def perplexity(weights: dict, held: bytes) -> float:
    """exp(mean negative log-likelihood) per byte over the first EVAL_BYTES of
    held-out text, in independent windows of CONTEXT + 1 bytes."""
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    model = load(weights)
    tokens = as_tokens(held[:EVAL_BYTES + 1])
    windows = (len(tokens) - 1) // CONTEXT
    inputs = tokens[:windows * CONTEXT].view(windows, CONTEXT)
    targets = tokens[1:windows * CONTEXT + 1].view(windows, CONTEXT)
    nll = 0.0
    for start in range(0, windows, 64):
        logits = model(inputs[start:start + 64])
        nll += F.cross_entropy(logits.reshape(-1, 256), targets[start:start + 64].reshape(-1),
                               reduction="sum").item()
    return math.exp(nll / targets.numel())


@torch.no_grad()
def linear_inputs(model: nn.Module, tokens: torch.Tensor) -> dict:
    """`<layer>.inputs` [tokens, in_features] of every linear layer of
    `model` run on `tokens`: solverd's calibration file."""
    captured = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            module.register_forward_hook(
                lambda m, args, out, name=name: captured.setdefault(f"{name}.inputs", []).append(
                    args[0].reshape(-1, args[0].shape[-1])))
    model(tokens)
    return {name: torch.cat(parts).numpy().astype(np.float32) for name, parts in captured.items()}


def calibration(weights: dict, train: bytes, sequences=16) -> dict:
    """Every linear layer's inputs, from the model run on `sequences`
    windows spread over the training text."""
    stride = (len(train) - CONTEXT) // sequences
    tokens = torch.stack([as_tokens(train[i * stride:i * stride + CONTEXT])
                          for i in range(sequences)])
    return linear_inputs(load(weights), tokens)


def fit(model: nn.Module, minutes: float, peak_lr: float, next_batch) -> int:
    """Trains `model` for `minutes` with AdamW (weight decay 0.1), a 100-step
    warm-up to `peak_lr`, then cosine decay to 10% of it; next_batch()
    gives [batch, length + 1] token windows. Returns the steps taken."""
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=peak_lr, weight_decay=0.1)
    step, start = 0, time.time()
    while time.time() - start < minutes * 60:
        fraction = (time.time() - start) / (minutes * 60)
        for group in optimizer.param_groups:
            group["lr"] = peak_lr * min(1.0, step / 100) * \
                (0.55 + 0.45 * math.cos(math.pi * fraction))
        window = next_batch()
        logits = model(window[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), window[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step % 100 == 0:
            print(f"step {step} loss {loss.item():.3f} {time.time() - start:.0f}s", flush=True)
    return step


def train(minutes: float, out: str):
    torch.manual_seed(0)
    text = kjv_text()
    train_text, held = split(text)
    tokens = as_tokens(train_text)
    model = ByteLM()
    batch = 32

    def next_batch():
        offsets = torch.randint(0, len(tokens) - CONTEXT - 1, (batch,))
        return torch.stack([tokens[o:o + CONTEXT + 1] for o in offsets])

    step = fit(model, minutes, 1e-3, next_batch)
    weights = {name: t.detach().numpy().copy() for name, t in model.state_dict().items()}
    ppl = perplexity(weights, held)
    metadata = {"text": "King James Bible, `bible -f gen1:1-rev22:21` (Debian bible-kjv), "
                        "verse references stripped; every 20th 16 KiB block held out",
                "model": f"byte-level transformer, width {WIDTH}, {LAYERS} layers, {HEADS} heads, "
                         f"context {CONTEXT}, head tied to tok_embed",
                "training": f"AdamW lr 1e-3 wd 0.1, batch {batch}x{CONTEXT}, {step} steps, "
                            f"seed 0, bench/quant/lm.py train --minutes {minutes}",
                "perplexity_fp32": f"{ppl:.4f} per byte on the first {EVAL_BYTES} held-out bytes"}
    open(out, "wb").write(safetensors.save(weights, metadata))
    print(f"{step} steps, held-out perplexity {ppl:.4f}; wrote {out}")


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    train_cmd = sub.add_parser("train")
    train_cmd.add_argument("--minutes", type=float, default=20)
    train_cmd.add_argument("--out", default=MODEL_PATH)
    ppl_cmd = sub.add_parser("perplexity")
    ppl_cmd.add_argument("path")
    llama_cmd = sub.add_parser("train-llama")
    llama_cmd.add_argument("--minutes", type=float, default=15)
    llama_cmd.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.command == "train":
        train(args.minutes, args.out)
    elif args.command == "train-llama":
        import llama_lm
        llama_lm.train(args.minutes, args.out)
    else:
        weights, _ = safetensors.load(open(args.path, "rb").read())
        print(f"{perplexity(weights, split(kjv_text())[1]):.4f}")


if __name__ == "__main__":
    main()
