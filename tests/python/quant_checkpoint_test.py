#!/usr/bin/python3
"""The quant family on Hugging Face checkpoint folders: config.json and
weights sharded with model.safetensors.index.json, named as a folder under
--data-root or uploaded as blobs with their file names. The result is the
same file the single-file form gives; lm_head, embeddings and norms stay as
they are; errors name the field and the file. A GPTQ output is the folder
GPTQ loaders read. Files of any size stream to and from blobs.

Run with pytest (as make test does, beside solverd_client_test.py) or
directly: SOLVERD_BINARY=PATH PYTHONPATH=<build>/python /usr/bin/python3 quant_checkpoint_test.py
"""
import io
import json
import os
import shutil
import tarfile
import tempfile
import unittest

import grpc
import numpy as np

import solverd
from server_fixture import Server

quant = solverd.quant_pb2

CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 48,
          "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
          "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
          "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": False,
          "torch_dtype": "float16"}


def llama_weights(seed=3):
    """A two-block Llama of CONFIG's shapes, in transformers' tensor names."""
    rng = np.random.default_rng(seed)
    h, ff, kv = 32, 64, 16
    def w(*shape):
        return (0.1 * rng.normal(size=shape)).astype(np.float16)
    out = {"model.embed_tokens.weight": w(48, h)}
    for layer in range(2):
        b = f"model.layers.{layer}."
        out.update({b + "input_layernorm.weight": np.ones(h, np.float16),
                    b + "self_attn.q_proj.weight": w(h, h), b + "self_attn.k_proj.weight": w(kv, h),
                    b + "self_attn.v_proj.weight": w(kv, h), b + "self_attn.o_proj.weight": w(h, h),
                    b + "post_attention_layernorm.weight": np.ones(h, np.float16),
                    b + "mlp.gate_proj.weight": w(ff, h), b + "mlp.up_proj.weight": w(ff, h),
                    b + "mlp.down_proj.weight": w(h, ff)})
    out["model.norm.weight"] = np.ones(h, np.float16)
    out["lm_head.weight"] = w(48, h)
    return out


def write_checkpoint(folder, weights, split=10):
    """config.json, two shards and their index, as save_pretrained writes them."""
    os.makedirs(folder, exist_ok=True)
    names = list(weights)
    shards = {"model-00001-of-00002.safetensors": names[:split],
              "model-00002-of-00002.safetensors": names[split:]}
    files = {"config.json": json.dumps(CONFIG).encode(),
             "tokenizer_config.json": b"{}"}  # present in real folders; not read
    weight_map = {}
    for shard, members in shards.items():
        files[shard] = solverd.safetensors.save({n: weights[n] for n in members},
                                                metadata={"format": "pt"})
        weight_map.update({n: shard for n in members})
    files["model.safetensors.index.json"] = json.dumps(
        {"metadata": {"total_size": 0}, "weight_map": weight_map}).encode()
    for name, data in files.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    return files


