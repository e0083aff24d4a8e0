"""solverd.aio.Client: the job and blob calls of solverd.Client on asyncio
(grpc.aio), raising the same typed errors.

    async with solverd.aio.Client("127.0.0.1:50051") as client:
        result = await client.solve(problem)
        async for event in client.watch(job.id):
            ...
"""
import asyncio
from typing import AsyncIterator, Optional

import grpc
import numpy as np

from solverd.client import (Problem, Result, TERMINAL_STATES, _WATCH_DROPPED, _channel_options,
                            blob_tensor, fold_event, job_spec, joined_chunks, little_endian,
                            result_of, upload_chunks)
from solverd.errors import job_error, raises_typed_async, typed_methods
from solverd.v1 import common_pb2, jobs_pb2, jobs_pb2_grpc

_RECONNECTS = 5  # a dropped watch stream, as the blocking client


@typed_methods(raises_typed_async)
class Client:
    """An asyncio connection to solverd; arguments as solverd.Client's."""

    def __init__(self, target: str = "127.0.0.1:50051", *, timeout: float = 30.0,
                 token: Optional[str] = None, root_certificates: Optional[bytes] = None,
                 private_key: Optional[bytes] = None, certificate_chain: Optional[bytes] = None):
        options = _channel_options(target)
        if root_certificates is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates, private_key,
                                                       certificate_chain)
            self._channel = grpc.aio.secure_channel(target, credentials, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        self._stub = jobs_pb2_grpc.SolverServiceStub(self._channel)
        self._timeout = timeout
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None

    def _call(self, method, request):
        return getattr(self._stub, method)(request, metadata=self._metadata,
                                           timeout=self._timeout)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def submit(self, problem: Problem, **submit_args) -> jobs_pb2.Job:
        """As solverd.Client.submit."""
        spec = job_spec(problem, **submit_args)
        return await self._call("SubmitJob", jobs_pb2.SubmitJobRequest(spec=spec))

    async def watch(self, job_id: str, from_event: int = 0,
                    timeout: Optional[float] = None) -> AsyncIterator[jobs_pb2.JobEvent]:
        """The job's events until its terminal state, reconnecting from the
        next number when the stream drops (UNAVAILABLE or CANCELLED, as
        solverd.Client.watch)."""
        next_event, failures = from_event, 0
        while True:
            request = jobs_pb2.WatchJobRequest(job_id=job_id, from_event=next_event)
            try:
                async for event in self._stub.WatchJob(request, metadata=self._metadata,
                                                       timeout=timeout):
                    next_event, failures = event.number + 1, 0
                    yield event
                    if event.HasField("state") and event.state.state in TERMINAL_STATES:
                        return
                return
            except grpc.RpcError as e:
                failures += 1
                if e.code() not in _WATCH_DROPPED or failures > _RECONNECTS:
                    raise
                await asyncio.sleep(0.1 * 2 ** failures)

    async def get(self, job_id: str) -> jobs_pb2.Job:
        return await self._call("GetJob", jobs_pb2.GetJobRequest(job_id=job_id))

    async def cancel(self, job_id: str) -> jobs_pb2.Job:
        return await self._call("CancelJob", jobs_pb2.CancelJobRequest(job_id=job_id))

    async def wait(self, job_id: str, timeout: Optional[float] = None) -> jobs_pb2.Job:
        """The final Job, or JobFailed / JobCancelled."""
        async for _ in self.watch(job_id, timeout=timeout):
            pass
        job = await self.get(job_id)
        if job.state != jobs_pb2.JOB_STATE_SUCCEEDED:
            raise job_error(job)
        return job

    async def result(self, job_id: str, timeout: Optional[float] = None) -> Result:
        return result_of(await self.wait(job_id, timeout=timeout))

    async def solve(self, problem: Problem, *, timeout: Optional[float] = None,
                    **submit_args) -> Result:
        job = await self.submit(problem, **submit_args)
        final = jobs_pb2.Job()
        final.CopyFrom(job)
        async for event in self.watch(job.id, timeout=timeout):
            fold_event(final, event)
        if final.state not in TERMINAL_STATES:  # the stream ended early: ask
            final = await self.get(job.id)
        if final.state != jobs_pb2.JOB_STATE_SUCCEEDED:
            raise job_error(final)
        return result_of(final)

    async def jobs(self, state: int = jobs_pb2.JOB_STATE_UNSPECIFIED,
                   family: str = "") -> AsyncIterator[jobs_pb2.Job]:
        token = ""
        while True:
            page = await self._call("ListJobs", jobs_pb2.ListJobsRequest(
                state=state, family=family, page_token=token))
            for job in page.jobs:
                yield job
            token = page.next_page_token
            if not token:
                return

    async def upload_bytes(self, data) -> jobs_pb2.BlobInfo:
        return await self._call("UploadBlob", upload_chunks(data))

    async def list_blobs(self) -> list:
        return list((await self._call("ListBlobs", jobs_pb2.ListBlobsRequest())).blobs)

    async def delete_blob(self, blob_id: str) -> None:
        await self._call("DeleteBlob", jobs_pb2.DeleteBlobRequest(blob_id=blob_id))

    async def download_bytes(self, blob_id: str) -> bytes:
        request = jobs_pb2.DownloadBlobRequest(blob_id=blob_id)
        return joined_chunks(blob_id, [c async for c in self._call("DownloadBlob", request)])

    async def upload(self, values, dtype=np.float64) -> common_pb2.Tensor:
        """An array as a blob-backed Tensor, as solverd.Client.upload."""
        data = little_endian(values, dtype)
        return blob_tensor(data, (await self.upload_bytes(data)).blob_id)
