#!/usr/bin/python3
"""Calibration at scale on the Llama-architecture test model
(bench/quant/llama_lm.py, random weights). solverd.quant.capture_calibration:
the Hessians it writes are X^T X of the activations its hooks saw, layers
that read one input share one brace-named entry, the sample rows are rows
of X; the server's GPTQ from that file gives what it gives from the
activations themselves. calibration_tokens: the server's own forward pass
gives each layer the Hessian PyTorch computes on the model whose earlier
layers are the quantized ones (and not the fp32 model's).

Run with pytest (as make test does) or directly:
SOLVERD_BINARY=PATH PYTHONPATH=<build>/python /usr/bin/python3 quant_calibration_test.py
"""
import os
import sys
import tempfile
import unittest

import grpc
import numpy as np
import torch

import solverd
from server_fixture import ServerTestCase

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "bench", "quant"))
import llama_lm  # noqa: E402
import lm  # noqa: E402

quant = solverd.quant_pb2
ATTENTION = "model.layers.{}.self_attn.{{q_proj,k_proj,v_proj}}"
MLP = "model.layers.{}.mlp.{{gate_proj,up_proj}}"


def small_model():
    torch.manual_seed(7)
    return llama_lm.LlamaLM().eval()


def batches():
    generator = torch.Generator().manual_seed(8)
    return [torch.randint(0, 256, (2, 24), generator=generator) for _ in range(3)]


class Capture(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.addClassCleanup(cls.tmp.cleanup)
        cls.path = os.path.join(cls.tmp.name, "calibration.safetensors")
        cls.seen = []
        cls.summary = solverd.quant.capture_calibration(
            small_model(), batches(), cls.path, sample_rows=40, dtype="float64",
            progress=lambda done, total: cls.seen.append((done, total)))
        with open(cls.path, "rb") as f:
            cls.tensors = solverd.safetensors.load(f.read())[0]
        # The reference: every activation, as the inputs file holds them.
        cls.inputs = lm.linear_inputs(small_model(), torch.cat(batches()))

    def test_layers_that_read_one_input_share_one_entry(self):
        blocks = llama_lm.CONFIG["num_hidden_layers"]
        expected = set()
        for b in range(blocks):
            expected |= {ATTENTION.format(b), MLP.format(b), f"model.layers.{b}.self_attn.o_proj",
                         f"model.layers.{b}.mlp.down_proj"}
        expected.add("lm_head")
        self.assertEqual(set(self.summary), expected)
        self.assertEqual(self.summary[ATTENTION.format(0)]["layers"],
                         [f"model.layers.0.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj")])
        self.assertEqual(self.seen, [(1, 3), (2, 3), (3, 3)])

    def test_hessians_are_x_transpose_x_of_the_hooked_inputs(self):
        for entry, info in self.summary.items():
            x = self.inputs[info["layers"][0] + ".inputs"].astype(np.float64)
            for member in info["layers"][1:]:  # they did read the same input
                np.testing.assert_array_equal(self.inputs[member + ".inputs"], x.astype(np.float32))
            self.assertEqual(int(self.tensors[entry + ".tokens"]), x.shape[0])
            self.assertEqual(self.tensors[entry + ".tokens"].shape, ())
            np.testing.assert_allclose(self.tensors[entry + ".hessian"], x.T @ x,
                                       rtol=1e-6, atol=1e-9, err_msg=entry)

    def test_the_sample_rows_are_rows_of_the_inputs(self):
        for entry, info in self.summary.items():
            sample = self.tensors[entry + ".inputs"]
            x = self.inputs[info["layers"][0] + ".inputs"]
            self.assertEqual(sample.shape, (40, x.shape[1]))
            for row in sample:
                self.assertTrue(np.any(np.all(np.abs(x - row) <= 1e-6 * np.abs(row).max(), 1)),
                                entry)
            self.assertGreater(len({r.tobytes() for r in sample}), 35, "a sample, not a repeat")

    def test_bad_arguments_say_what(self):
        with self.assertRaisesRegex(ValueError, "no nn.Linear layer matches"):
            solverd.quant.capture_calibration(small_model(), batches(), self.path,
                                              layers=["nothing.*"], progress=False)
        with self.assertRaisesRegex(ValueError, "dtype"):
            solverd.quant.capture_calibration(small_model(), batches(), self.path,
                                              dtype="float16", progress=False)


