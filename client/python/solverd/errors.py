"""Typed errors: what a call to solverd raises.

Every error is a solverd.Error, which is also a grpc.RpcError with the
same code() and details(), so code written against bare gRPC errors keeps
working; the gRPC error itself is kept as __cause__. The server names the
field at fault at the start of its message ("quant.bits: must be 2..8"),
which InvalidArgument splits into .field and .reason:

    >>> e = translate_message(grpc.StatusCode.INVALID_ARGUMENT, "ot.reg: must be > 0, got -1")
    >>> type(e).__name__, e.field, e.reason
    ('InvalidArgument', 'ot.reg', 'must be > 0, got -1')

A job that was accepted and then failed or was cancelled raises
JobFailed or JobCancelled from wait(), result() and solve(), holding the
final Job and, when the server kept one, the best answer so far.
"""
import contextlib
import functools
import inspect
import re
from typing import Optional

import grpc

# "<field>: <reason>", the field a dotted path (quant.calibration_text,
# spec.ot.cost[3]).
_FIELD = re.compile(r"^([A-Za-z_][\w.\[\]]*): (.*)$", re.DOTALL)


class Error(grpc.RpcError):
    """Anything solverd refused or could not do. code(): the
    grpc.StatusCode; details(): the server's message."""

    status = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None):
        super().__init__(message)
        self.message = message
        self._code = code or self.status

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self.message

    def __str__(self) -> str:
        return f"{self._code.name}: {self.message}"


class InvalidArgument(Error):
    """The request is wrong: .field names the part at fault (None when
    the message names none) and .reason says why."""

    status = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None):
        super().__init__(message, code)
        match = _FIELD.match(message)
        self.field: Optional[str] = match.group(1) if match else None
        self.reason: str = match.group(2) if match else message


class NotFound(Error):
    status = grpc.StatusCode.NOT_FOUND


class AlreadyExists(Error):
    status = grpc.StatusCode.ALREADY_EXISTS


class ResourceExhausted(Error):
    """A quota, the queue, or memory: try again later or with less."""
    status = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(Error):
    status = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(Error):
    """The server is down or shutting down (calls may be retried)."""
    status = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(Error):
    status = grpc.StatusCode.DEADLINE_EXCEEDED


class Unauthenticated(Error):
    status = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(Error):
    status = grpc.StatusCode.PERMISSION_DENIED


class DataLoss(Error):
    """Bytes arrived damaged (an upload's SHA-256 did not match)."""
    status = grpc.StatusCode.DATA_LOSS


_BY_CODE = {cls.status: cls for cls in (InvalidArgument, NotFound, AlreadyExists,
                                        ResourceExhausted, FailedPrecondition, Unavailable,
                                        DeadlineExceeded, Unauthenticated, PermissionDenied,
                                        DataLoss)}


def translate_message(code: grpc.StatusCode, message: str) -> Error:
    """The typed error for a status code and message."""
    return _BY_CODE.get(code, Error)(message, code)


def translate(error: grpc.RpcError) -> Error:
    """The typed error for a gRPC error (itself if it is one already)."""
    if isinstance(error, Error):
        return error
    code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
    details = error.details() if callable(getattr(error, "details", None)) else str(error)
    return translate_message(code, details or "")


def best_answer(job):
    """The family result a job holds (a cancelled job's best answer so
    far), or None."""
    kind = job.result.WhichOneof("result") if job.HasField("result") else None
    return getattr(job.result, kind) if kind else None


class JobFailed(Error):
    """A job ended FAILED (or CANCELLED, as JobCancelled). `job` is its
    final Job; `best` the answer it had so far (the family result message),
    or None."""

    def __init__(self, job):
        code = next((c for c in grpc.StatusCode if c.value[0] == job.error_code),
                    grpc.StatusCode.UNKNOWN)
        from solverd.v1 import jobs_pb2  # the stubs import nothing of this module
        state = jobs_pb2.JobState.Name(job.state)
        super().__init__(f"job {job.id} {state}: {code.name}: {job.error_message}", code)
        self.job = job
        self.best = best_answer(job)


class JobCancelled(JobFailed):
    """A job ended CANCELLED (by a cancel, Ctrl-C, or its deadline)."""


def job_error(job) -> JobFailed:
    """JobCancelled or JobFailed for a job that did not succeed."""
    from solverd.v1 import jobs_pb2
    return (JobCancelled if job.state == jobs_pb2.JOB_STATE_CANCELLED else JobFailed)(job)


@contextlib.contextmanager
def typed_errors():
    """Raises a grpc.RpcError from the block as its typed error."""
    try:
        yield
    except Error:
        raise
    except grpc.RpcError as e:
        raise translate(e) from e


def raises_typed(method):
    """Decorates a method (or generator method) so that gRPC errors leave
    it typed."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def generator(*args, **kwargs):
            with typed_errors():
                yield from method(*args, **kwargs)
        return generator

    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        with typed_errors():
            return method(*args, **kwargs)
    return wrapped


def raises_typed_async(method):
    """raises_typed for a coroutine method or an async generator method."""
    if inspect.isasyncgenfunction(method):
        @functools.wraps(method)
        async def generator(*args, **kwargs):
            with typed_errors():
                async for item in method(*args, **kwargs):
                    yield item
        return generator

    @functools.wraps(method)
    async def wrapped(*args, **kwargs):
        with typed_errors():
            return await method(*args, **kwargs)
    return wrapped


def typed_methods(decorate):
    """A class decorator applying `decorate` (raises_typed or
    raises_typed_async) to every public method."""
    def apply(cls):
        for name, member in list(vars(cls).items()):
            if callable(member) and not name.startswith("_"):
                setattr(cls, name, decorate(member))
        return cls
    return apply
