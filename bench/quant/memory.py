"""The quant family's memory on a real-sized checkpoint: a synthetic
Llama-shaped Hugging Face folder of random fp16 weights (config.json, three
shards and their index; at least 4 GiB, cached between runs) quantized with
RTN at 4 bits from --data-root, one job on a fresh server with a
--state-dir (the output is written there as it is produced), then the
output downloaded; the server's peak RSS (VmHWM) is read after both.
Writes bench/results/quant_memory.{json,md}
(case synthetic_4gib, system solverd-rtn, metrics peak_rss_bytes and
seconds).
  bench/quant/memory   (runs this with a server it starts)
"""
import argparse
import json
import os
import platform
import struct
import time

import numpy as np

import solverd

quant = solverd.quant_pb2

# Llama-2-7B's widths with ten blocks: 2.28 G parameters, 4.25 GiB in fp16.
CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 32000,
          "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 10,
          "num_attention_heads": 32, "num_key_value_heads": 32,
          "max_position_embeddings": 4096, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
          "torch_dtype": "float16", "tie_word_embeddings": False}


def tensor_shapes():
    c = CONFIG
    h, ff, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    shapes = {"model.embed_tokens.weight": (v, h)}
    for layer in range(c["num_hidden_layers"]):
        b = f"model.layers.{layer}."
        shapes.update({b + "input_layernorm.weight": (h,), b + "self_attn.q_proj.weight": (h, h),
                       b + "self_attn.k_proj.weight": (h, h), b + "self_attn.v_proj.weight": (h, h),
                       b + "self_attn.o_proj.weight": (h, h),
                       b + "post_attention_layernorm.weight": (h,),
                       b + "mlp.gate_proj.weight": (ff, h), b + "mlp.up_proj.weight": (ff, h),
                       b + "mlp.down_proj.weight": (h, ff)})
    shapes["model.norm.weight"] = (h,)
    shapes["lm_head.weight"] = (v, h)
    return shapes


def write_shard(path, shapes, rng):
    """A safetensors file of random fp16 tensors, written tensor by tensor."""
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = 2 * int(np.prod(shape))
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path + ".part", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for name, shape in shapes.items():
            if len(shape) == 1:
                f.write(np.ones(shape, np.float16).tobytes())
            else:
                for rows in np.array_split(np.arange(shape[0]), max(1, shape[0] // 1024)):
                    block = rng.standard_normal((len(rows), shape[1]), dtype=np.float32)
                    f.write((0.02 * block).astype(np.float16).tobytes())
    os.replace(path + ".part", path)


def make_checkpoint(folder):
    """The folder, unless a complete one is there already."""
    index_path = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index_path):
        return
    os.makedirs(folder, exist_ok=True)
    shapes = tensor_shapes()
    names = list(shapes)
    shards = [names[i::3] for i in range(3)]  # interleaved: every shard about 1.4 GiB
    shards = [sorted(s, key=names.index) for s in shards]
    rng = np.random.default_rng(1)
    weight_map = {}
    for k, members in enumerate(shards):
        file = f"model-{k + 1:05d}-of-00003.safetensors"
        write_shard(os.path.join(folder, file), {n: shapes[n] for n in members}, rng)
        weight_map.update({n: file for n in members})
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(CONFIG, f)
    with open(index_path + ".part", "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    os.replace(index_path + ".part", index_path)


def rss(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--root", required=True, help="the server's --data-root")
    parser.add_argument("--out", default="bench/results/quant_memory")
    parser.add_argument("--download-dir", required=True, help="where the output is downloaded")
    args = parser.parse_args()
    folder = os.path.join(args.root, "synthetic-4gib")
    started = time.time()
    make_checkpoint(folder)
    weights = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder)
                  if n.endswith(".safetensors"))
    print(f"checkpoint: {weights / 2**30:.2f} GiB of safetensors "
          f"(ready in {time.time() - started:.0f} s)", flush=True)
    before = rss(args.server_pid, "VmRSS")
    with solverd.Client(args.server, timeout=600) as client:
        start = time.time()
        job = client.submit(quant.QuantProblem(
            model=quant.QuantFile(checkpoint_path="synthetic-4gib"),
            method=quant.QUANT_METHOD_RTN, bits=4, group_size=128))
        result = client.result(job.id, timeout=3600)
        wall = time.time() - start
        after_job = rss(args.server_pid, "VmHWM")
        start = time.time()
        target = os.path.join(args.download_dir, "output.safetensors")
        client.download_file(result.output_blob_id, target, size=result.output_bytes,
                             progress=False)
        download = time.time() - start
        os.remove(target)
    peak = rss(args.server_pid, "VmHWM")
    where = platform.processor() or platform.machine()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                where = line.split(":", 1)[1].strip()
                break
    records = [{"case": "synthetic_4gib", "system": "solverd-rtn", "backend": result.device,
                "metric": metric, "value": value}
               for metric, value in (("peak_rss_bytes", peak), ("seconds", wall),
                                     ("bytes", weights), ("output_bytes", result.output_bytes),
                                     ("download_seconds", download))]
    json.dump({"family": "quant", "machine": f"{where} ({os.cpu_count()} cores)",
               "command": "bench/quant/memory", "records": records},
              open(args.out + ".json", "w"), indent=1)
    with open(args.out + ".md", "w") as f:
        f.write(f"# quant: memory on a real-sized checkpoint\n\nMachine: {where} "
                f"({os.cpu_count()} cores). Command: `bench/quant/memory`.\n\n"
                f"A synthetic Llama-shaped checkpoint (Llama-2-7B's widths, "
                f"{CONFIG['num_hidden_layers']} blocks, random fp16 weights, three shards and "
                f"their index) quantized with RTN at 4 bits, group 128, from `--data-root`, "
                f"one job on a fresh server (`--cpu-workers=1`, `--state-dir`: the output is "
                f"written there as it is produced), then the output downloaded.\n\n"
                f"| figure | value |\n|---|---|\n"
                f"| checkpoint | {weights / 2**30:.2f} GiB ({len(result.layers)} layers "
                f"quantized, {result.copied_tensors} tensors copied) |\n"
                f"| output | {result.output_bytes / 2**30:.2f} GiB |\n"
                f"| seconds (submit to result) | {wall:.1f} |\n"
                f"| download seconds | {download:.1f} |\n"
                f"| server RSS before / peak after the job / peak after the download | "
                f"{before / 2**20:.0f} / {after_job / 2**20:.0f} / {peak / 2**20:.0f} MiB |\n")
    print(f"peak RSS {peak / 2**30:.2f} GiB, {wall:.1f} s, output "
          f"{result.output_bytes / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
