"""The database handle: one engine, one writer lane, a pool of readers.

SQLite allows one writer at a time, so every write runs on a single thread (as datasette does) inside
``BEGIN IMMEDIATE``; readers never wait for it in WAL mode. PostgreSQL gets a few writer threads. How
much may wait for the lane is decided above it: ingest's group commit refuses batches past its bound
(:class:`~opencts.traces.writer.GroupCommit`), and every other writer waits its turn.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from opencts.store.files import DIR_MODE, private_file, tighten_file
from opencts.store.term_index import TermIndex

T = TypeVar("T")
log = logging.getLogger("opencts.store")
#: seconds between WAL checkpoints run beside the writer (it never checkpoints itself)
CHECKPOINT_SECONDS = 0.5
#: how often a changed term index is written to disk for the next start, and how much change is worth it
SNAPSHOT_SECONDS = 300.0
SNAPSHOT_ROWS = 100_000


def normalise_url(url: str) -> str:
    """Pick the drivers we ship with: psycopg 3 for PostgreSQL, the standard library for SQLite."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def private_files(path: Path) -> None:
    """Give a SQLite database and its companions mode 0600 before SQLite opens it.

    SQLite creates the ``-wal`` and ``-shm`` files with the database file's own mode, so creating the
    database file 0600 first keeps all three private whatever the umask; files left by an older, looser
    start are tightened too. A directory made here is 0700.
    """
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=DIR_MODE)
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal", ".terms"):
        tighten_file(path.with_name(path.name + suffix))


@contextmanager
def erasing_overwrites(conn: Connection) -> Iterator[None]:
    """Within the block, SQLite zeroes what it overwrites or deletes instead of leaving it in free space.

    Replacing a plain-text secret by its sealed form would otherwise leave the old bytes readable in the
    database file's free space. The setting is per connection, so it is turned off again: bulk deletes
    (retention) should not pay for zeroing. PostgreSQL needs nothing here (old row versions are vacuumed).
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    conn.exec_driver_sql("PRAGMA secure_delete=ON")
    try:
        yield
    finally:
        conn.exec_driver_sql("PRAGMA secure_delete=OFF")


def _sqlite_engine(url: str, *, immediate: bool, pragmas: dict[str, int] | None = None) -> Engine:
    path = make_url(url).database
    if path and path != ":memory:":
        private_files(Path(path))
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
            # a WAL emptied by a checkpoint is cut back to this size instead of staying at its peak
            "journal_size_limit=67108864",
            *(f"{name}={value}" for name, value in (pragmas or {}).items()),
        ):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """Owns the engines and the threads that use them. Build one per process; ``close()`` on the way out."""

    def __init__(self, url: str, *, data_dir: Path | None = None) -> None:
        self.url = normalise_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        #: per-connection settings of the SQLite writer that can change while running
        self._writer_pragmas = {"wal_autocheckpoint": 1000}
        if self.dialect == "sqlite":
            self.write_engine = _sqlite_engine(self.url, immediate=True, pragmas=self._writer_pragmas)
            self.read_engine = _sqlite_engine(self.url, immediate=False)
            writers = 1
        else:
            self.write_engine = create_engine(self.url, pool_size=8, max_overflow=4, pool_pre_ping=True)
            self.read_engine = self.write_engine
            writers = 4
        self._writer = ThreadPoolExecutor(writers, thread_name_prefix="opencts-write")
        self._readers = ThreadPoolExecutor(8, thread_name_prefix="opencts-read")
        self._pending = 0
        self._path = make_url(self.url).database if self.dialect == "sqlite" else None
        #: the access path for filters on both backends (see ``term_index``); an in-memory SQLite database
        #: (a test's) has none, so its filtered queries are answered by SQL alone
        self.term_index: TermIndex | None = None if self._path == ":memory:" else TermIndex()
        #: where the term index is kept between runs (derived data: deleting it only slows the next start):
        #: beside the SQLite file; for PostgreSQL in this node's data dir, if it has one
        self.term_snapshot: Path | None = None
        if self.term_index is not None and self._path:
            self.term_snapshot = Path(self._path + ".terms")
        elif self.term_index is not None and data_dir is not None:
            self.term_snapshot = data_dir / "postgresql.terms"
        self._closing = threading.Event()
        self._background: list[threading.Thread] = []

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

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a write transaction on the writer lane; the result is durable when this returns."""
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._writer, self.write_sync, fn)
        finally:
            self._pending -= 1

    async def read(self, fn: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self.read_sync, fn)

    def start_background(self) -> None:
        """Start the helpers: the term index's first catch-up, and SQLite's WAL checkpointer."""
        if self._background:
            return
        helpers = [(self._warm_term_index, "term-index")]
        if self.is_sqlite:
            # From now on the writer never checkpoints inside a commit; the checkpointer does it beside it,
            # so appends don't stall while the WAL is copied back into the database.
            self._writer_pragmas["wal_autocheckpoint"] = 0
            self.write_sync(lambda conn: conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0"))
            helpers.append((self._checkpoint_loop, "checkpoint"))
        for target, name in helpers:
            thread = threading.Thread(target=target, name=f"opencts-{name}", daemon=True)
            thread.start()
            self._background.append(thread)

    def _checkpoint_loop(self) -> None:
        """Copy the WAL back into the database beside the writer.

        PASSIVE never waits for the writer or for readers: it copies what it can, and the WAL starts
        over (cut to ``journal_size_limit``) once everything in it has been copied.
        """
        with self.read_engine.connect() as conn:
            raw: Any = conn.connection.driver_connection
            while not self._closing.wait(CHECKPOINT_SECONDS):
                try:
                    raw.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except Exception:  # a busy or closing database is retried next round
                    log.debug("checkpoint skipped", exc_info=True)

    def _warm_term_index(self) -> None:
        """Bring the term index up to date, then keep a copy of it on disk for the next start.

        Reading a snapshot takes a second where reading ten million rows takes minutes; whatever the
        snapshot lacks is read from the log in short reads (an open reader keeps SQLite from
        checkpointing the WAL).
        """
        index, path = self.term_index, self.term_snapshot
        if index is None:
            return
        try:
            if path is not None and self.read_sync(lambda conn: index.load(path, conn)):
                log.info("term index: read %s (up to seq %d)", path.name, index.upto)
            saved = index.upto
            while not self._closing.is_set():
                if self.read_sync(lambda conn: index.refresh(conn, max_rows=200_000)):
                    break
            index.tidy()
            if path is None:
                return  # no data dir to keep it in: the next start reads the log again
            # a long catch-up is saved at once (a crash now should not mean another), then every few minutes
            while not self._closing.is_set():
                if index.upto - saved >= SNAPSHOT_ROWS and self.read_sync(
                    lambda conn: index.save(path, conn)
                ):
                    saved = index.upto
                index.tidy()
                self._closing.wait(SNAPSHOT_SECONDS)
        except Exception:  # e.g. the database closing under us; queries catch up on their own
            log.warning("term index upkeep stopped", exc_info=True)

    def close(self) -> None:
        self._closing.set()
        for thread in self._background:
            thread.join(timeout=30)
        index, snapshot = self.term_index, self.term_snapshot
        if self._background and index is not None and snapshot is not None:
            try:
                self.read_sync(lambda conn: index.save(snapshot, conn))
            except Exception:  # a lost snapshot only means a slower next start
                log.warning("term index snapshot not written", exc_info=True)
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()