class QuantCheckpoints(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Cleanups run in reverse, and also when a later step of set-up fails.
        cls.tmp = tempfile.TemporaryDirectory()
        cls.addClassCleanup(cls.tmp.cleanup)
        cls.root = os.path.join(cls.tmp.name, "root")
        os.makedirs(cls.root)
        # With a state dir, outputs are written to disk as they are made and
        # served from there (the llama.cpp test covers outputs in memory).
        cls.state = os.path.join(cls.tmp.name, "state")
        cls.server = Server(os.environ["SOLVERD_BINARY"], cls.tmp.name,
                            f"--data-root={cls.root}", f"--state-dir={cls.state}")
        cls.addClassCleanup(cls.server.stop)
        cls.client = solverd.Client(cls.server.address)
        cls.addClassCleanup(cls.client.close)
        cls.weights = llama_weights()
        cls.files = write_checkpoint(os.path.join(cls.root, "llama"), cls.weights)

    def solve(self, model, **options):
        return self.client.solve(quant.QuantProblem(model=model, bits=4, group_size=16, **options))

    def test_outputs_are_blob_files_with_nothing_left_over(self):
        result = self.solve(quant.QuantFile(checkpoint_path="llama"))
        names = os.listdir(os.path.join(self.state, "blobs"))
        self.assertIn(result.output_blob_id, [n.split(".")[0] for n in names])
        self.assertEqual([n for n in names if not n.endswith(".blob")], [])
        data = self.client.download_bytes(result.output_blob_id)
        self.assertEqual(len(data), result.output_bytes)
        self.assertIn("model.layers.0.self_attn.q_proj.qweight",
                      solverd.safetensors.load(data)[0])

    def test_k_quant_gguf_reads_back_with_the_package_reader(self):
        """solverd.gguf (written from ggml's block layouts) reads each
        K-quant type back close to the weights, in the types asked for."""
        rng = np.random.default_rng(5)
        weights = {"fc.weight": (0.1 * rng.standard_normal((8, 512))).astype(np.float32),
                   "norm.weight": np.ones(512, np.float32)}
        blob = self.client.upload_bytes(solverd.safetensors.save(weights)).blob_id
        for name, kind, bound in (("Q4_K", quant.QUANT_GGUF_TYPE_Q4_K, 0.12),
                                  ("Q5_K", quant.QUANT_GGUF_TYPE_Q5_K, 0.06),
                                  ("Q6_K", quant.QUANT_GGUF_TYPE_Q6_K, 0.03)):
            result = self.client.solve(quant.QuantProblem(
                model=quant.QuantFile(blob_id=blob), format=quant.QUANT_FORMAT_GGUF,
                gguf_type=kind))
            data = self.client.download_bytes(result.output_blob_id)
            self.assertEqual(solverd.gguf.tensor_types(data),
                             {"fc.weight": name, "norm.weight": "F32"})
            tensors, metadata = solverd.gguf.load(data)
            self.assertEqual(metadata["general.quantized_by"], "solverd")
            error = np.linalg.norm(tensors["fc.weight"] - weights["fc.weight"]) / \
                np.linalg.norm(weights["fc.weight"])
            self.assertLess(error, bound, name)
            self.assertAlmostEqual(error, result.layers[0].weight_mse ** 0.5 * np.sqrt(
                weights["fc.weight"].size) / np.linalg.norm(weights["fc.weight"]), places=5)

    def test_a_sharded_folder_quantizes_as_the_single_file(self):
        from_folder = self.solve(quant.QuantFile(checkpoint_path="llama"))
        self.assertEqual(from_folder.architecture, "llama")
        names = [layer.name for layer in from_folder.layers]
        self.assertEqual(len(names), 14, names)  # 7 projections per block
        self.assertTrue(all(n.startswith("model.layers.") and n.endswith("_proj.weight")
                            for n in names))
        self.assertEqual(from_folder.copied_tensors, 7)  # embeddings, 5 norms, lm_head
        single = solverd.safetensors.save(self.weights, metadata={"format": "pt"})
        from_file = self.solve(quant.QuantFile(blob_id=self.client.upload_bytes(single).blob_id))
        self.assertEqual(from_file.architecture, "")
        folder_bytes = self.client.download_bytes(from_folder.output_blob_id)
        self.assertEqual(folder_bytes, self.client.download_bytes(from_file.output_blob_id))
        out = solverd.safetensors.dequantize(folder_bytes)
        np.testing.assert_array_equal(out["lm_head.weight"], self.weights["lm_head.weight"])

        blobs = quant.QuantCheckpointBlobs(files=[
            quant.QuantCheckpointFile(name=name, blob_id=self.client.upload_bytes(data).blob_id)
            for name, data in self.files.items()])
        from_blobs = self.solve(quant.QuantFile(checkpoint_blobs=blobs))
        self.assertEqual(self.client.download_bytes(from_blobs.output_blob_id), folder_bytes)

        named = self.solve(quant.QuantFile(checkpoint_path="llama"),
                           include=["model.layers.*", "lm_head.weight"])
        self.assertEqual(named.layers[-1].name, "lm_head.weight")

    def test_gptq_output_is_the_folder_a_gptq_loader_reads(self):
        """Read with Python's tarfile and the GPTQ layout as loaders document
        it, not with solverd's code: the weights are those of solverd's own
        layout for the same codes."""
        options = dict(model=quant.QuantFile(checkpoint_path="llama"), bits=4, group_size=16,
                       symmetric=True, method=quant.QUANT_METHOD_RTN)
        result = self.client.solve(quant.QuantProblem(format=quant.QUANT_FORMAT_GPTQ,
                                                      max_shard_bytes=20000, **options))
        with tarfile.open(fileobj=io.BytesIO(
                self.client.download_bytes(result.output_blob_id))) as tar:
            files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        self.assertEqual(list(files), list(result.output_files))
        config = json.loads(files["config.json"])
        self.assertEqual(config["hidden_size"], CONFIG["hidden_size"])
        self.assertEqual({k: config["quantization_config"][k] for k in
                          ("quant_method", "bits", "group_size", "desc_act", "sym")},
                         {"quant_method": "gptq", "bits": 4, "group_size": 16,
                          "desc_act": False, "sym": True})
        self.assertEqual(json.loads(files["quantize_config.json"])["bits"], 4)
        self.assertEqual(files["tokenizer_config.json"], self.files["tokenizer_config.json"])
        index = json.loads(files["model.safetensors.index.json"])
        tensors = {}
        for shard in sorted(set(index["weight_map"].values())):
            tensors.update(solverd.safetensors.load(files[shard])[0])
        self.assertEqual(set(tensors), set(index["weight_map"]))
        ours = self.client.solve(quant.QuantProblem(**options))
        expected = solverd.safetensors.dequantize(self.client.download_bytes(ours.output_blob_id))
        shifts = np.arange(8, dtype=np.uint32) * 4
        layers = [l.name[:-len(".weight")] for l in ours.layers]
        self.assertEqual(len(layers), 14)
        for layer in layers:
            qweight = tensors[layer + ".qweight"].view(np.uint32)  # [in / 8, out]
            k, n = qweight.shape[0] * 8, qweight.shape[1]
            codes = ((qweight[:, None, :] >> shifts[None, :, None]) & 15).reshape(k, n)
            qzeros = tensors[layer + ".qzeros"].view(np.uint32)  # [groups, out / 8]
            g_idx = tensors[layer + ".g_idx"]
            zeros = (((qzeros[:, :, None] >> shifts) & 15).reshape(-1, n) + 1)[g_idx]
            scales = tensors[layer + ".scales"].astype(np.float32)[g_idx]
            weight = (scales * (codes.astype(np.float32) - zeros)).T
            np.testing.assert_array_equal(weight.astype(np.float32), expected[layer + ".weight"])
        np.testing.assert_array_equal(tensors["lm_head.weight"], self.weights["lm_head.weight"])

    def test_a_local_folder_is_uploaded_file_by_file(self):
        seen = []
        model = self.client.upload_checkpoint(os.path.join(self.root, "llama"),
                                              progress=lambda done, total: seen.append(
                                                  (done, total)))
        names = [f.name for f in model.checkpoint_blobs.files]
        self.assertEqual(names[0], "config.json")
        self.assertIn("model-00002-of-00002.safetensors", names)
        self.assertIn("tokenizer_config.json", names)
        self.assertTrue(seen and all(done <= total for done, total in seen))
        from_blobs = self.solve(model)
        from_folder = self.solve(quant.QuantFile(checkpoint_path="llama"))
        self.assertEqual(self.client.download_bytes(from_blobs.output_blob_id),
                         self.client.download_bytes(from_folder.output_blob_id))

    def expect_error(self, model, code, fragment, **options):
        with self.assertRaises(grpc.RpcError) as raised:
            self.client.submit(quant.QuantProblem(model=model, **dict(dict(bits=4), **options)))
        self.assertEqual(raised.exception.code(), code, raised.exception.details())
        self.assertIn(fragment, raised.exception.details())

    def test_errors_name_the_field_and_the_file(self):
        broken = os.path.join(self.root, "broken")
        shutil.copytree(os.path.join(self.root, "llama"), broken)
        os.remove(os.path.join(broken, "model-00002-of-00002.safetensors"))
        self.expect_error(quant.QuantFile(checkpoint_path="broken"), grpc.StatusCode.NOT_FOUND,
                          "quant.model.checkpoint_path: broken/model-00002-of-00002.safetensors "
                          "not found")
        config = dict(CONFIG, intermediate_size=60)
        with open(os.path.join(broken, "config.json"), "w") as f:
            json.dump(config, f)
        shutil.copy(os.path.join(self.root, "llama", "model-00002-of-00002.safetensors"), broken)
        self.expect_error(quant.QuantFile(checkpoint_path="broken"),
                          grpc.StatusCode.INVALID_ARGUMENT,
                          'quant.model: tensor "model.layers.0.mlp.gate_proj.weight" must be a '
                          "float [60, 32] as config.json gives it")
        os.remove(os.path.join(broken, "model.safetensors.index.json"))
        self.expect_error(quant.QuantFile(checkpoint_path="broken"),
                          grpc.StatusCode.INVALID_ARGUMENT,
                          "quant.model.checkpoint_path: the checkpoint has neither "
                          "model.safetensors nor model.safetensors.index.json")
        self.expect_error(quant.QuantFile(checkpoint_path="../"),
                          grpc.StatusCode.INVALID_ARGUMENT, "leaves the data root")
        self.expect_error(quant.QuantFile(checkpoint_path="llama/config.json"),
                          grpc.StatusCode.INVALID_ARGUMENT, "is not a folder")
        config_blob = self.client.upload_bytes(self.files["config.json"]).blob_id
        self.expect_error(quant.QuantFile(checkpoint_blobs=quant.QuantCheckpointBlobs(files=[
            quant.QuantCheckpointFile(name="config.json", blob_id=config_blob)])),
            grpc.StatusCode.INVALID_ARGUMENT, "quant.model.checkpoint_blobs: the checkpoint has "
            "neither")
        self.expect_error(quant.QuantFile(checkpoint_blobs=quant.QuantCheckpointBlobs(files=[
            quant.QuantCheckpointFile(name="sub/config.json", blob_id=config_blob)])),
            grpc.StatusCode.INVALID_ARGUMENT, "is not a file name")
        self.expect_error(quant.QuantFile(checkpoint_path="llama"),
                          grpc.StatusCode.INVALID_ARGUMENT, "quant.gguf_type: only with format "
                          "gguf", gguf_type=quant.QUANT_GGUF_TYPE_F16)
        k_quant = dict(format=quant.QUANT_FORMAT_GGUF, gguf_type=quant.QUANT_GGUF_TYPE_Q4_K_M)
        self.expect_error(quant.QuantFile(checkpoint_path="llama"),
                          grpc.StatusCode.INVALID_ARGUMENT, "quant.group_size: gguf_type "
                          "Q4_K_M fixes its grids", group_size=64, **k_quant)
        self.expect_error(quant.QuantFile(checkpoint_path="llama"),
                          grpc.StatusCode.INVALID_ARGUMENT, "quant.bits: gguf_type Q4_K_M is "
                          "4-bit; leave bits unset", bits=3, **k_quant)
        self.expect_error(quant.QuantFile(checkpoint_path="llama"),
                          grpc.StatusCode.INVALID_ARGUMENT, "quant.method: gguf_type Q4_K_M is "
                          "rounded by rtn or gptq, not hqq", method=quant.QUANT_METHOD_HQQ,
                          **k_quant)
        # This checkpoint's rows are 32 wide: no whole super-block of 256.
        self.expect_error(quant.QuantFile(path="llama/model-00001-of-00002.safetensors"),
                          grpc.StatusCode.INVALID_ARGUMENT, "K-quant super-blocks are 256 "
                          "weights of a row, and its rows have 32", **k_quant)
        self.expect_error(quant.QuantFile(path="llama/model-00001-of-00002.safetensors"),
                          grpc.StatusCode.INVALID_ARGUMENT, "quant.calibration: must be one "
                          "safetensors file", calibration=quant.QuantFile(checkpoint_path="llama"))


class Files(unittest.TestCase):
    """Files stream from and to disk in chunks; a failed upload raises and
    leaves nothing stored, a failed download leaves no file."""

    def test_files_stream_and_failures_leave_nothing(self):
        with tempfile.TemporaryDirectory() as tmp:
            server = Server(os.environ["SOLVERD_BINARY"], tmp,
                            f"--blob-quota-bytes={3 << 20}")
            try:
                with solverd.Client(server.address) as client:
                    big, small = os.path.join(tmp, "big"), os.path.join(tmp, "small")
                    with open(big, "wb") as f:
                        f.write(os.urandom(5 << 20))
                    data = os.urandom((5 << 19) + 7)  # 2.5 MiB and a bit: three chunks
                    with open(small, "wb") as f:
                        f.write(data)
                    with self.assertRaises(grpc.RpcError) as raised:
                        client.upload_file(big, progress=False)
                    self.assertEqual(raised.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
                    # The failed upload's bytes were given back: this fits.
                    seen = []
                    info = client.upload_file(small, progress=lambda d, t: seen.append((d, t)))
                    self.assertEqual(info.size_bytes, len(data))
                    self.assertEqual(seen[-1], (len(data), len(data)))
                    self.assertEqual(len(seen), 3)
                    out = os.path.join(tmp, "out")
                    self.assertEqual(client.download_file(info.blob_id, out, progress=False),
                                     len(data))
                    with open(out, "rb") as f:
                        self.assertEqual(f.read(), data)
                    with self.assertRaises(grpc.RpcError):
                        client.download_file("blob-nope", os.path.join(tmp, "none"),
                                             progress=False)
                    self.assertEqual(sorted(os.listdir(tmp)), ["big", "out", "ports", "small"])
            finally:
                server.stop()

    def test_the_progress_line_gives_rate_and_time_left(self):
        line = io.StringIO()
        report = solverd.files.TerminalProgress("upload x", stream=line)
        report(1 << 20, 4 << 20)
        report(4 << 20, 4 << 20)
        self.assertRegex(line.getvalue(), r"upload x: 100.0% 4.0 of 4.0 MiB, [0-9,.]+ MiB/s, 0 s "
                                          r"left \n$")


if __name__ == "__main__":
    unittest.main(verbosity=2)
