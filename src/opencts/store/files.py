"""File modes of the data dir: the directory is 0700 and every file in it 0600, whatever the umask.

The data dir holds the SQLite database (every trace, the sealed secrets), ``credentials.json`` and the
master key, so nobody but the service's own user may read any of it. Files are created with their final
mode from the first byte (``os.open`` with 0600, then ``fchmod`` in case the file already existed), and
:func:`tighten_dir` brings a data dir written under a looser umask back to these modes at start.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create ``path`` (and its parents) if needed, and make ``path`` itself 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)


def tighten_dir(path: Path) -> None:
    """Make ``path`` 0700 and every regular file directly in it 0600.

    The service writes only there, so subdirectories (unreachable by others once ``path`` is 0700) keep
    their modes, and symbolic links are neither followed nor changed: they may point at files the
    service does not own.
    """
    private_dir(path)
    with os.scandir(path) as entries:
        for entry in entries:
            _chmod_if(Path(entry.path), stat.S_ISREG, FILE_MODE)


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it is missing, or make the existing file 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def tighten_file(path: Path) -> None:
    """Make ``path`` 0600 if it exists as a regular file."""
    _chmod_if(path, stat.S_ISREG, FILE_MODE)


def open_private(path: Path, *, exclusive: bool = False) -> BinaryIO:
    """Open ``path`` for writing (truncated), mode 0600 before the first byte is written.

    With ``exclusive`` the call fails with :class:`FileExistsError` if ``path`` exists, so two processes
    creating the same file agree on the one that won.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def _chmod_if(path: Path, kind: Callable[[int], bool], mode: int) -> None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if kind(st.st_mode) and stat.S_IMODE(st.st_mode) != mode:
        os.chmod(path, mode)
