"""The backup manifest: what a backup holds, and the check that a backup is whole before it is restored.

A backup is a directory: the files, then ``manifest.json`` written last (through a temporary name and a
rename), so a backup cut short has no manifest and is never mistaken for a whole one. The manifest names
every file with its size and SHA-256, the OpenCTS version and schema revision that wrote it and the
database kind, so a restore can refuse a damaged, incomplete or foreign backup before it touches the
data dir.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from opencts.store.files import open_private

MANIFEST = "manifest.json"
FORMAT = "opencts-backup/1"
#: bytes read at a time when hashing or copying (large enough to run at disk speed)
CHUNK = 4 << 20

#: progress: what is being done, bytes done so far, bytes in all
Progress = Callable[[str, int, int], None]


class BackupError(Exception):
    """A backup cannot be taken or restored; the message says why and what to do."""


@dataclass(frozen=True)
class Entry:
    """One file of a backup, by its path relative to the backup directory (``/`` separated)."""

    path: str
    size: int
    sha256: str


@dataclass
class Manifest:
    opencts_version: str
    created_at: str
    database: str  # "sqlite": the log is in the backup; "postgresql": pg_dump's, kept apart
    schema_revision: str | None
    sqlite_version: str | None = None
    files: list[Entry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    format: str = FORMAT

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.files)

    def write(self, directory: Path) -> None:
        """Write ``manifest.json`` atomically: a reader finds the whole manifest or none."""
        tmp = directory / f".{MANIFEST}.tmp"
        with open_private(tmp) as out:
            out.write(json.dumps(asdict(self), indent=2).encode() + b"\n")
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(directory / MANIFEST)

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST
        if not directory.is_dir():
            raise BackupError(f"{directory} is not a directory holding a backup")
        if not path.exists():
            raise BackupError(
                f"{directory} has no {MANIFEST}: the backup is incomplete (cut short, or not a backup)"
            )
        try:
            raw: Any = json.loads(path.read_bytes())
            if raw.get("format") != FORMAT:
                raise BackupError(f"{path} is not an OpenCTS backup manifest ({FORMAT})")
            files = [Entry(**e) for e in raw.pop("files")]
            return cls(files=files, **raw)
        except BackupError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise BackupError(f"{path} is damaged: {exc}") from None


def sha256_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    return digest.hexdigest()


def verify(directory: Path, manifest: Manifest, progress: Progress | None = None) -> None:
    """Check every file the manifest names: present, of its size, of its SHA-256; BackupError if not.

    Sizes are checked first (a missing or truncated file is found without reading anything), then the
    checksums, which read every byte once.
    """
    root = directory.resolve()
    for entry in manifest.files:
        path = (directory / entry.path).resolve()
        if root not in path.parents:
            raise BackupError(f"the manifest names {entry.path!r}, outside the backup: refused")
        if not path.is_file():
            raise BackupError(f"the backup is incomplete: {entry.path} is missing")
        if (size := path.stat().st_size) != entry.size:
            raise BackupError(
                f"the backup is damaged: {entry.path} has {size} bytes, the manifest says {entry.size}"
            )
    done, total = 0, manifest.total_bytes

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress("verifying", done, total)

    for entry in manifest.files:
        if sha256_file(directory / entry.path, advance) != entry.sha256:
            raise BackupError(f"the backup is damaged: {entry.path} does not match its SHA-256")
