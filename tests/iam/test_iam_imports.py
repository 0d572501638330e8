"""IAM stands on its own: it imports nothing from CTS (traces, trackers, notifications, SMN), nothing from
the HTTP layer or the CLI, and no HTTP client (signing a request as a client is ``opencts.client``'s)."""

from __future__ import annotations

import ast
from pathlib import Path

import opencts.iam

FORBIDDEN = (
    "opencts.api",
    "opencts.cli",
    "opencts.client",
    "opencts.consumers",
    "opencts.notifications",
    "opencts.smn",
    "opencts.traces",
    "opencts.trackers",
    "httpx",
    "fastapi",
    "starlette",
)


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_iam_imports_nothing_above_or_beside_it() -> None:
    files = sorted(Path(opencts.iam.__file__).parent.glob("*.py"))
    assert len(files) > 10
    offending = {
        f"{path.name}: {module}"
        for path in files
        for module in imported_modules(path)
        if any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN)
    }
    assert not offending
