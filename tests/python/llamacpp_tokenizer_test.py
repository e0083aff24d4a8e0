#!/usr/bin/python3
"""solverd reads calibration text as llama.cpp tokenizes it, for every kind
of tokenizer.json it applies: SentencePiece-style (Llama 2's and Mistral's:
byte_fallback, spaces as "▁"; with Llama 2's normalizer, and with a
Metaspace pre-tokenizer) and byte-level (GPT-2's ByteLevel regex, Llama 3's
and Qwen2's Split regexes). A BPE vocabulary of each kind is learned here
from the test text (the SentencePiece-style one written as Hugging Face's
converter writes it: every split of a piece into two pieces a merge,
ranked by the piece) and put in a tiny random Llama checkpoint. llama.cpp
(npm's node-llama-cpp, its prebuilt CPU build) tokenizes the text from
the GGUF file solverd writes of the checkpoint, so the file's vocabulary
and pre-tokenizer are checked too; the server's sequential GPTQ pass from
the text must give, byte for byte, the file and the Hessians (exact
float64 sums) it gives from <s> and llama.cpp's ids sent as
calibration_tokens. The text holds characters the SentencePiece
vocabulary lacks (their UTF-8 bytes' <0xNN> tokens), numbers, runs of
spaces and newlines.

When npm cannot install node-llama-cpp (no registry) the test prints
SKIPPED and why.
  llamacpp_tokenizer_test.py WORK_DIR   (SOLVERD_BINARY and PYTHONPATH set)
"""
import collections
import json
import os
import re
import sys
import tempfile

import numpy as np

import solverd
from server_fixture import Server

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "llamacpp"))
import llamacpp  # noqa: E402

quant = solverd.quant_pb2
SPACE = "\u2581"
TEXT = ("In the beginning the tokenizer read the text, and the text was long.  Then the "
        "merges came, one after another, and the pieces grew: the, then, there, therefore.\n\n"
        "A naïve café served crème brûlée to the reader; the reader wrote 12345 and 67.\n"
        "\tTabs,   three spaces, and a line that ends with a space \n"
        "Unicode outside the vocabulary: 東京, Ωμέγα, and an emoji 🙂 stand for their bytes.\n"
        ) * 3
# The byte-level splitters count every code point outside ASCII that is
# not white space as a letter (word_split.h): the emoji is not one.
BYTE_LEVEL_TEXT = TEXT.replace(", and an emoji 🙂", "")
MERGES = 120
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| "
                r"?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = LLAMA3_REGEX.replace(r"\p{N}{1,3}", r"\p{N}")


def learn_merges(words, count):
    """BPE on `words` ({tuple of symbols: count}): each round merges the
    most frequent adjacent pair (ties by first appearance)."""
    merges = []
    for _ in range(count):
        pairs = collections.Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = max(pairs, key=lambda p: pairs[p])
        merges.append(best)
        merged = collections.Counter()
        for word, n in words.items():
            out, k = [], 0
            while k < len(word):
                if k + 1 < len(word) and (word[k], word[k + 1]) == best:
                    out.append(best[0] + best[1])
                    k += 2
                else:
                    out.append(word[k])
                    k += 1
            merged[tuple(out)] += n
        words = merged
    return merges


