"""What handlers need, named: the service container, the body reader, the project guard."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select

from opencts.config import Settings
from opencts.consumers import LogSignal
from opencts.errors import NotFound, PayloadTooLarge, UnsupportedMediaType
from opencts.store import Database
from opencts.store.tables import projects


@dataclass
class Services:
    """Everything the lifespan opened; handed to handlers through ``app.state``."""

    settings: Settings
    db: Database
    signal: LogSignal
    known_projects: set[str] = field(default_factory=set)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def read_body(request: Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes, refusing larger bodies before they are buffered whole.

    The body is kept on the request so later readers (signature checks, audit) see the same bytes.
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body
    return body


def require_json(request: Request) -> None:
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype not in ("application/json", ""):
        raise UnsupportedMediaType(f"send application/json, not {ctype}")


async def ensure_project(services: Services, project_id: str) -> None:
    if project_id in services.known_projects:
        return
    found = await services.db.read(
        lambda conn: conn.execute(select(projects.c.id).where(projects.c.id == project_id)).first()
    )
    if found is None:
        raise NotFound(f"project {project_id} does not exist")
    services.known_projects.add(project_id)
