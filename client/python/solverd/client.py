"""solverd.Client: the SolverService calls with Python types.

Errors the server returns surface as typed errors (errors.py:
InvalidArgument with .field and .reason, NotFound, ResourceExhausted, ...,
all solverd.Error and grpc.RpcError) from the call that caused them; a job
that fails or is cancelled after it was accepted raises JobFailed or
JobCancelled from wait(), result() and solve().
"""
import hashlib
import os
import time
from typing import Iterator, Optional, Union

import grpc
import numpy as np

from solverd import files
from solverd.errors import job_error, raises_typed, typed_methods
from solverd.tensors import _DTYPES
from solverd.v1 import (common_pb2, dmmv_pb2, jobs_pb2, jobs_pb2_grpc, ot_pb2, quant_pb2,
                        sor_pb2)

# What submit() takes, and what result() gives back, by family.
Problem = Union[ot_pb2.OtProblem, ot_pb2.OtBatch, sor_pb2.SorSequence, dmmv_pb2.DmmvProblem,
                quant_pb2.QuantProblem, jobs_pb2.JobSpec]
Result = Union[ot_pb2.OtResult, ot_pb2.OtBatchResult, sor_pb2.SorSequenceResult,
               dmmv_pb2.DmmvResult, quant_pb2.QuantResult]

TERMINAL_STATES = frozenset(
    [jobs_pb2.JOB_STATE_SUCCEEDED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED])

# Reconnections of a dropped WatchJob stream without an event in between.
_RECONNECTS = 5
# How a watch stream that a replica dropped ends (see Client.watch).
_WATCH_DROPPED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)

# Blob chunks stay well under gRPC's 4 MiB message limit.
_CHUNK_BYTES = files.CHUNK_BYTES

# JobSpec's field for each problem message, read from the proto itself so
# that a new family's problem type needs no line here.
_SPEC_FIELDS = {field.message_type.full_name: field.name
                for field in jobs_pb2.JobSpec.DESCRIPTOR.oneofs_by_name["problem"].fields}

_DEVICES = {None: jobs_pb2.DEVICE_ANY, "any": jobs_pb2.DEVICE_ANY,
            "cpu": jobs_pb2.DEVICE_CPU, "cuda": jobs_pb2.DEVICE_CUDA}


def _channel_options(target: str):
    """Targets that name several servers (dns:///a-headless-service:50051,
    ipv4:10.0.0.1:50051,10.0.0.2:50051) spread calls over all of them with
    round_robin: any replica on a shared store serves any job, and a watch
    whose replica went away resumes on another."""
    if target.startswith(("dns:", "ipv4:", "ipv6:")):
        return [("grpc.lb_policy_name", "round_robin")]
    return []


def job_spec(problem: Problem, *, priority: int = 0, deadline: Optional[float] = None,
             idempotency_key: str = "", device: Optional[str] = None,
             labels=None) -> jobs_pb2.JobSpec:
    """The JobSpec of a family's problem (a JobSpec is taken as it is)."""
    if isinstance(problem, jobs_pb2.JobSpec):
        return problem
    descriptor = getattr(problem, "DESCRIPTOR", None)
    field = _SPEC_FIELDS.get(getattr(descriptor, "full_name", None))
    if field is None:
        raise TypeError(f"cannot submit a {type(problem).__name__}")
    spec = jobs_pb2.JobSpec(priority=priority, idempotency_key=idempotency_key,
                            device=_DEVICES[device], labels=labels or {})
    getattr(spec, field).CopyFrom(problem)
    if deadline is not None:
        spec.deadline.FromNanoseconds(int(deadline * 1e9))
    return spec


