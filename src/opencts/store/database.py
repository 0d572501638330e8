"""The database handle: one engine, one writer lane, a pool of readers.

SQLite allows one writer at a time, so every write runs on a single thread (as datasette does) inside
``BEGIN IMMEDIATE``; readers never wait for it in WAL mode. PostgreSQL gets a few writer threads. The
number of queued write jobs is bounded: past ``max_pending_writes`` callers get :class:`Overloaded`
(HTTP 429) instead of an ever-growing queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from opencts.errors import Overloaded

T = TypeVar("T")


def normalise_url(url: str) -> str:
    """Pick the drivers we ship with: psycopg 3 for PostgreSQL, the standard library for SQLite."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    path = make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # LIFO: the most recently used connection comes back first, so a few warm connections (and their page
    # caches) serve most reads instead of every pooled connection growing its own cache.
    engine = create_engine(url, pool_size=8 if not immediate else 1, max_overflow=8, pool_use_lifo=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin (SQLAlchemy's pysqlite recipe).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",  # an acknowledged batch survives power loss, not only a crash
            "busy_timeout=10000",
            "foreign_keys=ON",
            # the writer keeps hot index pages for appends; readers lean on the OS page cache instead of
            # each pooled connection holding its own large copy
            f"cache_size={-131072 if immediate else -32768}",
            "temp_store=MEMORY",
        ):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """Owns the engines and the threads that use them. Build one per process; ``close()`` on the way out."""

    def __init__(self, url: str, *, max_pending_writes: int = 64) -> None:
        self.url = normalise_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        if self.dialect == "sqlite":
            self.write_engine = _sqlite_engine(self.url, immediate=True)
            self.read_engine = _sqlite_engine(self.url, immediate=False)
            writers = 1
        else:
            self.write_engine = create_engine(self.url, pool_size=8, max_overflow=4, pool_pre_ping=True)
            self.read_engine = self.write_engine
            writers = 4
        self._writer = ThreadPoolExecutor(writers, thread_name_prefix="opencts-write")
        self._readers = ThreadPoolExecutor(8, thread_name_prefix="opencts-read")
        self._max_pending = max_pending_writes
        self._pending = 0

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def pending_writes(self) -> int:
        return self._pending

    def write_sync(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one write transaction on the calling thread (CLI, migrations, tests)."""
        with self.write_engine.begin() as conn:
            return fn(conn)

    def read_sync(self, fn: Callable[[Connection], T]) -> T:
        with self.read_engine.connect() as conn:
            return fn(conn)

    async def write(self, fn: Callable[[Connection], T], *, shed: bool = False) -> T:
        """Run ``fn`` in a write transaction on the writer lane; the result is durable when this returns.

        With ``shed=True`` the call is refused with :class:`Overloaded` when the lane is full, which is
        what ingest wants; internal writers (consumers) wait their turn instead.
        """
        if shed and self._pending >= self._max_pending:
            raise Overloaded("too many trace batches are waiting to be written; retry shortly", retry_after=1)
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._writer, self.write_sync, fn)
        finally:
            self._pending -= 1

    async def read(self, fn: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self.read_sync, fn)

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()
