"""solverd.dmmv on a real server: a tiny problem against brute force over
every assignment, several instances with weights and per-variable levels,
a scipy.sparse X against the same dense one, a FIR filter's reported
response against its taps' response computed here, tomography's image
against the projector here (project()), and errors."""
import itertools
import unittest

import numpy as np
import scipy.sparse as sp

import solverd
import solverd.dmmv
from server_fixture import ServerTestCase


def brute_force(X, b, levels, weights=None):
    """The smallest max weighted violation over every assignment."""
    weights = np.ones(len(b)) if weights is None else weights
    best = np.inf
    for v in itertools.product(*levels):
        best = min(best, float(np.max(weights * np.abs(X @ np.array(v) - b))))
    return best


def violation(X, values, b, weights=None):
    weights = np.ones(len(b)) if weights is None else weights
    return float(np.max(weights * np.abs(X @ values - b)))


class Dmmv(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.rng = np.random.default_rng(11)

    def test_a_tiny_problem_reaches_the_brute_force_optimum(self):
        X = self.rng.normal(size=(6, 4))
        b = X @ self.rng.normal(size=4)  # not on the levels
        levels = np.linspace(-1, 1, 5)
        s = solverd.dmmv.solve(X, b, levels, seed=2, client=self.client)
        self.assertAlmostEqual(s.max_violation, brute_force(X, b, [levels] * 4), delta=1e-12)
        self.assertAlmostEqual(s.max_violation, violation(X, s.values, b), delta=1e-12)
        np.testing.assert_array_equal(levels[s.level_indices], s.values)
        self.assertLessEqual(s.max_violation, s.start_max_violation)
        self.assertTrue(s.job_id)

    def test_instances_weights_and_per_variable_levels(self):
        X = self.rng.normal(size=(5, 3))
        B = self.rng.normal(size=(2, 5))
        W = self.rng.random((2, 5)) + 0.5
        levels = [np.array([-1.0, 0.0, 1.0]), np.array([-0.5, 0.5]),
                  solverd.dmmv.uniform(-1, 0.5, 5)]
        grids = [levels[0], levels[1], -1 + 0.5 * np.arange(5)]
        s = solverd.dmmv.solve(X, B, levels, weights=W, client=self.client)
        self.assertEqual(s.values.shape, (2, 3))
        for k in range(2):
            self.assertAlmostEqual(s.max_violation[k], brute_force(X, B[k], grids, W[k]),
                                   delta=1e-12)
            self.assertAlmostEqual(s.max_violation[k], violation(X, s.values[k], B[k], W[k]),
                                   delta=1e-12)
            for j in range(3):
                self.assertIn(s.values[k][j], grids[j])

    def test_largest_over_instances_then_a_polish_within_its_t(self):
        rng = np.random.default_rng(11)  # the shared stream feeds the tests after this one
        X = rng.normal(size=(30, 6))
        W = rng.uniform(-1, 1, size=(3, 6))
        B = W @ X.T
        B[0] += 2.0  # instance 0 decides the largest t
        levels = np.linspace(-1, 1, 9)
        s = solverd.dmmv.solve(X, B, levels, start=W, largest_over_instances=True,
                               max_rounds=20, client=self.client)
        self.assertLess(s.max_violation[0], s.start_max_violation[0])
        self.assertEqual(list(s.moves[1:]), [0, 0])  # never near the largest
        cap = s.max_violation[0]
        p = solverd.dmmv.solve(X, B[0], levels, start=s.values[0], violation_cap=cap,
                               max_rounds=20, client=self.client)
        self.assertLessEqual(p.max_violation, cap + 1e-12)
        self.assertLessEqual(p.l2, s.l2[0])
        self.assertAlmostEqual(p.max_violation, violation(X, p.values, B[0]), delta=1e-12)

    def test_sparse_x_gives_the_dense_answer(self):
        dense = sp.random(40, 25, density=0.2, random_state=3, format="csr")
        b = dense @ self.rng.integers(-3, 4, size=25).astype(float)
        levels = solverd.dmmv.uniform(-3, 1, 7)
        args = dict(seed=5, max_rounds=50, client=self.client)
        from_sparse = solverd.dmmv.solve(dense.tocoo(), b, levels, **args)
        from_dense = solverd.dmmv.solve(dense.toarray(), b, levels, **args)
        self.assertAlmostEqual(from_sparse.max_violation,
                               violation(dense.toarray(), from_sparse.values, b), delta=1e-12)
        self.assertAlmostEqual(from_sparse.max_violation, from_dense.max_violation, delta=1e-12)
        # Past the request's room a sparse X goes as a blob of its DmmvCsr.
        uploads = []
        upload = self.client.upload_bytes
        self.client.upload_bytes = lambda data: uploads.append(len(data)) or upload(data)
        limit, solverd.calls.INLINE_BYTES = solverd.calls.INLINE_BYTES, 1000
        try:
            from_blob = solverd.dmmv.solve(dense.tocoo(), b, levels, **args)
        finally:
            solverd.calls.INLINE_BYTES = limit
            del self.client.upload_bytes
        self.assertEqual(len(uploads), 1)
        self.assertGreater(uploads[0], 1000)
        np.testing.assert_array_equal(from_blob.values, from_sparse.values)
        np.testing.assert_array_equal(from_blob.level_indices, from_sparse.level_indices)

    def test_a_fir_filters_response_is_what_it_reports(self):
        f = solverd.dmmv.fir(24, [0.1, 0.3, 0.5, 0.7], bits=10, btype="bandpass", seed=4,
                             client=self.client)
        self.assertEqual(f.taps.shape, (25,))
        np.testing.assert_array_equal(f.taps, f.taps[::-1])  # linear phase
        np.testing.assert_array_equal(f.taps, f.integer_taps * 2.0 ** -9)
        self.assertLess(np.abs(f.integer_taps).max(), 2 ** 9 + 1)
        w = np.linspace(0, np.pi, 16384)
        amplitude = np.abs(np.exp(-1j * np.outer(w, np.arange(25))) @ f.taps)
        band = w / np.pi
        stop = amplitude[(band <= 0.1) | (band >= 0.7)].max()
        passing = np.abs(amplitude[(band >= 0.3) & (band <= 0.5)] - 1).max()
        self.assertAlmostEqual(f.stopband_peak, stop, delta=1e-3)
        self.assertAlmostEqual(f.passband_deviation, passing, delta=1e-3)
        self.assertEqual(f.max_error, max(f.stopband_peak, f.passband_deviation))
        self.assertLessEqual(f.max_error, f.start_max_error)

    def test_tomography_matches_the_projector_here(self):
        size, levels = 12, [0.0, 0.5, 1.0]
        rows, cols = np.mgrid[:size, :size]
        phantom = np.where((rows - 5.5) ** 2 + (cols - 5.5) ** 2 < 25, 0.5, 0.0)
        phantom[4:7, 3:6] = 1.0
        sinogram = solverd.dmmv.project(phantom, angles=8)
        sinogram += self.rng.uniform(-0.2, 0.2, size=sinogram.shape)  # bounded noise
        r = solverd.dmmv.tomography(sinogram, size, levels, seed=3, client=self.client)
        self.assertEqual(r.image.shape, (size, size))
        self.assertTrue(np.isin(r.image, levels).all())
        residual = np.abs(solverd.dmmv.project(r.image, 8) - sinogram).max()
        self.assertAlmostEqual(r.max_violation, residual, delta=1e-9)
        grey = np.asarray(levels)
        rounded = grey[np.abs(r.start_image[..., None] - grey).argmin(axis=-1)]
        start_residual = np.abs(solverd.dmmv.project(rounded, 8) - sinogram).max()
        self.assertAlmostEqual(r.start_max_violation, start_residual, delta=1e-9)
        self.assertLessEqual(r.max_violation, r.start_max_violation)
        self.assertGreater(r.max_violation, 0.05)  # the noise leaves a residual to check

    def test_tomography_under_stated_noise_is_the_regularized_fit(self):
        size, levels, bound, smoothness = 12, [0.0, 1.0, 2.0], 0.3, 1.5
        rows, cols = np.mgrid[:size, :size]
        phantom = np.where((rows - 5.5) ** 2 + (cols - 5.5) ** 2 < 25, 1.0, 0.0)
        phantom[4:7, 3:6] = 2.0
        sinogram = solverd.dmmv.project(phantom, angles=10)
        sinogram += self.rng.uniform(-bound, bound, size=sinogram.shape)
        r = solverd.dmmv.tomography(sinogram, size, levels, noise_bound=bound,
                                    smoothness=smoothness, reweight_rounds=-1, seed=3,
                                    client=self.client)
        self.assertTrue(np.isin(r.image, levels).all())
        residual = solverd.dmmv.project(r.image, 10) - sinogram
        self.assertAlmostEqual(r.max_violation, np.abs(residual).max(), delta=1e-9)
        # l2 is the objective's: rays over sigma sqrt 2, jumps over the level range.
        sigma = bound / np.sqrt(3)
        jumps = np.concatenate([np.diff(r.image, axis=0).ravel(), np.diff(r.image, axis=1).ravel()])
        objective = ((residual ** 2).sum() / (2 * sigma ** 2)
                     + smoothness * ((jumps / 2.0) ** 2).sum())
        self.assertAlmostEqual(r.l2 ** 2, objective, delta=1e-6 * objective)
        truth_jumps = np.concatenate([np.diff(phantom, axis=0).ravel(),
                                      np.diff(phantom, axis=1).ravel()])
        truth_residual = solverd.dmmv.project(phantom, 10) - sinogram
        truth_objective = ((truth_residual ** 2).sum() / (2 * sigma ** 2)
                           + smoothness * ((truth_jumps / 2.0) ** 2).sum())
        self.assertLessEqual(r.l2 ** 2, truth_objective * (1 + 1e-9))  # the search found as good
        # Reweighted (the default): the l2 is of the last weights, from an
        # image the squared fit alone would give; it is still on the levels.
        again = solverd.dmmv.tomography(sinogram, size, levels, noise_bound=bound,
                                        smoothness=smoothness, seed=3, client=self.client)
        self.assertTrue(np.isin(again.image, levels).all())
        self.assertLessEqual(np.abs(again.image - phantom).sum(), np.abs(r.image - phantom).sum())

    def test_bad_arguments_say_what(self):
        X = np.eye(3)
        with self.assertRaises(solverd.InvalidArgument) as caught:
            solverd.dmmv.solve(X, np.ones(3), [1.0, 0.0], client=self.client)
        self.assertTrue(caught.exception.field.startswith("dmmv.direct.instances[0].levels[0]"),
                        caught.exception.field)
        with self.assertRaises(solverd.InvalidArgument) as caught:
            solverd.dmmv.solve(X, np.ones(4), [0.0, 1.0], client=self.client)
        self.assertTrue(caught.exception.field.startswith("dmmv.direct"), caught.exception.field)
        with self.assertRaises(solverd.InvalidArgument) as caught:
            solverd.dmmv.fir(23, [0.3, 0.5], client=self.client)
        self.assertEqual(caught.exception.field, "dmmv.fir.order")
        with self.assertRaisesRegex(ValueError, "btype must be one of"):
            solverd.dmmv.fir(20, [0.3, 0.5], btype="notch", client=self.client)
        with self.assertRaisesRegex(ValueError, r"weights must be \[N\] or \[1, N\]"):
            solverd.dmmv.solve(X, np.ones(3), [0.0, 1.0], weights=np.ones((2, 3)),
                               client=self.client)


if __name__ == "__main__":
    unittest.main()
