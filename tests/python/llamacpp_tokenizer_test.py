#!/usr/bin/python3
"""solverd reads calibration text with a SentencePiece-style tokenizer.json
(Llama 2's and Mistral's: byte_fallback, spaces as "▁") exactly as llama.cpp
tokenizes it. A BPE vocabulary is learned here from the test text the way
SentencePiece learns one, written as Hugging Face's converter writes it
(every split of a piece into two pieces a merge, ranked by the piece),
and put in a tiny random Llama checkpoint twice: with Llama 2's normalizer
(Prepend "▁", Replace " ") and with a Metaspace pre_tokenizer. llama.cpp
(npm's node-llama-cpp, its prebuilt CPU build) tokenizes the text from the
GGUF file solverd writes of the checkpoint; GPTQ calibrated by the server
from the text must give, byte for byte, the file and the Hessians it gives
from <s> and llama.cpp's ids sent as calibration_tokens. The text holds characters the
vocabulary lacks (their UTF-8 bytes' <0xNN> tokens), runs of spaces and
newlines.

When npm cannot install node-llama-cpp (no registry) the test prints
SKIPPED and why.
  llamacpp_tokenizer_test.py WORK_DIR   (SOLVERD_BINARY and PYTHONPATH set)
"""
import collections
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
SPACE = "\u2581"
TEXT = ("In the beginning the tokenizer read the text, and the text was long.  Then the "
        "merges came, one after another, and the pieces grew: the, then, there, therefore.\n\n"
        "A naïve café served crème brûlée to the reader; the reader wrote 12345 and 67.\n"
        "\tTabs,   three spaces, and a line that ends with a space \n"
        "Unicode outside the vocabulary: 東京, Ωμέγα, and an emoji 🙂 stand for their bytes.\n"
        ) * 3
MERGES = 120


def learn_pieces(text, count):
    """SentencePiece-style BPE on `text`: words begin at each "▁"; each round
    merges the most frequent adjacent pair (ties by first appearance)."""
    normalized = SPACE + text.replace(" ", SPACE)
    words = collections.Counter()
    start = 0
    for k in range(1, len(normalized) + 1):
        if k == len(normalized) or normalized[k] == SPACE:
            words[tuple(normalized[start:k])] += 1
            start = k
    pieces = []
    for _ in range(count):
        pairs = collections.Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = max(pairs, key=lambda p: pairs[p])
        pieces.append(best[0] + best[1])
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
    return pieces


def sentencepiece_tokenizer(text, metaspace):
    """tokenizer.json of a SentencePiece-style vocabulary learned on `text`:
    <unk> <s> </s>, the 256 byte tokens, the learned pieces, then the
    characters below U+0250 (Latin; the rest fall back to bytes)."""
    pieces = [p for p in dict.fromkeys(learn_pieces(text, MERGES))
              if all(ord(c) < 0x250 or c == SPACE for c in p)]
    chars = sorted(c for c in set(SPACE + text.replace(" ", SPACE))
                   if (ord(c) < 0x250 or c == SPACE) and c not in pieces)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"<0x{b:02X}>": 3 + b for b in range(256)})
    for piece in pieces + chars:
        vocab.setdefault(piece, len(vocab))
    merges = []
    for piece in pieces:  # by the piece's rank, then its halves' ids
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
    return {"version": "1.0",
            "added_tokens": [{"id": i, "content": t, "special": True}
                             for i, t in enumerate(("<unk>", "<s>", "</s>"))],
            "normalizer": normalizer, "pre_tokenizer": pre,
            "post_processor": {"type": "TemplateProcessing",
                               "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                          {"Sequence": {"id": "A", "type_id": 0}}],
                               "special_tokens": {"<s>": {"id": "<s>", "ids": [1],
                                                          "tokens": ["<s>"]}}},
            "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": True,
                      "byte_fallback": True, "vocab": vocab, "merges": merges}}


