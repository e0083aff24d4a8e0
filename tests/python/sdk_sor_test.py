"""solverd.sor against scipy's spsolve on a real server: one and several
right-hand sides, CSR arrays, a tuner learning omega across systems, and
errors."""
import os
import unittest

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import solverd
import solverd.sor
from server_fixture import ServerTestCase


def poisson(side):
    """The 2-D Laplacian on a side x side grid (symmetric positive definite)."""
    t = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(side, side))
    return (sp.kron(sp.identity(side), t) + sp.kron(t, sp.identity(side))).tocsr()


class Sor(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.A = poisson(20)
        cls.rng = np.random.default_rng(7)

    def close_to(self, x, expected):
        return np.linalg.norm(x - expected) / np.linalg.norm(expected)

    def test_one_and_several_right_hand_sides_match_spsolve(self):
        b = self.rng.random(400)
        s = solverd.sor.solve(self.A, b, omega=1.3, tol=1e-11, client=self.client)
        self.assertTrue(s.converged)
        self.assertLess(self.close_to(s.x, spla.spsolve(self.A, b)), 1e-8)
        self.assertEqual(s.omega, 1.3)
        B = self.rng.random((3, 400))
        many = solverd.sor.solve(self.A, B, tol=1e-11, client=self.client)
        self.assertEqual(many.x.shape, (3, 400))
        for k in range(3):
            self.assertLess(self.close_to(many.x[k], spla.spsolve(self.A, B[k])), 1e-8)
        self.assertEqual(len(many.iterations), 3)

    def test_csr_arrays_and_plain_sor(self):
        A = self.A + 2 * sp.identity(400, format="csr")  # diagonally dominant
        b = self.rng.random(400)
        s = solverd.sor.solve((A.indptr, A.indices, A.data), b, method="sor", omega=1.1,
                              tol=1e-10, client=self.client)
        self.assertLess(self.close_to(s.x, spla.spsolve(A, b)), 1e-7)

    def test_a_tuner_learns_across_systems(self):
        tuner = solverd.sor.Tuner("sdk-heat", "tsallis-inf", client=self.client, seed=3)
        grid = set(np.round(np.linspace(1, 1.95, 20), 12))
        for shift in range(5):
            A = self.A + 0.1 * shift * sp.identity(400, format="csr")
            s = solverd.sor.solve(A, np.ones(400), tuner=tuner, tol=1e-9, client=self.client)
            self.assertTrue(s.converged)
            self.assertIn(round(s.omega, 12), grid)
        self.assertEqual(tuner.state.systems, 5)
        self.assertEqual(tuner.refresh(client=self.client).systems, 5)

    def test_raw_solutions_are_the_values_as_bytes(self):
        b = self.rng.random(400)
        system = solverd.sor_pb2.LinearSystem(a=solverd.csr_matrix(self.A.indptr, self.A.indices,
                                                                   self.A.data),
                                              b=solverd.tensor(b))
        results = [self.client.solve(solverd.sor_pb2.SorSequence(
            systems=[system], omega=1.4, raw_solutions=raw)).solves[0] for raw in (False, True)]
        self.assertEqual(len(results[0].x_raw), 0)
        self.assertEqual(len(results[1].x), 0)
        np.testing.assert_array_equal(np.frombuffer(results[1].x_raw, "<f8"),
                                      np.asarray(results[0].x))

    def test_bad_arguments_say_what(self):
        with self.assertRaisesRegex(ValueError, "A must be square"):
            solverd.sor.solve(sp.random(3, 4, format="csr"), np.ones(3), client=self.client)
        with self.assertRaisesRegex(ValueError, "omega or tuner, not both"):
            solverd.sor.solve(self.A, np.ones(400), omega=1.2, tuner="x", client=self.client)
        with self.assertRaises(solverd.InvalidArgument) as caught:
            solverd.sor.solve(self.A, np.ones(399), client=self.client)
        self.assertTrue(caught.exception.field.startswith("sor."), caught.exception.field)


if __name__ == "__main__":
    unittest.main()
