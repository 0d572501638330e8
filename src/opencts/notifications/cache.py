"""``MatcherCache``: each project's compiled :class:`~opencts.notifications.matcher.Matcher`, kept warm.

The notifier asks for a project's matcher on every batch, and compiling one (100 notifications of 1,000
operations) takes long enough that it must not happen per batch, nor on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection

from opencts.notifications import repository
from opencts.notifications.matcher import Matcher, compile_matcher
from opencts.store import Database
from opencts.ttlcache import TtlCache

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Compiled:
    #: every notification's (id, update_time): what the matcher was compiled from
    stamp: tuple[tuple[str, int], ...]
    matcher: Matcher


def _load(conn: Connection, project_id: str, stale: _Compiled | None) -> _Compiled:
    stamp = repository.fingerprint(conn, project_id)
    if stale is not None and stale.stamp == stamp:
        return stale
    return _Compiled(stamp, compile_matcher(repository.load_enabled(conn, project_id)))


class MatcherCache:
    """Per-project compiled matchers, each trusted for ``ttl`` seconds.

    The notification routes of this process call :meth:`invalidate`, so a change here applies to the very
    next batch; another process sharing the database (a second server on PostgreSQL) sees it within
    ``ttl``. When the TTL runs out, a cheap look at every notification's ``update_time`` decides whether
    anything changed; only then is the project recompiled. Loading and compiling run on a reader thread,
    not on the event loop (see :class:`~opencts.ttlcache.TtlCache` for what an invalidation during a load
    does).
    """

    def __init__(
        self, ttl: float = 2.0, clock: Callable[[], float] = time.monotonic, *, warm_delay: float = 0.3
    ) -> None:
        self._compiled: TtlCache[str, _Compiled] = TtlCache(ttl, clock)
        #: set by a running notifier: only then is it worth compiling ahead of the next trace
        self.autowarm = False
        self.warm_delay = warm_delay
        self._warming: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, db: Database, project_id: str) -> Matcher:
        async def load(stale: _Compiled | None) -> _Compiled:
            return await db.read(lambda conn: _load(conn, project_id, stale))

        return (await self._compiled.get(project_id, load)).matcher

    def invalidate(self, project_id: str) -> None:
        self._compiled.invalidate(project_id)

    def warm(self, db: Database, project_id: str) -> None:
        """Recompile the project soon, in the background, so the next trace does not wait for it.

        Called by the routes after :meth:`invalidate`. A burst of changes (a script creating 100
        notifications) costs one compile per ``warm_delay``, not one per change.
        """
        if not self.autowarm or project_id in self._warming:
            return

        async def run() -> None:
            await asyncio.sleep(self.warm_delay)
            self._warming.discard(project_id)  # a change from here on schedules another warm-up
            try:
                await self.get(db, project_id)
            except Exception:  # the next batch compiles it instead; nothing is lost
                log.warning("compiling the notifications of project %s failed", project_id, exc_info=True)

        self._warming.add(project_id)
        task = asyncio.get_running_loop().create_task(run(), name=f"notifications-warm-{project_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
