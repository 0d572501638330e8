"""``create_app(settings)``: builds the ASGI app; the lifespan opens everything, nothing happens at import."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from opencts import __version__
from opencts.api import (
    audit,
    cts,
    docs,
    errors,
    functions,
    headers,
    health,
    iam,
    iam_admin,
    notifications,
    traces,
)
from opencts.api import smn as smn_api
from opencts.api.deps import Services
from opencts.clock import DAY_MS
from opencts.config import Settings
from opencts.consumers import ConsumerRunner, LogSignal
from opencts.functions.service import FunctionService
from opencts.iam.authenticate import Authenticator
from opencts.iam.bootstrap import bootstrap, write_credentials
from opencts.iam.keyring import unlock
from opencts.iam.secrets import SecretBox
from opencts.notifications.notifier import NotifierConsumer
from opencts.smn import signing, subscriptions
from opencts.smn.service import SmnService
from opencts.store import Database, migrate
from opencts.store.files import tighten_dir
from opencts.traces.retention import RetentionConsumer
from opencts.traces.workers import PreparePool, default_workers
from opencts.traces.writer import TraceWriter
from opencts.trackers.catalogue import CatalogueConsumer
from opencts.trackers.recording import PolicyCache

log = logging.getLogger("opencts")


@dataclass(frozen=True)
class Opened:
    """What :func:`open_store` opened: the database, the master key's box and the SMN signing key."""

    db: Database
    box: SecretBox
    signer: signing.Signer


def open_store(settings: Settings) -> Opened:
    """Open, migrate, unlock and bootstrap the database; raises ``MasterKeyError`` on a bad master key.

    The data dir is made private first (0700, files 0600), so nothing written afterwards is ever readable
    by others. Bootstrap runs only on an empty database: a node joining one that another node set up
    (a shared PostgreSQL) takes the account, the master key check and the signing key from it.
    """
    tighten_dir(settings.data_dir)
    db = Database(settings.resolved_database_url, data_dir=settings.data_dir)
    try:
        migrate.upgrade(db)
        master = settings.master_key.get_secret_value() if settings.master_key else None
        box = db.write_sync(
            lambda conn: unlock(
                conn, master_key=master, key_file=settings.master_key_file, data_dir=settings.data_dir
            )
        )
        password = settings.admin_password.get_secret_value() if settings.admin_password else None
        creds = db.write_sync(
            lambda conn: bootstrap(conn, box=box, region=settings.region, password=password)
        )
        if creds is not None:
            write_credentials(settings.credentials_path, creds)
            log.info("first start: credentials written to %s", settings.credentials_path)
        signer = db.write_sync(lambda conn: signing.load_or_create(conn, box, settings.data_dir))
        if db.write_sync(lambda conn: subscriptions.seal_plain_headers(conn, box)):
            log.info("sealed the custom webhook headers stored in plain text under the master key")
        signing.remove_legacy_files(settings.data_dir, signer)
    except BaseException:
        db.close()
        raise
    return Opened(db, box, signer)


def open_database(settings: Settings) -> Database:
    """:func:`open_store`, for callers that need only the database (the CLI, benchmarks)."""
    return open_store(settings).db


def create_app(settings: Settings | None = None, *, start_consumers: bool = True) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = await asyncio.to_thread(open_store, settings)
        db = opened.db
        db.start_background()
        signal = LogSignal()
        policies = PolicyCache()
        workers = settings.ingest_workers
        pool = PreparePool(default_workers() if workers is None else workers)
        pool.start()
        services = Services(
            settings=settings,
            db=db,
            signal=signal,
            authenticator=Authenticator(db, opened.box),
            writer=TraceWriter(
                db,
                signal,
                retention_ms=settings.retention_ms,
                policy=lambda pid: policies.get(db, pid),
                max_pending=settings.max_pending_writes,
                pool=pool,
            ),
            box=opened.box,
            policies=policies,
            smn=SmnService.open(db, settings, opened.signer, opened.box),
            functions=FunctionService(db, settings, opened.box),
        )
        app.state.services = services
        runners = [
            ConsumerRunner(db, RetentionConsumer(db, retention_ms=settings.retention_ms), services.signal),
            ConsumerRunner(db, CatalogueConsumer(db), services.signal),
            ConsumerRunner(
                db,
                NotifierConsumer(
                    db,
                    services.smn,
                    cache=services.matchers,
                    keep_alarms_ms=settings.retention_ms + DAY_MS,
                ),
                services.signal,
            ),
        ]
        tasks = (
            [asyncio.create_task(r.run_forever(), name=r.consumer.name) for r in runners]
            if start_consumers
            else []
        )
        if start_consumers and services.smn is not None:
            services.smn.start()
        if start_consumers and services.functions is not None:
            services.functions.start()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if services.functions is not None:
                await services.functions.close()
            if services.smn is not None:
                await services.smn.close()
            await asyncio.to_thread(pool.close)
            await services.authenticator.close()
            db.close()

    app = FastAPI(
        title="OpenCTS",
        version=__version__,
        description="A self-hosted Cloud Trace Service speaking the CTS v3 API.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(audit.AuditMiddleware)
    app.add_middleware(errors.RequestIdMiddleware)
    app.add_middleware(headers.SecurityHeadersMiddleware)
    if settings.trusted_proxies:  # outermost, so every layer below sees the forwarded client address
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)
    docs.install(app)
    errors.install(app)
    app.include_router(health.router)
    app.include_router(iam.router)
    app.include_router(iam_admin.router)
    app.include_router(traces.router)
    app.include_router(cts.router)
    app.include_router(notifications.router)
    app.include_router(smn_api.router)
    app.include_router(functions.router)
    return app
