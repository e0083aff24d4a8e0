"""solverd.quant.quantize on a real server: a safetensors file streamed up
and the quantized file down (read back and compared with the source), and
a checkpoint folder quantized by GPTQ from calibration text into a GPTQ
checkpoint folder; bad arguments say what."""
import json
import os
import sys
import unittest

import numpy as np
import torch

import solverd
from server_fixture import ServerTestCase

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "bench", "quant"))
import llama_lm  # noqa: E402


class Quantize(ServerTestCase):
    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def test_a_file_up_and_its_quantized_file_down(self):
        rng = np.random.default_rng(1)
        weights = {"fc1.weight": rng.standard_normal((64, 256)).astype(np.float32),
                   "fc2.weight": rng.standard_normal((32, 64)).astype(np.float32)}
        with open(self.path("model.safetensors"), "wb") as f:
            f.write(solverd.safetensors.save(weights))
        q = solverd.quant.quantize(self.path("model.safetensors"), method="rtn", bits=4,
                                   group_size=64, out=self.path("q4.safetensors"),
                                   client=self.client, progress=False)
        self.assertEqual(os.path.getsize(q.path), q.bytes)
        self.assertEqual([layer.name for layer in q.layers], ["fc1.weight", "fc2.weight"])
        with open(q.path, "rb") as f:
            back = solverd.safetensors.dequantize(f.read())
        for name, w in weights.items():  # 4-bit RTN: within half a step of the group's range
            step = (w.max() - w.min()) / 15
            self.assertLess(np.abs(back[name] - w).max(), step, name)
        self.assertGreater(q.average_bits, 4)
        self.assertEqual(self.client.get(q.job_id).state, solverd.jobs_pb2.JOB_STATE_SUCCEEDED)

    def test_a_checkpoint_by_gptq_from_text_into_a_gptq_folder(self):
        torch.manual_seed(7)
        weights = {n: t.detach().numpy() for n, t in llama_lm.LlamaLM().state_dict().items()}
        llama_lm.save_checkpoint(weights, self.path("llama"), {"format": "pt"})
        text = "Calibration from text goes through the checkpoint's own tokenizer. " * 8
        q = solverd.quant.quantize(self.path("llama"), method="gptq", bits=4, format="gptq",
                                   calibration_text=text, calibration_length=64,
                                   out=self.path("llama-gptq"), client=self.client,
                                   progress=False)
        files = sorted(os.listdir(q.path))
        self.assertIn("config.json", files)
        self.assertTrue(any(f.endswith(".safetensors") for f in files), files)
        with open(os.path.join(q.path, "config.json")) as f:
            self.assertEqual(json.load(f)["quantization_config"]["bits"], 4)
        self.assertTrue(q.result.calibration_blob_id)
        self.assertEqual(q.layers[0].tokens, 64 * (len(text) // 64))

    def test_bad_arguments_say_what(self):
        with self.assertRaisesRegex(ValueError, "method must be one of"):
            solverd.quant.quantize("x.safetensors", method="awq", client=self.client)
        with self.assertRaises(FileNotFoundError):
            solverd.quant.quantize(self.path("missing.safetensors"), client=self.client,
                                   progress=False)


if __name__ == "__main__":
    unittest.main()