def write_checkpoint(folder, tokenizer):
    vocab = len(tokenizer["model"]["vocab"])
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
              "vocab_size": vocab, "hidden_size": 64, "intermediate_size": 128,
              "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
              "max_position_embeddings": 1024, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
              "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
              "torch_dtype": "float32"}
    rng = np.random.default_rng(3)
    shapes = {"model.embed_tokens.weight": (vocab, 64), "lm_head.weight": (vocab, 64),
              "model.norm.weight": (64,)}
    b = "model.layers.0."
    shapes.update({b + "input_layernorm.weight": (64,), b + "post_attention_layernorm.weight": (64,),
                   b + "self_attn.q_proj.weight": (64, 64), b + "self_attn.k_proj.weight": (32, 64),
                   b + "self_attn.v_proj.weight": (32, 64), b + "self_attn.o_proj.weight": (64, 64),
                   b + "mlp.gate_proj.weight": (128, 64), b + "mlp.up_proj.weight": (128, 64),
                   b + "mlp.down_proj.weight": (64, 128)})
    weights = {n: (rng.normal(size=s) / np.sqrt(s[-1]) if len(s) == 2 else 1 + 0.1 *
                   rng.normal(size=s)).astype(np.float32) for n, s in shapes.items()}
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
        for kind in ("normalizer", "metaspace"):
            write_checkpoint(os.path.join(root, kind),
                             sentencepiece_tokenizer(TEXT, kind == "metaspace"))
        server = Server(os.environ["SOLVERD_BINARY"], tmp, f"--data-root={root}")
        try:
            with solverd.Client(server.address) as client:
                check(client, work, tmp)
        finally:
            server.stop()
    return 0


def check(client, work, tmp):
    def solve(folder, **fields):
        """The output file, and the Hessians of a sequential pass (exact
        float64 sums: one token apart would change them)."""
        result = client.solve(quant.QuantProblem(
            model=quant.QuantFile(checkpoint_path=folder), **fields))
        return [client.download_bytes(b) for b in (result.output_blob_id,
                                                   result.calibration_blob_id) if b]

    gguf = os.path.join(tmp, "vocab.gguf")
    with open(gguf, "wb") as f:
        f.write(solve("normalizer", format=quant.QUANT_FORMAT_GGUF,
                      gguf_type=quant.QUANT_GGUF_TYPE_F16)[0])
    ids = llamacpp.tokenize(work, gguf, TEXT)
    vocab = sentencepiece_tokenizer(TEXT, False)["model"]["vocab"]
    by_id = {i: t for t, i in vocab.items()}
    fallback = sum(3 <= i < 259 for i in ids)
    merged = sum(len(by_id[i]) > 1 and not 3 <= i < 259 for i in ids)
    print(f"llama.cpp: {len(TEXT)} characters in {len(ids)} tokens, {merged} of them merged "
          f"pieces, {fallback} byte tokens")
    assert fallback >= 3 * 20 and merged >= len(ids) // 4, (fallback, merged)
    text = quant.QuantFile(blob_id=client.upload_bytes(TEXT.encode()).blob_id)
    tokens = np.array([[1] + ids], np.int32)
    gptq = dict(method=quant.QUANT_METHOD_GPTQ, bits=4, group_size=32)
    by_ids = solve("normalizer", calibration_tokens=quant.QuantFile(blob_id=client.upload_bytes(
        solverd.safetensors.save({"tokens": tokens})).blob_id), **gptq)
    for folder in ("normalizer", "metaspace"):
        by_text = solve(folder, calibration_text=text, calibration_sequences=1,
                        calibration_length=tokens.shape[1], **gptq)
        assert by_text == by_ids, f"{folder}: solverd's tokens of the text are not llama.cpp's"
        print(f"{folder}: GPTQ from the text equals GPTQ from <s> and llama.cpp's ids")


if __name__ == "__main__":
    sys.exit(main())