def upload_chunks(data) -> Iterator[jobs_pb2.BlobChunk]:
    """`data` (bytes, or any buffer such as a contiguous numpy array) as
    UploadBlob chunks, hashed as they go, the SHA-256 with the last. An
    array is read in place: a whole copy of a large one would cost more in
    fresh pages than its upload."""
    view = memoryview(data).cast("B")
    hasher = hashlib.sha256()
    last = max(len(view) - 1, 0) // _CHUNK_BYTES * _CHUNK_BYTES
    for k in range(0, last + 1, _CHUNK_BYTES):
        piece = bytes(view[k:k + _CHUNK_BYTES])
        hasher.update(piece)
        yield jobs_pb2.BlobChunk(data=piece, offset=k,
                                 sha256=hasher.digest() if k == last else b"")


def joined_chunks(blob_id: str, chunks) -> bytes:
    """A downloaded blob's bytes, checked against the SHA-256 sent with them."""
    data = b"".join(c.data for c in chunks)
    expected = chunks[0].sha256 if chunks else b""
    if expected and hashlib.sha256(data).digest() != expected:
        raise IOError(f"blob {blob_id}: the downloaded bytes do not match their SHA-256")
    return data


def little_endian(values, dtype) -> np.ndarray:
    """`values` as a contiguous little-endian array of `dtype`."""
    return np.ascontiguousarray(values, dtype=np.dtype(dtype).newbyteorder("<"))


def blob_tensor(data: np.ndarray, blob_id: str) -> common_pb2.Tensor:
    """A Tensor naming the blob that holds `data`'s bytes."""
    return common_pb2.Tensor(shape=list(data.shape), blob_id=blob_id,
                             dtype=_DTYPES[data.dtype.newbyteorder("=")])


def result_of(job: jobs_pb2.Job) -> Result:
    """The family result a succeeded job holds."""
    return getattr(job.result, job.result.WhichOneof("result"))


def fold_event(job: jobs_pb2.Job, event: jobs_pb2.JobEvent) -> None:
    """Brings `job` up to date with one of its events, so that the events
    through the terminal one leave it as GetJob would return it: a call
    needs no GetJob after its stream (a round trip, a millisecond or two
    of a mid-size solve on loopback)."""
    job.event_count = event.number + 1
    if event.HasField("result"):
        job.result.CopyFrom(event.result)
    if not event.HasField("state"):
        return
    change = event.state
    job.state = change.state
    if change.device:
        job.device = change.device
    if change.state == jobs_pb2.JOB_STATE_RUNNING:  # a run starts: Job.attempt counts them
        job.attempt += 1
        job.start_time.CopyFrom(event.time)
    elif change.state in TERMINAL_STATES:
        job.error_code = change.error_code
        job.error_message = change.error_message
        job.finish_time.CopyFrom(event.time)