def with_start_token(tokenizer, bos):
    """`tokenizer` starting each sequence with <s> (id `bos`), as Llama's do."""
    tokenizer["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [bos], "tokens": ["<s>"]}}}
    return tokenizer


def sentencepiece_tokenizer(text, metaspace):
    """A SentencePiece-style vocabulary learned on `text`: <unk> <s> </s>,
    the 256 byte tokens, the learned pieces, then the characters below
    U+0250 (Latin; the rest fall back to bytes). Words begin at each "▁"."""
    def latin(piece):
        return all(ord(c) < 0x250 or c == SPACE for c in piece)
    normalized = SPACE + text.replace(" ", SPACE)
    starts = [k for k, c in enumerate(normalized) if c == SPACE] + [len(normalized)]
    words = collections.Counter(tuple(normalized[a:b]) for a, b in zip(starts, starts[1:]))
    pieces = [a + b for a, b in learn_merges(words, MERGES) if latin(a + b)]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"<0x{b:02X}>": 3 + b for b in range(256)})
    for piece in pieces + sorted(c for c in set(normalized) if latin(c)):
        vocab.setdefault(piece, len(vocab))
    merges = []  # as HF's converter: every split of a piece, by the piece's id
    for piece in dict.fromkeys(pieces):
        splits = [(piece[:k], piece[k:]) for k in range(1, len(piece))
                  if piece[:k] in vocab and piece[k:] in vocab]
        merges += [f"{a} {b}" for a, b in sorted(splits, key=lambda s: (vocab[s[0]], vocab[s[1]]))]
    if metaspace:
        normalizer = None
        pre = {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "first",
               "split": False}
    else:
        normalizer = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SPACE},
            {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}]}
        pre = None
    return with_start_token({
        "version": "1.0",
        "added_tokens": [{"id": i, "content": t, "special": True}
                         for i, t in enumerate(("<unk>", "<s>", "</s>"))],
        "normalizer": normalizer, "pre_tokenizer": pre,
        "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True,
                  "vocab": vocab, "merges": merges}}, 1)


def byte_level_tokenizer(text, split):
    """A byte-level vocabulary learned on `text`: the 256 byte characters,
    the learned merges' tokens, then <s> and </s>; words split by GPT-2's
    ByteLevel regex, or Llama 3's or Qwen2's Split regex (merges learned on
    a rougher split: any merges will do)."""
    chars = llamacpp.byte_characters()
    words = collections.Counter(
        tuple(chars[b] for b in w.encode())
        for w in re.findall(r" ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+", text))
    vocab = {c: b for b, c in enumerate(chars)}
    merges = learn_merges(words, MERGES)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    bos = len(vocab)
    if split == "gpt2":
        pre = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
    else:
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX if split == "llama3" else
                                          QWEN2_REGEX},
             "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": False}]}
    return with_start_token({
        "version": "1.0",
        "added_tokens": [{"id": bos, "content": "<s>", "special": True},
                         {"id": bos + 1, "content": "</s>", "special": True}],
        "normalizer": None, "pre_tokenizer": pre, "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "ignore_merges": split == "llama3", "vocab": vocab,
                  "merges": [f"{a} {b}" for a, b in merges]}}, bos)


# kind: (its tokenizer.json, the text)
KINDS = {
    "normalizer": (lambda: sentencepiece_tokenizer(TEXT, False), TEXT),
    "metaspace": (lambda: sentencepiece_tokenizer(TEXT, True), TEXT),
    "gpt2": (lambda: byte_level_tokenizer(BYTE_LEVEL_TEXT, "gpt2"), BYTE_LEVEL_TEXT),
    "llama3": (lambda: byte_level_tokenizer(BYTE_LEVEL_TEXT, "llama3"), BYTE_LEVEL_TEXT),
    "qwen2": (lambda: byte_level_tokenizer(BYTE_LEVEL_TEXT, "qwen2"), BYTE_LEVEL_TEXT),
}


