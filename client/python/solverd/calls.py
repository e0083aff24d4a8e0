"""What the numpy-first functions (solverd.ot, ...) share: finding the
server, sending arrays inline or as blobs, and running one job to its
end with progress and Ctrl-C.

A function given `client=` uses it; given `server="host:port"` (or
nothing: $SOLVERD_SERVER, else 127.0.0.1:50051) it opens a connection
for the call. Ctrl-C while a job runs cancels it on the server and raises
KeyboardInterrupt with the job (`.job`) and the best answer so far
(`.best`, the family result, or None) attached.
"""
import contextlib
import ctypes
import os
import queue
import sys
import threading
from typing import Callable, Optional, Union

import numpy as np

from solverd.client import TERMINAL_STATES, Client, fold_event, result_of
from solverd.errors import DeadlineExceeded, Error, Unavailable, best_answer, job_error
from solverd.tensors import tensor
from solverd.v1 import common_pb2, jobs_pb2

DEFAULT_SERVER = "127.0.0.1:50051"

# Arrays up to this size go inside the request; larger ones as blobs
# (the server takes requests up to 64 MiB).
INLINE_BYTES = 32 << 20

Progress = Union[bool, None, Callable[[jobs_pb2.JobEvent], None]]


@contextlib.contextmanager
def connection(client: Optional[Client], server: Optional[str]):
    """`client`, or a Client to `server` (or $SOLVERD_SERVER, or the
    default) closed after the block."""
    if client is not None:
        yield client
        return
    with Client(server or os.environ.get("SOLVERD_SERVER") or DEFAULT_SERVER) as opened:
        yield opened


_heap_kept = False


def keep_freed_memory() -> None:
    """Keeps freed blocks under 32 MiB in this process's heap (glibc's
    mallopt: mmap threshold 32 MiB, trim threshold 1 GiB) instead of
    handing each back to the kernel. Every request of a large array
    allocates fresh buffers (numpy's bytes, protobuf's, gRPC's); mapped
    afresh each time, their page faults made an 800 x 800 call take 70-110
    ms instead of 12-14 ms on the 2-core VM (bench/ot). The cost: memory
    freed after a large call stays with the process for its next one.
    Once per process, from the first large array sent;
    SOLVERD_KEEP_FREED_MEMORY=0 leaves malloc alone."""
    global _heap_kept
    if _heap_kept or os.environ.get("SOLVERD_KEEP_FREED_MEMORY", "1") == "0":
        return
    _heap_kept = True
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)   # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


class Payload:
    """The arrays of one request: inline while together they fit in
    INLINE_BYTES, uploaded as blobs after that (a batch of many mid-size
    arrays would otherwise pass the server's request limit).

    As a context manager it deletes the blobs it uploaded on leaving, once
    their job has ended or was refused (run() waits for an interrupted job
    to stop): left to the server's TTL (24 h) they filled its blob quota
    (4 GiB) after about 20 calls at n = 5000. They stay, until their TTL,
    after a timeout or a lost server: the job may still run, or resume
    from them after a restart."""

    def __init__(self, client: Client):
        self.client = client
        self.inline_left = INLINE_BYTES
        self.blob_ids = []

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        if kind is None or not issubclass(kind, (DeadlineExceeded, Unavailable)):
            self.release()
        return False

    def release(self):
        """Deletes the uploaded blobs, as far as the server answers: a
        blob left behind expires with its TTL."""
        for blob_id in self.blob_ids:
            try:
                self.client.delete_blob(blob_id)
            except Error:
                pass
        self.blob_ids = []

    def upload_bytes(self, data: bytes) -> str:
        """Uploads raw bytes as a blob of this payload's; returns its id."""
        blob_id = self.client.upload_bytes(data).blob_id
        self.blob_ids.append(blob_id)
        return blob_id

    def send(self, values, dtype=np.float64) -> common_pb2.Tensor:
        """A Tensor of `values`, inline or a blob."""
        data = np.ascontiguousarray(values, dtype=dtype)
        if data.nbytes > (1 << 20):
            keep_freed_memory()
        if data.nbytes > self.inline_left:
            uploaded = self.client.upload(data, dtype)
            self.blob_ids.append(uploaded.blob_id)
            return uploaded
        self.inline_left -= data.nbytes
        return tensor(data, dtype)


class _Bar:
    """A tqdm bar over a job's fraction done (Debian's python3-tqdm)."""

    def __init__(self, description: str):
        import tqdm
        self._bar = tqdm.tqdm(total=1.0, desc=description, unit="job",
                              bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def __call__(self, event: jobs_pb2.JobEvent):
        if event.HasField("progress"):
            self._bar.n = min(max(event.progress.fraction, 0.0), 1.0)
            self._bar.set_postfix_str(event.progress.stage, refresh=False)
            self._bar.refresh()

    def close(self):
        self._bar.close()


def _reporter(progress: Progress, description: str):
    if progress is True:  # a bar on a terminal only
        return _Bar(description) if sys.stderr.isatty() else None
    if callable(progress):
        return progress
    return None


class _EventReader:
    """A job's events, read from its watch stream by a thread of its own.

    Ctrl-C raises KeyboardInterrupt in the main thread wherever it is. In
    gRPC's streaming iterator that is inside its own locking (it polls a
    Condition), and an interrupt between a lock's acquire and the `with`
    that releases it leaves the lock held: the channel hangs for good (1
    run in 9 of sdk_ot_test's Ctrl-C test). So only this thread touches the
    stream, and the main thread waits on a SimpleQueue, whose get() is C
    code that an interrupt leaves consistent; it can go on reading the
    same queue after cancelling the job."""

    _END = object()

    def __init__(self, client: Client, job_id: str, timeout: Optional[float]):
        self._queue = queue.SimpleQueue()
        threading.Thread(target=self._read, args=(client, job_id, timeout),
                         name=f"solverd-watch-{job_id}", daemon=True).start()

    def _read(self, client: Client, job_id: str, timeout: Optional[float]) -> None:
        try:
            for event in client.watch(job_id, timeout=timeout):
                self._queue.put(event)
            self._queue.put(self._END)
        except BaseException as error:  # raised again in the thread reading the queue
            self._queue.put(error)

    def __iter__(self):
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


def run(client: Client, problem, *, progress: Progress = None, timeout: Optional[float] = None,
        description: str = "solverd", **submit_args):
    """Submits `problem`, reports each event to `progress` (True: a tqdm
    bar on a terminal; a callable: each JobEvent), and returns (job, family result).
    Raises JobFailed / JobCancelled, or KeyboardInterrupt (the job
    cancelled) on Ctrl-C."""
    job = client.submit(problem, **submit_args)
    report = _reporter(progress, description)
    final = jobs_pb2.Job()
    final.CopyFrom(job)
    events = _EventReader(client, job.id, timeout)
    try:
        for event in events:
            fold_event(final, event)
            if report is not None:
                report(event)
    except KeyboardInterrupt as interrupt:
        client.cancel(job.id)
        for _ in events:  # until it has stopped, with its best answer
            pass
        interrupt.job = client.get(job.id)
        interrupt.best = best_answer(interrupt.job)
        raise
    finally:
        if hasattr(report, "close"):
            report.close()
    if final.state not in TERMINAL_STATES:  # the stream ended early: ask
        final = client.get(job.id)
    if final.state != jobs_pb2.JOB_STATE_SUCCEEDED:
        raise job_error(final)
    return final, result_of(final)