class WithServer(ServerTestCase):
    """A solverd for the class's tests, and uploads to it."""

    @classmethod
    def upload(cls, data):
        return quant.QuantFile(blob_id=cls.client.upload_bytes(data).blob_id)


class ServerGptq(WithServer):
    """GPTQ on the server from the captured Hessians against the inputs."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        model = small_model()
        weights = {n: t.detach().numpy() for n, t in model.state_dict().items()}
        cls.model = cls.upload(solverd.safetensors.save(weights))
        cls.inputs = cls.upload(solverd.safetensors.save(
            lm.linear_inputs(small_model(), torch.cat(batches()))))
        path = os.path.join(cls.tmp.name, "h.safetensors")
        solverd.quant.capture_calibration(model, batches(), path, progress=False)
        with open(path, "rb") as f:
            cls.hessians = cls.upload(f.read())

    def gptq(self, calibration, method=quant.QUANT_METHOD_GPTQ):
        return self.client.solve(quant.QuantProblem(
            model=self.model, calibration=calibration, method=method, bits=3, group_size=64))

    def test_gptq_from_hessians_matches_gptq_from_inputs(self):
        from_inputs, from_hessians = self.gptq(self.inputs), self.gptq(self.hessians)
        self.assertEqual(len(from_hessians.layers), 4 * 7)
        for a, b in zip(from_inputs.layers, from_hessians.layers):
            self.assertEqual(a.name, b.name)
            self.assertEqual((a.tokens, b.tokens), (3 * 2 * 24, 3 * 2 * 24))
            # The same H up to float32 rounding of the file's entries.
            self.assertAlmostEqual(b.relative_output_error, a.relative_output_error,
                                   delta=0.005 * a.relative_output_error, msg=a.name)

    def test_dmmv_needs_rows_and_says_so(self):
        with self.assertRaises(grpc.RpcError) as caught:
            self.gptq(self.hessians, method=quant.QUANT_METHOD_DMMV)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("method dmmv needs rows of inputs, tensor "
                      "\"model.layers.0.self_attn.q_proj.inputs\"", caught.exception.details())


def block_hessians(weights, tokens):
    """{layer: X^T X (float64)} of every linear layer's inputs when the
    model with `weights` runs on `tokens`, by PyTorch."""
    inputs = lm.linear_inputs(llama_lm.load(weights), torch.from_numpy(tokens).long())
    return {name[:-len(".inputs")]: x.astype(np.float64).T @ x.astype(np.float64)
            for name, x in inputs.items()}


class Sequential(WithServer):
    """calibration_tokens: the server runs the checkpoint block by block,
    each group of layers calibrated on what the quantized layers before it
    produce. Its Hessians go to --output-root as they are made, mapped."""

    FLAGS = ("--output-root={tmp}/outputs",)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.weights = {n: t.detach().numpy() for n, t in small_model().state_dict().items()}
        folder = os.path.join(cls.tmp.name, "llama")
        llama_lm.save_checkpoint(cls.weights, folder, {"format": "pt"})
        cls.model = cls.client.upload_checkpoint(folder, progress=False)
        cls.tokens = np.random.default_rng(9).integers(0, 256, size=(3, 24)).astype(np.int32)
        cls.token_file = cls.upload(solverd.safetensors.save({"tokens": cls.tokens}))
        cls.result = cls.solve(calibration_tokens=cls.token_file)
        cls.output = cls.client.download_bytes(cls.result.output_blob_id)
        cls.hessians = solverd.safetensors.load(
            cls.client.download_bytes(cls.result.calibration_blob_id))[0]

    @classmethod
    def solve(cls, **fields):
        return cls.client.solve(quant.QuantProblem(
            model=cls.model, method=quant.QUANT_METHOD_GPTQ, bits=3, group_size=64, **fields))

    def entries(self, suffix=".hessian"):
        """{layer: the server's Hessian (or drift) of its input}."""
        out = {}
        for name, h in self.hessians.items():
            if not name.endswith(suffix):
                continue
            base = name[:-len(suffix)]
            if "{" in base:
                parent, members = base[:-1].split(".{")
                out.update({f"{parent}.{m}": h for m in members.split(",")})
            else:
                out[base] = h
        return out

    def test_each_hessian_is_that_of_the_quantized_layers_before_it(self):
        quantized = block_hessians(solverd.safetensors.dequantize(self.output), self.tokens)
        fp32 = block_hessians(self.weights, self.tokens)
        entries = self.entries()
        self.assertEqual(len(entries), 4 * 7)
        self.assertEqual(int(self.hessians["model.layers.0.mlp.down_proj.tokens"]), 3 * 24)
        for layer, h in entries.items():
            scale = np.abs(quantized[layer]).max()
            off_quantized = np.abs(h - quantized[layer]).max() / scale
            off_fp32 = np.abs(h - fp32[layer]).max() / scale
            self.assertLess(off_quantized, 1e-5, layer)  # the forward pass matches PyTorch's
            if layer.startswith("model.layers.0.self_attn.") and layer[-6] in "qkv":
                self.assertLess(off_fp32, 1e-4)  # nothing quantized before it
            else:  # taken from the fp32 model it would be far off
                self.assertGreater(off_fp32, 1000 * off_quantized, layer)

    def test_each_drift_is_the_fp32_models_inputs_apart_from_the_quantized_ones(self):
        quantized = lm.linear_inputs(llama_lm.load(solverd.safetensors.dequantize(self.output)),
                                     torch.from_numpy(self.tokens).long())
        fp32 = lm.linear_inputs(llama_lm.load(self.weights), torch.from_numpy(self.tokens).long())
        drifts = self.entries(".drift")
        self.assertEqual(len(drifts), 4 * 7)
        for layer, drift in drifts.items():
            x = quantized[layer + ".inputs"].astype(np.float64)
            expected = x.T @ (fp32[layer + ".inputs"].astype(np.float64) - x)
            if layer.startswith("model.layers.0.self_attn.") and layer[-6] in "qkv":
                self.assertEqual(np.abs(drift).max(), 0)  # nothing quantized before it
                continue
            scale = np.abs(expected).max()
            self.assertGreater(scale, 0, layer)
            self.assertLess(np.abs(drift - expected).max() / scale, 1e-3, layer)

    def test_gptq_rounds_toward_the_fp32_models_outputs(self):
        """Each layer's codes reproduce the fp32 model's outputs from the
        quantized model's inputs better than the codes GPTQ picks from the
        same Hessians without the drifts."""
        plain = solverd.safetensors.save({n: v for n, v in self.hessians.items()
                                          if not n.endswith(".drift")})
        without = solverd.safetensors.dequantize(self.client.download_bytes(
            self.solve(calibration=self.upload(plain)).output_blob_id))
        with_drift = solverd.safetensors.dequantize(self.output)
        tokens = torch.from_numpy(self.tokens).long()
        quantized = lm.linear_inputs(llama_lm.load(with_drift), tokens)
        fp32 = lm.linear_inputs(llama_lm.load(self.weights), tokens)
        errors = {"with": 0.0, "without": 0.0}
        for name, x in quantized.items():
            layer = name[:-len(".inputs")] + ".weight"
            target = fp32[name].astype(np.float64) @ self.weights[layer].astype(np.float64).T
            for kind, weights in (("with", with_drift), ("without", without)):
                out = x.astype(np.float64) @ weights[layer].astype(np.float64).T
                errors[kind] += ((out - target) ** 2).sum()
        self.assertLess(errors["with"], 0.9 * errors["without"], errors)

    def test_the_returned_calibration_reproduces_the_codes(self):
        again = self.solve(calibration=quant.QuantFile(blob_id=self.result.calibration_blob_id))
        self.assertEqual(self.client.download_bytes(again.output_blob_id), self.output)
        rtn = self.client.solve(quant.QuantProblem(model=self.model, bits=3, group_size=64))
        errors = [(a.relative_output_error, b.relative_output_error)
                  for a, b in zip(self.result.layers, rtn.layers)]
        self.assertLess(sum(a for a, _ in errors), 0.9 * sum(b for _, b in errors))

    def test_the_calibration_is_a_file_in_the_output_root(self):
        names = os.listdir(os.path.join(self.tmp.name, "outputs"))
        self.assertIn(self.result.calibration_blob_id, [n.split(".")[0] for n in names])
        self.assertEqual([n for n in names if not n.endswith(".blob")], [])

    def test_text_is_read_with_the_checkpoints_tokenizer(self):
        # The test model's vocabulary is its bytes (no merges): token b is byte b.
        text = "Sequential calibration reads text with the checkpoint's tokenizer.\n" * 2
        by_text = self.solve(calibration_text=self.upload(text.encode()),
                             calibration_sequences=3, calibration_length=24)
        ids = np.frombuffer(text.encode()[:72], np.uint8).astype(np.int32).reshape(3, 24)
        by_ids = self.solve(calibration_tokens=self.upload(
            solverd.safetensors.save({"tokens": ids})))
        self.assertEqual(self.client.download_bytes(by_text.output_blob_id),
                         self.client.download_bytes(by_ids.output_blob_id))
        self.assertEqual(by_text.layers[0].tokens, 72)
        # Without counts: as many runs as the text holds of 512 tokens, or of
        # the model's context when shorter (128 here): one.
        default = self.solve(calibration_text=self.upload(text.encode()))
        self.assertEqual(default.layers[0].tokens, 128)

    def test_bad_requests_name_the_field(self):
        lone = self.upload(solverd.safetensors.save({"fc.weight": np.ones((8, 8), np.float32)}))
        cases = [
            (dict(model=lone, calibration_tokens=self.token_file), "needs a Llama-family"),
            (dict(model=self.model, calibration_tokens=self.upload(solverd.safetensors.save(
                {"tokens": np.array([[5, 300]], np.int32)}))),
             "entry 1 is 300, outside the vocabulary [0, 258)"),
            (dict(model=self.model, calibration_tokens=self.token_file,
                  calibration=self.token_file), "not both"),
        ]
        text_cases = [
            (dict(model=self.model, calibration_text=self.upload(b"ab" * 10),
                  calibration_sequences=3, calibration_length=8),
             "quant.calibration_text: the text is 20 tokens, fewer than 3 sequences of 8"),
            (dict(model=self.model, calibration_text=self.upload(b"\xff"),
                  calibration_length=8), "quant.calibration_text: invalid UTF-8 at byte 0"),
            (dict(model=self.model, calibration_tokens=self.token_file, calibration_length=8),
             "quant.calibration_length: applies to calibration_text only"),
            (dict(model=lone, calibration_text=self.token_file),
             "quant.calibration_text: needs a Llama-family"),
        ]
        for fields, message in text_cases:
            with self.subTest(message), self.assertRaises(grpc.RpcError) as caught:
                self.client.solve(quant.QuantProblem(method=quant.QUANT_METHOD_GPTQ, **fields))
            self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn(message, caught.exception.details())
        for fields, message in cases:
            with self.assertRaises(grpc.RpcError) as caught:
                self.client.solve(quant.QuantProblem(method=quant.QUANT_METHOD_GPTQ, **fields))
            self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("quant.calibration_tokens: ", caught.exception.details())
            self.assertIn(message, caught.exception.details())


class SequentialInMemory(Sequential):
    """The same with the Hessians held in memory (no output directory)."""

    FLAGS = ()

    def test_the_calibration_is_a_file_in_the_output_root(self):
        self.assertFalse(os.path.exists(os.path.join(self.tmp.name, "outputs")))


if __name__ == "__main__":
    unittest.main()
