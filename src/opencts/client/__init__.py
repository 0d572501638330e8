"""Talking to an OpenCTS server as a client does: shared by the CLI, the tests and the benchmarks, and the
client library applications record their own operations with.

``Client`` (threads) and ``AsyncClient`` (asyncio) batch recorded traces, keep sealed batches in a spool
on disk until OpenCTS has them, and retry with backoff; the middleware in ``opencts.client.asgi``,
``opencts.client.wsgi`` and ``opencts.client.django`` records each state-changing request of an app.
docs/client.md tells how to use them. Names are imported lazily, so ``opencts.client.signing`` stays as
light as it was for the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opencts.client.aio import AsyncClient
    from opencts.client.base import Stats
    from opencts.client.recording import Resource
    from opencts.client.settings import ClientSettings
    from opencts.client.sync import Client

__all__ = ["AsyncClient", "Client", "ClientSettings", "Resource", "Stats"]

_WHERE = {
    "AsyncClient": "opencts.client.aio",
    "Client": "opencts.client.sync",
    "ClientSettings": "opencts.client.settings",
    "Resource": "opencts.client.recording",
    "Stats": "opencts.client.base",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'opencts.client' has no attribute {name!r}")
