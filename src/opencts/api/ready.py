"""``/ready``: whether this node should get traffic. ``/health`` says only that the process is up.

Ready means: the database answers, its schema is at this code's migration head (a node started against a
database another version migrated must not serve it), and every consumer task is still running and has
completed a step within ``OPENCTS_READY_STUCK_INTERVALS`` of its poll intervals. Anyone may ask (an
orchestrator's probe cannot sign), so the answer names only the failing checks; the reasons go to the log.
"""

from __future__ import annotations

import asyncio
import logging
from functools import cache

import orjson
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Connection, text

from opencts.api.deps import ServicesDep
from opencts.consumers import ConsumerRunner
from opencts.store.migrate import alembic_config

router = APIRouter(tags=["health"])
log = logging.getLogger("opencts.ready")

#: a database that has not answered by then counts as unreachable
DATABASE_TIMEOUT = 3.0


@cache
def migration_heads() -> frozenset[str]:
    """The head revisions this code migrates to (read once: the scripts do not change while running)."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def _schema(conn: Connection) -> frozenset[str]:
    conn.execute(text("SELECT 1"))
    return frozenset(MigrationContext.configure(conn).get_current_heads())


def stuck_consumers(
    runners: list[ConsumerRunner], tasks: list[asyncio.Task[None]], intervals: int
) -> list[str]:
    """Consumers whose task ended, or that completed no step in ``intervals`` poll intervals."""
    problems = [f"{task.get_name()} stopped" for task in tasks if task.done()]
    problems += [f"{r.consumer.name} stuck" for r in runners if r.stuck(intervals)]
    return problems


async def check(request: Request, services: ServicesDep) -> dict[str, str]:
    """Each check's problem, by name; empty when ready."""
    failing: dict[str, str] = {}
    try:
        current = await asyncio.wait_for(services.db.read(_schema), DATABASE_TIMEOUT)
    except Exception as exc:  # any failure to answer is "unreachable"; the kind goes to the log
        failing["database"] = f"unreachable: {type(exc).__name__}"
    else:
        if current != migration_heads():
            failing["migrations"] = (
                f"schema at {sorted(current)}, this code expects {sorted(migration_heads())}"
            )
    state = request.app.state
    runners: list[ConsumerRunner] = getattr(state, "consumer_runners", [])
    tasks: list[asyncio.Task[None]] = getattr(state, "consumer_tasks", [])
    if problems := stuck_consumers(runners, tasks, services.settings.ready_stuck_intervals):
        failing["consumers"] = ", ".join(problems)
    return failing


@router.get("/ready", name="ready", summary="Readiness: database, schema and consumers")
async def ready(request: Request, services: ServicesDep) -> Response:
    failing = await check(request, services)
    if not failing:
        return Response(b'{"status":"ready"}', media_type="application/json")
    log.warning("not ready: %s", "; ".join(f"{name}: {why}" for name, why in failing.items()))
    body = orjson.dumps({"status": "not ready", "failing": sorted(failing)})
    return Response(body, status_code=503, media_type="application/json")
