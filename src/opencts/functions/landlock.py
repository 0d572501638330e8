"""Landlock: what a function's worker may open, enforced by the kernel and kept for life, without root.

The worker (``_worker.py``) loads this file by path and uses the standard library only, for fast cold
starts; the ruleset is three syscalls through ``ctypes``. PyPI's ``landlock`` binding is a development
release and would add a third-party import to every cold start, so it is not used.

A ruleset grants; it cannot deny. To keep a directory unreadable that lies inside a granted tree (a data
dir inside the checkout, a key file in /etc), :func:`plan` grants that tree's other entries one by one
instead of the tree, down to the hidden path, and grants nothing at or under it.
"""

from __future__ import annotations

import ctypes
import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is a costly import for a process that must start fast
    from collections.abc import Iterable, Iterator

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # the same number on every architecture
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13  # ABI 2
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

READ = EXECUTE | READ_FILE | READ_DIR
WRITE = READ | WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | MAKE_SOCK | MAKE_FIFO
WRITE |= MAKE_SYM | REFER | TRUNCATE
DEVICE = READ_FILE | WRITE_FILE | TRUNCATE | IOCTL_DEV
"""/dev/null and friends: opened for writing (``subprocess.DEVNULL``), truncated (mode "w"), and isatty()."""
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class LandlockError(OSError):
    """The kernel refused a Landlock call."""


_libc: ctypes.CDLL | None = None


def _syscall(number: int, *args: object) -> int:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    result: int = _libc.syscall(number, *args)
    if result < 0:
        error = ctypes.get_errno()
        raise LandlockError(error, os.strerror(error))
    return result


def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 where the kernel lacks Landlock or has it turned off."""
    try:
        return _syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except (LandlockError, AttributeError):
        return 0


def _handled_fs(abi: int) -> int:
    handled = (1 << 13) - 1
    if abi >= 2:
        handled |= REFER
    if abi >= 3:
        handled |= TRUNCATE
    if abi >= 5:
        handled |= IOCTL_DEV
    return handled


class Ruleset:
    """A ruleset being built: every filesystem access is denied but what :meth:`allow` grants.

    From ABI 6 on, signals and abstract unix sockets are scoped too: a function cannot signal the server
    (which, without root, runs as the same uid) nor connect to an abstract socket outside its worker.
    """

    def __init__(self, abi: int) -> None:
        self.handled = _handled_fs(abi)
        scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
        attr = _RulesetAttr(self.handled, 0, scoped)
        size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else 8
        self.fd = _syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))

    def allow_fd(self, fd: int, access: int) -> None:
        """Grant ``access`` beneath what ``fd`` (an O_PATH descriptor) names; a file gets file rights only."""
        import stat

        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            access &= _FILE_RIGHTS
        attr = _PathBeneathAttr(access & self.handled, fd)
        _syscall(_ADD_RULE, self.fd, ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(attr), ctypes.c_uint32(0))

    def allow(self, path: str, access: int) -> bool:
        """Grant ``access`` beneath ``path``; False when the path does not exist."""
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            self.allow_fd(fd, access)
        finally:
            os.close(fd)
        return True

    def restrict_self(self) -> None:
        """Enforce the ruleset on this process and every process it starts from now on, irrevocably."""
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            error = ctypes.get_errno()
            raise LandlockError(error, os.strerror(error))
        _syscall(_RESTRICT_SELF, self.fd, ctypes.c_uint32(0))
        os.close(self.fd)


def _inside(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def plan(grants: Iterable[tuple[str, int]], hidden: Iterable[str]) -> list[tuple[str, int]]:
    """The rules that grant each ``(path, access)`` but nothing at or beneath a ``hidden`` path.

    A granted path inside a hidden one is dropped; a granted tree holding a hidden path is replaced by
    its other entries, level by level (symlinks there are skipped: their target is granted, or not, by
    its own tree). Paths are compared resolved, so a symlinked data dir is hidden all the same; a hidden
    path that does not exist splits nothing.
    """
    hidden_real = [os.path.realpath(path) for path in hidden if os.path.lexists(path)]
    rules: dict[str, int] = {}
    for path, access in grants:
        real = os.path.realpath(path)
        if not os.path.exists(real) or any(_inside(real, h) for h in hidden_real):
            continue
        below = [h for h in hidden_real if _inside(h, real)]
        for rule_path, rule_access in _around(real, below, access) if below else [(real, access)]:
            rules[rule_path] = rules.get(rule_path, 0) | rule_access
    return sorted(rules.items())


def _around(directory: str, hidden: list[str], access: int) -> Iterator[tuple[str, int]]:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        child = entry.path
        if child in hidden or entry.is_symlink():
            continue
        below = [h for h in hidden if _inside(h, child)]
        if below and entry.is_dir(follow_symlinks=False):
            yield from _around(child, below, access)
        elif not below:
            yield child, access
