"""A trace file's leaves, for ``opencts verify --proofs``: gunzip, split into traces, hash each.

This is the verifier's CPU work per trace (JSON parsing and SHA-256 of small bodies hold the GIL), so it
runs in a process pool (:class:`LeafPool`): the module imports only the hashing, and a task is one file's
bytes in and its trace ids and leaf hashes out, so what crosses between processes is small. The serial
path calls the same :func:`file_leaves`, which is why both give identical findings.
"""

from __future__ import annotations

import gzip
import json
import multiprocessing
import re
import zlib
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson

from opencts.ledger.hashing import leaf_hash

#: below this many files to open, processes cost more to start than they save
MIN_FILES = 32


@dataclass(frozen=True, slots=True)
class FileLeaves:
    """One file's traces: ids (None where a trace has none) and leaf hashes, or why it could not be read."""

    ids: list[str | None]
    #: 32 bytes a trace, in file order
    leaves: bytes
    #: ``not gzip`` or ``not a trace file`` (then ids and leaves are empty)
    problem: str | None = None
    detail: str = ""

    def pairs(self) -> list[tuple[str | None, bytes]]:
        return [(tid, self.leaves[i * 32 : i * 32 + 32]) for i, tid in enumerate(self.ids)]


def file_leaves(content: bytes, gzipped: bool) -> FileLeaves:
    """The leaves of a file's (decrypted) bytes: what a pool process runs."""
    if gzipped:
        try:
            content = gzip.decompress(content)
        except (OSError, EOFError, zlib.error) as exc:
            return FileLeaves([], b"", "not gzip", str(exc))
    try:
        traces = split_traces(content)
    except ValueError as exc:
        return FileLeaves([], b"", "not a trace file", str(exc))
    return FileLeaves([tid for tid, _ in traces], b"".join(leaf_hash(body) for _, body in traces))


def _start_method() -> str:
    """``fork`` where there is one: ``spawn`` and ``forkserver`` run the program's main module again in
    every worker (2 s for a CLI or a benchmark that imports the app), which cost more than the pool saved."""
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


class LeafPool:
    """Runs :func:`file_leaves` in ``processes`` worker processes, or in the calling thread when
    ``processes`` is 0.

    The workers are forked here, at once, before the verifier starts its reading threads: a fork copies
    only the forking thread, and the workers need nothing the other threads could be holding.
    """

    def __init__(self, processes: int) -> None:
        self._pool: Executor | None = None
        if processes > 0:
            context = multiprocessing.get_context(_start_method())
            self._pool = ProcessPoolExecutor(max_workers=processes, mp_context=context)
            self._pool.submit(file_leaves, b"[]", False).result()  # a fork context starts every worker

    def leaves(self, content: bytes, gzipped: bool) -> FileLeaves:
        if self._pool is None:
            return file_leaves(content, gzipped)
        future: Future[FileLeaves] = self._pool.submit(file_leaves, content, gzipped)
        return future.result()

    def __enter__(self) -> LeafPool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\r\n]*")


def split_traces(content: bytes) -> list[tuple[str | None, bytes]]:
    """``(trace_id, exact bytes)`` of each trace in a file's content ``[body,\nbody,...]``.

    Fast path: JSON strings hold no raw newline, so in compact bodies ``,\n`` occurs only between them;
    when every piece of that split parses on its own, it is the split (cutting one JSON value at one of
    its commas leaves a bracket open). Otherwise (whitespace with newlines inside a stored body) the
    bodies are found with ``raw_decode``, whitespace around each value kept as part of it.
    """
    if not (content.startswith(b"[") and content.endswith(b"]")):
        raise ValueError("a trace file's content is a JSON array")
    inner = content[1:-1]
    if not inner:
        return []
    pieces = inner.split(b",\n")
    try:
        return [(_trace_id(orjson.loads(piece)), piece) for piece in pieces]
    except orjson.JSONDecodeError:
        return _split_slowly(content.decode())


def _trace_id(obj: Any) -> str | None:
    tid = obj.get("trace_id") if isinstance(obj, dict) else None
    return tid if isinstance(tid, str) else None


def _split_slowly(text: str) -> list[tuple[str | None, bytes]]:
    found: list[tuple[str | None, bytes]] = []
    pos, end = 1, len(text) - 1
    while pos < end:
        value = _SPACE.match(text, pos).end()  # type: ignore[union-attr]  # \s* always matches
        obj, stop = _DECODER.raw_decode(text, value)
        while stop < end and text[stop] in " \t\r\n":
            stop += 1
        found.append((_trace_id(obj), text[pos:stop].encode()))
        if stop < end and text[stop : stop + 2] != ",\n":
            raise ValueError(f"traces are not separated by ',\\n' at {stop}")
        pos = stop + 2 if stop < end else stop
    return found
