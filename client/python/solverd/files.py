"""Files of any size to and from solverd's blobs: streamed from and to disk
in 1 MiB chunks (never whole in memory), with no deadline on the stream,
the SHA-256 checked on both sides, and a progress line (rate and ETA) on a
terminal. A failed upload raises; the server drops what it had received.
A failed download raises and leaves no partial file. And a Hugging Face
checkpoint folder as the blobs a QuantProblem names."""
import hashlib
import json
import os
import sys
import time
from typing import Callable, Iterator, Optional

from solverd.v1 import jobs_pb2, quant_pb2

CHUNK_BYTES = 1 << 20

# progress(done_bytes, total_bytes)
Progress = Callable[[int, int], None]

# The files of a checkpoint folder that a quant job reads or carries
# through to its output (the server ignores others).
_CHECKPOINT_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json",
                     "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                     "tokenizer.model", "added_tokens.json", "vocab.json", "merges.txt",
                     "generation_config.json")


class TerminalProgress:
    """A one-line progress report on stderr, at most a few times a second."""

    def __init__(self, label: str, stream=sys.stderr):
        self._label, self._stream = label, stream
        self._start = self._last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.2:
            return
        self._last = now
        rate = done / max(now - self._start, 1e-9)
        eta = (total - done) / rate if rate > 0 else 0
        percent = 100.0 * done / total if total else 100.0
        self._stream.write(f"\r{self._label}: {percent:5.1f}% {done / 2**20:,.1f} of "
                           f"{total / 2**20:,.1f} MiB, {rate / 2**20:,.1f} MiB/s, "
                           f"{eta:,.0f} s left ")
        if done >= total:
            self._stream.write("\n")
        self._stream.flush()


def default_progress(label: str) -> Optional[Progress]:
    """A TerminalProgress when stderr is a terminal, else None."""
    return TerminalProgress(label) if sys.stderr.isatty() else None


def file_chunks(path: str, progress: Optional[Progress]) -> Iterator[jobs_pb2.BlobChunk]:
    """The file's chunks, the last with the SHA-256 of the whole."""
    total = os.path.getsize(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        offset, data = 0, f.read(CHUNK_BYTES)
        while True:
            following = f.read(CHUNK_BYTES) if data else b""
            digest.update(data)
            last = not following
            yield jobs_pb2.BlobChunk(data=data, offset=offset,
                                     sha256=digest.digest() if last else b"")
            offset += len(data)
            if progress is not None:
                progress(offset, total)
            if last:
                return
            data = following


def write_chunks(chunks, blob_id: str, path: str, progress: Optional[Progress],
                 total: int = 0) -> int:
    """Writes a download to `path` through a temporary file beside it,
    checking the SHA-256 the server sends; returns the bytes written.
    `total`: the blob's size when known, for the progress report."""
    partial = f"{path}.part-{os.getpid()}"
    digest, expected, done = hashlib.sha256(), b"", 0
    try:
        with open(partial, "wb") as f:
            for chunk in chunks:
                expected = expected or chunk.sha256
                digest.update(chunk.data)
                f.write(chunk.data)
                done += len(chunk.data)
                if progress is not None:
                    progress(done, max(done, total))
        if expected and digest.digest() != expected:
            raise IOError(f"blob {blob_id}: the downloaded bytes do not match their SHA-256")
        os.replace(partial, path)
        return done
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def checkpoint_files(folder: str) -> list:
    """The names of the files of `folder` a quant job uses: config.json,
    the weights (model.safetensors, or the index and every shard it lists)
    and the tokenizer and generation files present."""
    names = [n for n in _CHECKPOINT_FILES if os.path.isfile(os.path.join(folder, n))]
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.isfile(index):
        with open(index) as f:
            shards = dict.fromkeys(json.load(f).get("weight_map", {}).values())
        names += [s for s in shards if s not in names]
    if "config.json" not in names:
        raise FileNotFoundError(f"{folder}: no config.json (not a checkpoint folder)")
    return names


def checkpoint_blobs(uploaded: dict) -> quant_pb2.QuantFile:
    """A QuantFile naming a checkpoint by its uploaded files ({name: blob_id})."""
    return quant_pb2.QuantFile(checkpoint_blobs=quant_pb2.QuantCheckpointBlobs(files=[
        quant_pb2.QuantCheckpointFile(name=name, blob_id=blob_id)
        for name, blob_id in uploaded.items()]))
