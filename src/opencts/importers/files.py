"""Finding and reading the files an import names: one file or every matching file under a folder.

CloudTrail and CTS both write one JSON document per object, gzipped (``.json.gz``) or not (``.json``);
a folder copied down from a bucket keeps that tree, so a folder is walked recursively, in name order (the
names carry the time), and anything else in it (digests, signatures, ``.enc`` files) is listed apart.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

SUFFIXES = (".json", ".json.gz")


class ImportFileError(ValueError):
    """A file that cannot be read as the format asked for (named in the message)."""


@dataclass(frozen=True, slots=True)
class Found:
    files: list[Path]
    #: files under a folder that are not JSON (digests' signatures, encrypted trace files...), skipped
    skipped: list[Path]

    @property
    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files)


def find(source: Path, *, exclude: tuple[str, ...] = ()) -> Found:
    """The JSON files of ``source``: the file itself, or every ``.json``/``.json.gz`` under the folder
    whose path has none of ``exclude`` in it (CloudTrail's ``CloudTrail-Digest``, CTS's ``Digest``)."""
    if source.is_file():
        return Found([source], [])
    if not source.is_dir():
        raise ImportFileError(f"{source} is neither a file nor a folder")
    files: list[Path] = []
    skipped: list[Path] = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        excluded = any(part in exclude for part in path.relative_to(source).parts)
        (files if path.name.endswith(SUFFIXES) and not excluded else skipped).append(path)
    return Found(files, skipped)


def read_json(path: Path) -> Any:
    """The JSON document in ``path`` (gunzipped when it is gzip, whatever its name says), or, for
    newline-delimited JSON, the list of its lines' documents."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ImportFileError(f"{path}: cannot read: {exc}") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return [orjson.loads(line) for line in raw.splitlines() if line.strip()]
    except orjson.JSONDecodeError as exc:
        raise ImportFileError(f"{path}: not JSON: {exc}") from None
