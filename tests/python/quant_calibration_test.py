#!/usr/bin/python3
"""solverd.quant.capture_calibration on the Llama-architecture test model
(bench/quant/llama_lm.py, random weights): the Hessians it writes are X^T X
of the activations its hooks saw, layers that read one input share one
brace-named entry, the sample rows are rows of X; and the server's GPTQ
from that file gives what it gives from the activations themselves.

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
from server_fixture import Server

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


class ServerGptq(unittest.TestCase):
    """GPTQ on the server from the captured Hessians against the inputs."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.addClassCleanup(cls.tmp.cleanup)
        cls.server = Server(os.environ["SOLVERD_BINARY"], cls.tmp.name)
        cls.addClassCleanup(cls.server.stop)
        cls.client = solverd.Client(cls.server.address)
        cls.addClassCleanup(cls.client.close)
        model = small_model()
        weights = {n: t.detach().numpy() for n, t in model.state_dict().items()}
        cls.model = cls.upload(solverd.safetensors.save(weights))
        cls.inputs = cls.upload(solverd.safetensors.save(
            lm.linear_inputs(small_model(), torch.cat(batches()))))
        path = os.path.join(cls.tmp.name, "h.safetensors")
        solverd.quant.capture_calibration(model, batches(), path, progress=False)
        with open(path, "rb") as f:
            cls.hessians = cls.upload(f.read())

    @classmethod
    def upload(cls, data):
        return quant.QuantFile(blob_id=cls.client.upload_bytes(data).blob_id)

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


if __name__ == "__main__":
    unittest.main()
