"""Safe unpacking of a function's code zip into the directory its workers import from."""

from __future__ import annotations

import compileall
import io
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

MAX_UNPACKED_BYTES = 512 * 1024 * 1024
MAX_ENTRIES = 20_000


class UnsafeArchive(ValueError):
    """The zip is not one a function may have: a path escaping its root, a link, a bomb, or not a zip."""


def _checked_members(archive: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    members = archive.infolist()
    if len(members) > MAX_ENTRIES:
        raise UnsafeArchive(f"the zip holds more than {MAX_ENTRIES} entries")
    total = 0
    checked = []
    for member in members:
        name = member.filename.replace("\\", "/")
        path = PurePosixPath(name)
        if name.startswith("/") or ".." in path.parts or (path.parts and ":" in path.parts[0]):
            raise UnsafeArchive(f"the zip entry {member.filename!r} leaves the code directory")
        mode = member.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchive(f"the zip entry {member.filename!r} is a symbolic link")
        total += member.file_size
        if total > MAX_UNPACKED_BYTES:
            raise UnsafeArchive(f"the zip unpacks to more than {MAX_UNPACKED_BYTES} bytes")
        checked.append((member, path))
    return checked


def check_archive(data: bytes) -> None:
    """Refuse an archive that ``unpack`` would refuse, without writing anything (for upload time)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            _checked_members(archive)
    except zipfile.BadZipFile as error:
        raise UnsafeArchive(f"the code is not a zip archive: {error}") from error


def unpack(data: bytes, destination: Path) -> None:
    """Unpack ``data`` into ``destination`` (which must not exist yet), readable by every worker uid.

    The tree is built beside the destination and renamed into place, so a reader never sees half a
    tree, and modules are compiled once here rather than in each cold-starting worker.
    """
    destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for member, path in _checked_members(archive):
                    target = staging.joinpath(*path.parts) if path.parts else staging
                    if member.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(member) as source, open(target, "wb") as sink:
                        shutil.copyfileobj(source, sink, 1024 * 1024)
        except zipfile.BadZipFile as error:
            raise UnsafeArchive(f"the code is not a zip archive: {error}") from error
        compileall.compile_dir(str(staging), quiet=2, workers=1)
        for root, directories, files in os.walk(staging):
            os.chmod(root, 0o755)
            for name in directories:
                os.chmod(os.path.join(root, name), 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
        try:
            os.rename(staging, destination)
        except OSError:
            if not destination.is_dir():
                raise
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
