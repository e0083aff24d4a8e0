"""solverctl's task commands and demos against a real server, checked with
numpy, scipy and the package's readers: every demo succeeds; fir's taps
give the response the job reports; sor solve's x has a residual under the
tolerance; quantize writes each format (solverd, gptq folder, gguf) as
the server makes it; examples/quant_small.json's {"file": ...} references
are uploaded; help shows each command's flags and no build path."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np
import scipy.io
import scipy.sparse as sp

import solverd
from quant_checkpoint_test import llama_weights, write_checkpoint
from server_fixture import ServerTestCase

quant = solverd.quant_pb2


class Solverctl(ServerTestCase):
    def run_ctl(self, *args, ok=True):
        done = subprocess.run([os.environ["SOLVERCTL_BINARY"], f"--server={self.server.address}",
                               *args], capture_output=True, text=True, timeout=120)
        if ok:
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        return done

    def job_of(self, output):
        """The job id solverctl printed as it submitted."""
        line = next(l for l in output.splitlines() if l.startswith("submitted "))
        return line.split()[1]

    def test_every_demo_succeeds(self):
        for family in ("ot", "sor", "dmmv", "quant"):
            done = self.run_ctl("demo", family, "--n=60", "--side=8", "--systems=4")
            self.assertIn("SUCCEEDED", done.stdout, family)
            self.assertIn("result:", done.stdout, family)
        self.assertEqual(self.run_ctl("demo", "nope", ok=False).returncode, 2)

    def test_fir_taps_give_the_response_the_job_reports(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "taps.json")
            done = self.run_ctl("fir", "--order=30", "--bits=10", "--type=bandpass",
                                "--passband=0.3,0.5", "--stopband=0.1,0.7", f"--out={out}")
            with open(out) as f:
                taps = json.load(f)
        reported = self.client.get(self.job_of(done.stdout)).result.dmmv.fir
        self.assertEqual(taps["taps"], list(reported.taps))
        self.assertEqual(taps["max_error"], reported.max_error)
        h = np.array(taps["coefficients"])
        np.testing.assert_array_equal(h, np.array(taps["taps"]) * 2.0 ** -9)
        w = np.linspace(0, np.pi, 16384)
        amplitude = np.abs(np.exp(-1j * np.outer(w, np.arange(len(h)))) @ h)
        band = w / np.pi
        ripple = max(amplitude[(band <= 0.1) | (band >= 0.7)].max(),
                     np.abs(amplitude[(band >= 0.3) & (band <= 0.5)] - 1).max())
        self.assertAlmostEqual(ripple, reported.max_error, delta=1e-3)
        bad = self.run_ctl("fir", "--type=bandpass", "--passband=0.3", ok=False)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("--passband, --stopband", bad.stderr)

    def test_sor_solve_writes_x_under_the_tolerance(self):
        side = 12
        t = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(side, side))
        A = (sp.kron(sp.identity(side), t) + sp.kron(t, sp.identity(side))).tocsr()
        b = np.random.default_rng(4).random(side * side)
        with tempfile.TemporaryDirectory() as tmp:
            scipy.io.mmwrite(os.path.join(tmp, "A.mtx"), A)
            np.savetxt(os.path.join(tmp, "b.txt"), b)
            self.run_ctl("sor", "solve", os.path.join(tmp, "A.mtx"), os.path.join(tmp, "b.txt"),
                         "--tolerance=1e-10", f"--out={tmp}/x.txt")
            x = np.loadtxt(os.path.join(tmp, "x.txt"))
            np.savetxt(os.path.join(tmp, "B.txt"), np.stack([b, 2 * b]))
            two = self.run_ctl("sor", "solve", os.path.join(tmp, "A.mtx"),
                               os.path.join(tmp, "B.txt"), "--method=cg", "--tolerance=1e-10")
        self.assertLess(np.linalg.norm(A @ x - b) / np.linalg.norm(b), 1e-10)
        X = np.array([[float(v) for v in line.split()] for line in two.stdout.splitlines()
                      if line and line[0] in "-0123456789"])
        self.assertEqual(X.shape, (2, side * side))
        np.testing.assert_allclose(X[1], 2 * X[0], rtol=1e-8)

    def test_quantize_writes_each_format_as_the_server_makes_it(self):
        with tempfile.TemporaryDirectory() as tmp:
            folder = os.path.join(tmp, "llama")
            write_checkpoint(folder, llama_weights())
            single = os.path.join(tmp, "model.safetensors")  # llama.cpp's names need a
            solverd.safetensors.write(single, llama_weights())  # tokenizer.json in a folder
            for fmt, model, more in (("solverd", folder, ("--bits=4", "--group-size=16")),
                                     ("gguf", single, ("--symmetric", "--group-size=32"))):
                out = os.path.join(tmp, f"q.{fmt}")
                done = self.run_ctl("quantize", model, f"--format={fmt}", f"--out={out}",
                                    "--method=rtn", *more)
                result = self.client.get(self.job_of(done.stdout)).result.quant
                with open(out, "rb") as f:
                    self.assertEqual(f.read(), self.client.download_bytes(result.output_blob_id))
                self.assertIn("upload", done.stderr)  # progress on stderr, not a TTY
            tensors = solverd.safetensors.dequantize(open(os.path.join(tmp, "q.solverd"),
                                                          "rb").read())
            self.assertIn("model.layers.0.mlp.up_proj.weight", tensors)
            gguf, _ = solverd.gguf.load(open(os.path.join(tmp, "q.gguf"), "rb").read())
            self.assertTrue(gguf)
            out = os.path.join(tmp, "q-gptq")
            done = self.run_ctl("quantize", folder, "--format=gptq", f"--out={out}", "--bits=4",
                                "--group-size=16", "--symmetric")
            result = self.client.get(self.job_of(done.stdout)).result.quant
            self.assertEqual(sorted(os.listdir(out)), sorted(result.output_files))
            with open(os.path.join(out, "config.json")) as f:
                self.assertEqual(json.load(f)["quantization_config"]["bits"], 4)
            names = set()
            for shard in [f for f in os.listdir(out) if f.endswith(".safetensors")]:
                with open(os.path.join(out, shard), "rb") as f:  # each reads back
                    names |= set(solverd.safetensors.load(f.read())[0])
            self.assertIn("model.layers.0.mlp.up_proj.qweight", names)
            self.assertFalse(os.path.exists(out + ".tar"))
            bad = self.run_ctl("quantize", folder, "--method=best", ok=False)
            self.assertIn("--method: one of", bad.stderr)

    def test_the_quant_example_uploads_the_files_it_names(self):
        examples = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "examples")
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["/usr/bin/python3", os.path.join(examples, "make_quant_small.py"),
                            tmp], check=True, capture_output=True)
            shutil.copy(os.path.join(examples, "quant_small.json"), tmp)
            done = self.run_ctl("submit", os.path.join(tmp, "quant_small.json"), "--watch")
        self.assertIn("upload", done.stderr)
        result = self.client.get(self.job_of(done.stdout)).result.quant
        self.assertEqual([l.name for l in result.layers],
                         [f"layers.{k}.weight" for k in range(3)])
        self.assertTrue(all(l.tokens == 256 for l in result.layers))  # the calibration file's

    def test_help_shows_each_commands_flags_and_no_build_path(self):
        overview = self.run_ctl("--help").stdout
        for command in ("demo", "submit", "blob", "fir", "sor solve", "quantize"):
            self.assertIn(f"solverctl {command}", overview)
        fir = self.run_ctl("fir", "--help").stdout
        self.assertIn("--passband", fir)
        self.assertNotIn("--calibration", fir)
        self.assertIn("--calibration", self.run_ctl("quantize", "--help").stdout)
        build = os.path.dirname(os.path.dirname(os.environ["SOLVERCTL_BINARY"]))
        source = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        for text in (overview, fir):
            self.assertNotIn(build, text)
            self.assertNotIn(source, text)
            self.assertNotIn(".cc", text)
        version = self.run_ctl("--version").stdout.strip()
        self.assertEqual(version, f"solverctl {solverd.__version__}")


if __name__ == "__main__":
    unittest.main()
