"""solverd.aio.Client against a real server: solve, watch as an async
iterator, blobs both ways, jobs listing, and the typed errors (a bad
request, an unknown job, a cancelled job)."""
import asyncio
import os
import unittest

import numpy as np

import solverd
from server_fixture import ServerTestCase

ot = solverd.ot_pb2


class Aio(ServerTestCase):
    def run_async(self, body):
        async def main():
            async with solverd.aio.Client(self.server.address) as client:
                return await body(client)
        return asyncio.run(main())

    def test_solve_and_watch(self):
        cost = np.random.default_rng(1).random((40, 50))

        async def body(client):
            problem = ot.OtProblem(cost=solverd.tensor(cost), reg=0.05)
            result = await client.solve(problem)
            job = await client.submit(problem)
            events = [e async for e in client.watch(job.id)]
            listed = [j.id async for j in client.jobs()]
            return result, events, job.id, listed

        result, events, job_id, listed = self.run_async(body)
        with solverd.Client(self.server.address) as blocking:
            expected = blocking.solve(ot.OtProblem(cost=solverd.tensor(cost), reg=0.05))
        self.assertAlmostEqual(result.transport_cost, expected.transport_cost, places=12)
        self.assertEqual(events[-1].state.state, solverd.jobs_pb2.JOB_STATE_SUCCEEDED)
        self.assertEqual([e.number for e in events], sorted(e.number for e in events))
        self.assertIn(job_id, listed)

    def test_blobs_both_ways(self):
        data = np.random.default_rng(2).random((300, 7))

        async def body(client):
            tensor = await client.upload(data)
            raw = await client.download_bytes(tensor.blob_id)
            big = os.urandom(5 << 20)  # several chunks
            info = await client.upload_bytes(big)
            back = await client.download_bytes(info.blob_id)
            listed = [b.blob_id for b in await client.list_blobs()]
            await client.delete_blob(info.blob_id)
            left = [b.blob_id for b in await client.list_blobs()]
            return tensor, raw, big, back, info.blob_id, listed, left

        tensor, raw, big, back, blob_id, listed, left = self.run_async(body)
        self.assertEqual(list(tensor.shape), [300, 7])
        self.assertTrue(np.array_equal(np.frombuffer(raw, "<f8").reshape(300, 7), data))
        self.assertEqual(back, big)
        self.assertIn(blob_id, listed)
        self.assertNotIn(blob_id, left)

    def test_typed_errors(self):
        async def body(client):
            caught = {}
            try:
                await client.submit(ot.OtProblem(cost=solverd.tensor(np.ones((2, 2))), eta=-1))
            except solverd.InvalidArgument as e:
                caught["invalid"] = e.field
            try:
                await client.get("no-such-job")
            except solverd.NotFound as e:
                caught["not_found"] = e.code().name
            try:
                async for _ in client.watch("no-such-job"):
                    pass
            except solverd.NotFound:
                caught["watch"] = True
            job = await client.submit(ot.OtProblem(
                cost=solverd.tensor(np.random.default_rng(3).random((300, 300))), eta=2000,
                tolerance=1e-14, max_iterations=10_000_000, overrelaxation=1))
            await client.cancel(job.id)
            try:
                await client.wait(job.id)
            except solverd.JobCancelled as e:
                caught["cancelled"] = e.job.id == job.id
            return caught

        self.assertEqual(self.run_async(body), {"invalid": "ot.eta", "not_found": "NOT_FOUND",
                                                "watch": True, "cancelled": True})


if __name__ == "__main__":
    unittest.main()
