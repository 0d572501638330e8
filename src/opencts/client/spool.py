"""The outbox on disk: one file per sealed batch, so batches outlive an OpenCTS outage and the app itself.

- **Writing**: a batch goes to a temporary file, is fsynced (``spool_fsync``), and renamed to
  ``<time_ns>-<batch_id>.batch``; the directory is fsynced too. A crash leaves a whole file or none (a
  stray ``.tmp`` is removed on the next start), and names sort oldest first.
- **Claiming**: a sender holds the file under ``flock(LOCK_EX | LOCK_NB)`` while it sends, and deletes it
  while still holding the lock. Any number of processes may share a directory (the workers of one app, an
  app restarted while its old process still ends): a file is sent by one at a time, and a sender that
  locks a file another one just deleted sees its link count at 0 and skips it. A process that dies holding
  a lock lets go of it with its descriptors, so the next start sends the batch. A batch sent by a process
  killed before it could delete the file is sent again, and OpenCTS, which stores each trace id once,
  counts it as duplicates.
- **Bound**: past ``max_bytes`` of waiting files a new batch is dropped (and counted by the client), not
  an old one: what is kept is the unbroken start of the outage, and a file another process is sending is
  never deleted from under it.

POSIX only (``fcntl``): the platforms OpenCTS runs on.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson

from opencts.client.outbox import Batch, Claim

__all__ = ["Spool"]

log = logging.getLogger(__name__)

SUFFIX = ".batch"
#: a temporary file this old was left by a process that died while writing it
STALE_TMP_SECONDS = 600


@dataclass(frozen=True)
class _FileClaim:
    path: Path
    file: BinaryIO
    batch: Batch


class Spool:
    """Batches as files in ``directory`` (created 0700: trace bodies may name users and resources)."""

    def __init__(self, directory: Path, *, max_bytes: int, fsync: bool = True) -> None:
        self.directory = directory
        self._max_bytes = max_bytes
        self._fsync = fsync
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._bytes = 0
        self._count = 0
        self._remove_stale_tmp()
        self._rescan()

    def _remove_stale_tmp(self) -> None:
        cutoff = time.time() - STALE_TMP_SECONDS
        for entry in os.scandir(self.directory):
            if entry.name.endswith(".tmp"):
                try:
                    if entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)
                except FileNotFoundError:
                    pass

    def _rescan(self) -> list[str]:
        names: list[str] = []
        total = 0
        for entry in os.scandir(self.directory):
            if entry.name.endswith(SUFFIX):
                try:
                    total += entry.stat().st_size
                except FileNotFoundError:
                    continue
                names.append(entry.name)
        names.sort()
        self._bytes, self._count = total, len(names)
        return names

    def put(self, batch: Batch) -> bool:
        meta = {"batch_id": batch.batch_id, "project_id": batch.project_id, "count": batch.count}
        header = orjson.dumps(meta)
        size = len(header) + 1 + len(batch.body)
        if self._bytes + size > self._max_bytes:
            self._rescan()  # other processes may have sent some since
            if self._bytes + size > self._max_bytes:
                return False
        name = f"{time.time_ns():020d}-{batch.batch_id}{SUFFIX}"
        tmp = self.directory / f".{batch.batch_id}.tmp"
        with open(tmp, "wb") as out:
            out.write(header + b"\n" + batch.body)
            if self._fsync:
                out.flush()
                os.fsync(out.fileno())
        os.rename(tmp, self.directory / name)
        if self._fsync:
            self._sync_directory()
        self._bytes += size
        self._count += 1
        return True

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def waiting(self) -> list[str]:
        return self._rescan()

    def claim(self, key: str) -> _FileClaim | None:
        path = self.directory / key
        try:
            file = open(path, "rb")  # held open (and locked) until done or release
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return None
        if os.fstat(file.fileno()).st_nlink == 0:  # sent and deleted by another sender meanwhile
            file.close()
            return None
        try:
            batch = _parse(file.read())
        except ValueError as exc:
            self._set_aside(path, file, exc)
            return None
        return _FileClaim(path, file, batch)

    def _set_aside(self, path: Path, file: BinaryIO, exc: Exception) -> None:
        """A file that is not a batch (a disk fault, a hand edit) is renamed ``.corrupt``: never sent,
        never silently deleted."""
        log.error("spooled batch %s is unreadable (%s); renamed to .corrupt", path.name, exc)
        try:
            os.rename(path, path.with_suffix(".corrupt"))
        finally:
            file.close()

    def done(self, claim: Claim) -> None:
        assert isinstance(claim, _FileClaim)
        try:
            size = os.fstat(claim.file.fileno()).st_size
            os.unlink(claim.path)
            self._bytes -= size
            self._count -= 1
        except FileNotFoundError:
            pass
        finally:
            claim.file.close()

    def release(self, claim: Claim) -> None:
        assert isinstance(claim, _FileClaim)
        claim.file.close()

    def pending(self) -> tuple[int, int]:
        return self._count, self._bytes

    def close(self) -> None:
        """Nothing held between claims."""


def _parse(data: bytes) -> Batch:
    header, sep, body = data.partition(b"\n")
    if not sep:
        raise ValueError("no header line")
    try:
        meta = orjson.loads(header)
        return Batch(str(meta["batch_id"]), str(meta["project_id"]), int(meta["count"]), body)
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"bad header: {exc}") from None
