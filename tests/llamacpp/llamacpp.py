"""llama.cpp from Python, for the tests and the benchmark: installs npm's
node-llama-cpp (its prebuilt Linux x64 CPU build, the version
package.json pins; never compiled here) into a work folder and scores
GGUF files with score.mjs.

    reason = install(work)           # None, or why llama.cpp is unavailable
    logits = logits_after(work, "m.gguf", tokens)             # [len, n_vocab]
    nll, count = negative_log_likelihood(work, "m.gguf", windows)
    ids = tokenize(work, "m.gguf", "some text")                # llama.cpp's token ids
    tokenizer = byte_level_tokenizer(bos_id, eos_id)  # tokenizer.json for test models
"""
import json
import os
import shutil
import subprocess
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def install(work):
    """node-llama-cpp and score.mjs in `work`; returns None, or why they
    could not be installed (no node, no npm registry)."""
    os.makedirs(work, exist_ok=True)
    shutil.copy(os.path.join(HERE, "score.mjs"), work)
    if os.path.isdir(os.path.join(work, "node_modules", "node-llama-cpp")):
        return None
    if shutil.which("npm") is None or shutil.which("node") is None:
        return "node and npm are not installed"
    for name in ("package.json", "package-lock.json"):
        shutil.copy(os.path.join(HERE, name), work)
    # (npm ci would insist on every platform's optional binaries in the lock.)
    done = subprocess.run(["npm", "install", "--omit=optional", "--no-audit", "--no-fund",
                           "--loglevel=error"], cwd=work, capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        return "npm could not install node-llama-cpp (registry unreachable?): " + \
            done.stderr.strip()[-300:]
    return None


def _score(work, gguf, tokens_json):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(tokens_json, f)
    try:
        done = subprocess.run(["node", os.path.abspath(os.path.join(work, "score.mjs")),
                               os.path.abspath(gguf), f.name],
                              cwd=work, capture_output=True, text=True, timeout=900)
    finally:
        os.remove(f.name)
    if done.returncode != 0:
        raise AssertionError(f"llama.cpp could not run {gguf}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def logits_after(work, gguf, tokens):
    """llama.cpp's next-token logits after each of `tokens` ([len, n_vocab])."""
    return np.asarray(_score(work, gguf, [int(t) for t in tokens])["logits"])


def negative_log_likelihood(work, gguf, windows):
    """(summed -log p of each window's tokens after the first, their count),
    each window evaluated from an empty context."""
    scored = _score(work, gguf, {"windows": [[int(t) for t in w] for w in windows]})
    return scored["nll"], scored["count"]


def tokenize(work, gguf, text):
    """llama.cpp's token ids of `text` by the file's vocabulary (no BOS)."""
    return _score(work, gguf, {"tokenize": text})["tokens"]


def byte_characters():
    """GPT-2's character for each byte: printable Latin-1 stands for
    itself, the other bytes for U+0100 on, in byte order."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) +
                 list(range(ord("®"), ord("ÿ") + 1)))
    chars, extra = [], 0
    for b in range(256):
        chars.append(chr(b) if b in printable else chr(256 + extra))
        extra += b not in printable
    return chars


def byte_level_tokenizer(bos_id, eos_id):
    """A tokenizer.json llama.cpp loads, for models over bytes: GPT-2's
    byte-to-character map as a BPE vocabulary without merges (token b is
    byte b), then <s> and </s> as special tokens with the given ids."""
    chars = byte_characters()
    return {"version": "1.0",
            "added_tokens": [{"id": bos_id, "content": "<s>", "special": True},
                             {"id": eos_id, "content": "</s>", "special": True}],
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False},
            "decoder": {"type": "ByteLevel"},
            "model": {"type": "BPE", "vocab": {chars[b]: b for b in range(256)}, "merges": []}}