def write_checkpoint(folder, tokenizer):
    """A one-block random Llama whose vocabulary is `tokenizer`'s."""
    vocab = 1 + max(max(tokenizer["model"]["vocab"].values()),
                    max(t["id"] for t in tokenizer["added_tokens"]))
    bos = tokenizer["post_processor"]["special_tokens"]["<s>"]["ids"][0]
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
              "vocab_size": vocab, "hidden_size": 64, "intermediate_size": 128,
              "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
              "max_position_embeddings": 1024, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
              "tie_word_embeddings": False, "bos_token_id": bos, "eos_token_id": bos + 1,
              "torch_dtype": "float32"}
    rng = np.random.default_rng(3)
    b = "model.layers.0."
    shapes = {"model.embed_tokens.weight": (vocab, 64), "lm_head.weight": (vocab, 64),
              "model.norm.weight": (64,), b + "input_layernorm.weight": (64,),
              b + "post_attention_layernorm.weight": (64,),
              b + "self_attn.q_proj.weight": (64, 64), b + "self_attn.k_proj.weight": (32, 64),
              b + "self_attn.v_proj.weight": (32, 64), b + "self_attn.o_proj.weight": (64, 64),
              b + "mlp.gate_proj.weight": (128, 64), b + "mlp.up_proj.weight": (128, 64),
              b + "mlp.down_proj.weight": (64, 128)}
    weights = {n: (rng.normal(size=s) / np.sqrt(s[-1]) if len(s) == 2 else
                   1 + 0.1 * rng.normal(size=s)).astype(np.float32) for n, s in shapes.items()}
    os.makedirs(folder)
    with open(os.path.join(folder, "model.safetensors"), "wb") as f:
        f.write(solverd.safetensors.save(weights))
    for name, value in (("config.json", config), ("tokenizer.json", tokenizer)):
        with open(os.path.join(folder, name), "w") as f:
            json.dump(value, f)


def main():
    work = sys.argv[1]
    reason = llamacpp.install(work)
    if reason is not None:
        print("SKIPPED:", reason)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "root")
        tokenizers = {kind: make() for kind, (make, _) in KINDS.items()}
        for kind, tokenizer in tokenizers.items():
            write_checkpoint(os.path.join(root, kind), tokenizer)
        server = Server(os.environ["SOLVERD_BINARY"], tmp, f"--data-root={root}")
        try:
            with solverd.Client(server.address) as client:
                for kind, tokenizer in tokenizers.items():
                    check(client, work, tmp, kind, tokenizer, KINDS[kind][1])
        finally:
            server.stop()
    return 0


def check(client, work, tmp, kind, tokenizer, text):
    """llama.cpp's ids of `text` from solverd's GGUF of checkpoint `kind`
    are the server's (the sequential pass's Hessians, exact float64 sums,
    are equal from the text and from <s> and those ids)."""
    def solve(**fields):
        result = client.solve(quant.QuantProblem(
            model=quant.QuantFile(checkpoint_path=kind), **fields))
        return [client.download_bytes(b) for b in (result.output_blob_id,
                                                   result.calibration_blob_id) if b]

    gguf = os.path.join(tmp, kind + ".gguf")
    with open(gguf, "wb") as f:
        f.write(solve(format=quant.QUANT_FORMAT_GGUF, gguf_type=quant.QUANT_GGUF_TYPE_F16)[0])
    ids = llamacpp.tokenize(work, gguf, text)
    by_id = {i: t for t, i in tokenizer["model"]["vocab"].items()}
    byte_tokens = [i for i in ids if by_id[i].startswith("<0x")]
    merged = [i for i in ids if len(by_id[i]) > 1 and not by_id[i].startswith("<0x")]
    print(f"{kind}: llama.cpp reads {len(text)} characters as {len(ids)} tokens, "
          f"{len(merged)} of them merged, {len(byte_tokens)} byte tokens")
    assert len(merged) >= len(ids) // 4, kind
    if tokenizer["model"].get("byte_fallback"):  # 東京, Ωμέγα and 🙂 as bytes
        assert len(byte_tokens) == 3 * 20, (kind, len(byte_tokens))
    bos = tokenizer["post_processor"]["special_tokens"]["<s>"]["ids"][0]
    tokens = np.array([[bos] + ids], np.int32)
    gptq = dict(method=quant.QUANT_METHOD_GPTQ, bits=4, group_size=32)
    by_ids = solve(calibration_tokens=quant.QuantFile(blob_id=client.upload_bytes(
        solverd.safetensors.save({"tokens": tokens})).blob_id), **gptq)
    by_text = solve(calibration_text=quant.QuantFile(blob_id=client.upload_bytes(
        text.encode()).blob_id), calibration_sequences=1, calibration_length=tokens.shape[1],
        **gptq)
    assert by_text == by_ids, f"{kind}: the server's tokens of the text are not llama.cpp's"


if __name__ == "__main__":
    sys.exit(main())