@typed_methods(raises_typed)
class Client:
    """A connection to solverd: one server ("host:port"), or replicas on a
    shared store named together ("dns:///solverd-headless:50051", or
    "ipv4:host1:port,host2:port"), over which calls are balanced
    round-robin. `timeout` (seconds) bounds each unary call; streams are
    bounded by the `timeout` given to the call.

    Secured servers: `root_certificates` (PEM bytes of the CA that signed
    the server's certificate) connects over TLS, with `private_key` and
    `certificate_chain` for mutual TLS; `token` is sent as
    `authorization: Bearer <token>` with every call."""

    def __init__(self, target: str = "127.0.0.1:50051", *,
                 channel: Optional[grpc.Channel] = None, timeout: float = 30.0,
                 token: Optional[str] = None, root_certificates: Optional[bytes] = None,
                 private_key: Optional[bytes] = None, certificate_chain: Optional[bytes] = None):
        options = _channel_options(target)
        if channel is None and root_certificates is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates, private_key,
                                                       certificate_chain)
            channel = grpc.secure_channel(target, credentials, options=options)
        self._channel = channel or grpc.insecure_channel(target, options=options)
        self._stub = jobs_pb2_grpc.SolverServiceStub(self._channel)
        self._timeout = timeout
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None

    def _unary(self, method, request):
        """Calls `method` (unary response, or a stream for DownloadBlob) with
        the token and the unary timeout."""
        return getattr(self._stub, method)(request, metadata=self._metadata,
                                           timeout=self._timeout)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc):
        self.close()

    # --- jobs ---

    def submit(self, problem: Problem, *, priority: int = 0, deadline: Optional[float] = None,
               idempotency_key: str = "", device: Optional[str] = None,
               labels=None):
        """Queues `problem` (an OtProblem, OtBatch, SorSequence, DmmvProblem,
        QuantProblem or a whole
        JobSpec) and returns the Job. deadline: seconds from now; device:
        "cpu", "cuda" or None for any."""
        spec = job_spec(problem, priority=priority, deadline=deadline,
                        idempotency_key=idempotency_key, device=device, labels=labels)
        return self._unary("SubmitJob", jobs_pb2.SubmitJobRequest(spec=spec))

    def watch(self, job_id: str, from_event: int = 0,
              timeout: Optional[float] = None) -> Iterator[jobs_pb2.JobEvent]:
        """Yields the job's events from number `from_event` until its
        terminal state. If the stream drops (UNAVAILABLE: the replica died
        or shut down; CANCELLED: its gRPC server shut down under the
        stream, which this call never cancels itself) it reconnects from
        the next event number, on another replica when the target names
        several, up to _RECONNECTS times in a row."""
        next_event, failures = from_event, 0
        while True:
            request = jobs_pb2.WatchJobRequest(job_id=job_id, from_event=next_event)
            try:
                for event in self._stub.WatchJob(request, metadata=self._metadata, timeout=timeout):
                    next_event, failures = event.number + 1, 0
                    yield event
                    if event.HasField("state") and event.state.state in TERMINAL_STATES:
                        return
                return
            except grpc.RpcError as e:
                failures += 1
                if e.code() not in _WATCH_DROPPED or failures > _RECONNECTS:
                    raise
                time.sleep(0.1 * 2 ** failures)

    def wait(self, job_id: str, timeout: Optional[float] = None) -> jobs_pb2.Job:
        """Blocks until the job ends; returns its final Job, or raises
        JobFailed (JobCancelled for a cancelled job)."""
        for _ in self.watch(job_id, timeout=timeout):
            pass
        job = self.get(job_id)
        if job.state != jobs_pb2.JOB_STATE_SUCCEEDED:
            raise job_error(job)
        return job

    def result(self, job_id: str, timeout: Optional[float] = None) -> Result:
        """The family result (OtResult, OtBatchResult or SorSequenceResult)
        of a job, waiting for it to succeed."""
        return result_of(self.wait(job_id, timeout=timeout))

    def solve(self, problem: Problem, *, timeout: Optional[float] = None, **submit_args) -> Result:
        """submit() then result()."""
        return self.result(self.submit(problem, **submit_args).id, timeout=timeout)

    def get(self, job_id: str) -> jobs_pb2.Job:
        return self._unary("GetJob", jobs_pb2.GetJobRequest(job_id=job_id))

    def cancel(self, job_id: str) -> jobs_pb2.Job:
        return self._unary("CancelJob", jobs_pb2.CancelJobRequest(job_id=job_id))

    def jobs(self, state: int = jobs_pb2.JOB_STATE_UNSPECIFIED,
             family: str = "") -> Iterator[jobs_pb2.Job]:
        """Yields every job (optionally of one state or family), page by page."""
        token = ""
        while True:
            page = self._unary("ListJobs", jobs_pb2.ListJobsRequest(
                state=state, family=family, page_token=token))
            yield from page.jobs
            token = page.next_page_token
            if not token:
                return

    # --- blobs: data past the 4 MiB message limit ---

    def upload(self, values, dtype=np.float64) -> common_pb2.Tensor:
        """Uploads an array (as little-endian float32/float64) and returns a
        Tensor that refers to it by blob id, for use in any problem."""
        data = little_endian(values, dtype)
        return blob_tensor(data, self.upload_bytes(data).blob_id)

    def upload_bytes(self, data) -> jobs_pb2.BlobInfo:
        """Uploads raw bytes (e.g. a Matrix Market file); returns BlobInfo.
        The bytes' SHA-256 goes with the last chunk, so the server stores
        them only if they arrived intact (DATA_LOSS otherwise)."""
        return self._unary("UploadBlob", upload_chunks(data))

    def list_blobs(self) -> list:
        """The caller's blobs (BlobInfo: id, size, expiry, SHA-256), soonest
        to expire first."""
        return list(self._unary("ListBlobs", jobs_pb2.ListBlobsRequest()).blobs)

    def delete_blob(self, blob_id: str) -> None:
        """Drops one of the caller's blobs before its TTL (NotFound if none)."""
        self._unary("DeleteBlob", jobs_pb2.DeleteBlobRequest(blob_id=blob_id))

    def download_bytes(self, blob_id: str) -> bytes:
        """A blob's bytes, checked against the SHA-256 the server sends."""
        request = jobs_pb2.DownloadBlobRequest(blob_id=blob_id)
        return joined_chunks(blob_id, list(self._unary("DownloadBlob", request)))

    def upload_file(self, path: str, progress=True) -> jobs_pb2.BlobInfo:
        """Streams a file of any size from disk (files.py): no deadline,
        SHA-256 checked by the server. progress: True for a progress line
        on a terminal, False for none, or a callable(done, total)."""
        os.stat(path)  # a missing file raises here, not inside the request stream
        report = files.default_progress(f"upload {os.path.basename(path)}") \
            if progress is True else (progress or None)
        return self._stub.UploadBlob(files.file_chunks(path, report), metadata=self._metadata)

    def download_file(self, blob_id: str, path: str, *, size: int = 0, progress=True) -> int:
        """Streams a blob to `path` (through a temporary file beside it, so
        a failure leaves nothing); returns its size. size: the blob's, when
        known, for the progress line."""
        report = files.default_progress(f"download {os.path.basename(path)}") \
            if progress is True else (progress or None)
        chunks = self._stub.DownloadBlob(jobs_pb2.DownloadBlobRequest(blob_id=blob_id),
                                         metadata=self._metadata)
        return files.write_chunks(chunks, blob_id, path, report, size)

    def upload_checkpoint(self, folder: str, progress=True) -> quant_pb2.QuantFile:
        """Uploads a Hugging Face checkpoint folder's config, weight shards
        and tokenizer files; returns the QuantFile naming them, for
        QuantProblem.model."""
        return files.checkpoint_blobs({
            name: self.upload_file(os.path.join(folder, name), progress).blob_id
            for name in files.checkpoint_files(folder)})

    def download_array(self, t: common_pb2.Tensor) -> np.ndarray:
        """The array of a blob-backed Tensor."""
        dtype = "<f4" if t.dtype == common_pb2.DTYPE_FLOAT32 else "<f8"
        return np.frombuffer(self.download_bytes(t.blob_id), dtype=dtype).reshape(list(t.shape))

    # --- sor tuners ---

    def create_tuner(self, name: str, algorithm: int, **config) -> sor_pb2.Tuner:
        """Creates (or returns the same-configured) named sor tuner;
        algorithm: a sor_pb2.TUNER_ALGORITHM_* value."""
        request = sor_pb2.CreateTunerRequest(name=name, algorithm=algorithm, **config)
        return self._unary("CreateTuner", request)

    def get_tuner(self, name: str) -> sor_pb2.Tuner:
        return self._unary("GetTuner", sor_pb2.GetTunerRequest(name=name))

    def delete_tuner(self, name: str) -> None:
        self._unary("DeleteTuner", sor_pb2.DeleteTunerRequest(name=name))
