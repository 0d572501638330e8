"""The bytes of a trace file: the stored bodies, exactly, in a JSON array; then gzip; then the envelope.

``content = b"[" + b",\\n".join(bodies) + b"]"`` keeps every trace's bytes as the log stored them, so a
reader that splits the content back (:func:`split_content`, ``json.JSONDecoder().raw_decode``) gets the
bytes the ledger hashed. gzip runs with ``mtime=0``: the same traces always give the same object, so a
transfer repeated after a crash rewrites an identical file instead of a different one.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Sequence

from opencts.archive.layout import Compress

#: at most this much content (uncompressed JSON) per file; a larger range is split into several files
MAX_CONTENT = 8 * 1024 * 1024
GZIP_LEVEL = 6


def content_size(body_lengths: Iterable[int]) -> int:
    """The size of the content holding bodies of these lengths: brackets plus one ``,\\n`` between two."""
    total = 0
    count = 0
    for length in body_lengths:
        total += length
        count += 1
    return 2 + total + 2 * max(count - 1, 0)


def split_points(body_lengths: Sequence[int], limit: int = MAX_CONTENT) -> list[int]:
    """Where to cut a run of bodies so that no file's content exceeds ``limit`` (a body alone may).

    Returns the index each file starts at (always 0 first).
    """
    starts = [0]
    size = 2
    for i, length in enumerate(body_lengths):
        added = length if i == starts[-1] else length + 2
        if i > starts[-1] and size + added > limit:
            starts.append(i)
            size, added = 2, length
        size += added
    return starts


def content(bodies: Sequence[bytes]) -> bytes:
    return b"[" + b",\n".join(bodies) + b"]"


def encode(bodies: Sequence[bytes], compress: Compress) -> bytes:
    """The file's bytes before any envelope."""
    data = content(bodies)
    return gzip.compress(data, GZIP_LEVEL, mtime=0) if compress == "gzip" else data


def split_content(data: bytes) -> list[bytes]:
    """The bodies of a file's content, byte for byte (ValueError if it is not a JSON array of objects)."""
    text = data.decode()
    if not (text.startswith("[") and text.endswith("]")):
        raise ValueError("trace file content is not a JSON array")
    decoder = json.JSONDecoder()
    out: list[bytes] = []
    pos = 1
    end = len(text) - 1
    while pos < end:
        _, stop = decoder.raw_decode(text, pos)
        out.append(text[pos:stop].encode())
        pos = stop
        if text.startswith(",\n", pos):
            pos += 2
        elif pos != end:
            raise ValueError(f"unexpected byte at {pos} in trace file content")
    return out


def decode(blob: bytes, compress: Compress) -> list[bytes]:
    """The bodies of an unencrypted file as stored."""
    return split_content(gzip.decompress(blob) if compress == "gzip" else blob)
