"""Run a command as an ordinary user, as the systemd unit runs OpenCTS: the non-root paths of the runtime.

Tests and benchmarks run as root here; the functions' confinement without root (``functions/landlock.py``)
is exercised by running the server side as ``nobody``. When the interpreter lies under a directory that
user cannot traverse (pyenv in root's home), the command runs in a mount namespace of its own where a
tmpfs covers that directory and only the interpreter's tree is bound back in view.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

NOBODY = 65534


def _traversable(path: Path) -> bool:
    """Whether any user may walk down to ``path`` (every directory on the way has the other-x bit)."""
    return all(os.stat(directory).st_mode & 0o001 for directory in [path, *path.parents])


def as_user(argv: list[str], uid: int = NOBODY) -> list[str]:
    """``argv`` run as ``uid`` (and its gid) when this process is root; unchanged otherwise."""
    if os.geteuid() != 0:
        return argv
    drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
    base = Path(sys.base_prefix).resolve()
    if _traversable(base):
        return drop + argv
    top = Path(*base.parts[:2])  # e.g. /root
    script = (
        'set -e; keep=$(mktemp -d); mount --bind "$1" "$keep"; '
        'mount -t tmpfs -o mode=755 tmpfs "$2"; mkdir -p "$1"; mount --move "$keep" "$1"; '
        'shift 2; exec "$@"'
    )
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
        str(base),
        str(top),
    ] + [
        *drop,
        *argv,
    ]
