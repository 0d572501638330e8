"""``create_app(settings)``: builds the ASGI app; the lifespan opens everything, nothing happens at import."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from opencts import __version__
from opencts.api import (
    access_log,
    archive_query,
    archive_status,
    archive_verifications,
    audit,
    cts,
    docs,
    errors,
    function_triggers,
    functions,
    headers,
    health,
    iam,
    iam_admin,
    kms,
    ledger,
    lts,
    notifications,
    ready,
    source_tokens,
    traces,
)
from opencts.api import lts_sinks as lts_sinks_api
from opencts.api import metrics as metrics_api
from opencts.api import smn as smn_api
from opencts.api import sources as sources_api
from opencts.api.deps import Services
from opencts.archive import digests, planner, storage
from opencts.archive.transfer import Transfer, sealer
from opencts.archive.verification_worker import VerificationWorker, unwrapper
from opencts.clock import DAY_MS
from opencts.config import Settings
from opencts.console import archive_pages as console_archive
from opencts.console import functions_pages as console_functions
from opencts.console import pages as console_pages
from opencts.console.notify_pages import router as console_notify_router
from opencts.console.topic_pages import router as console_topic_router
from opencts.consumers import ConsumerRunner, LogSignal
from opencts.functions import agency_storage
from opencts.functions.credentials import AgencyCredentials
from opencts.functions.lts_triggers import LtsTriggerFeeder
from opencts.functions.service import FunctionService
from opencts.iam.authenticate import Authenticator
from opencts.kms.service import KeyService, open_box
from opencts.ledger.consumer import start_ledger
from opencts.lts.sinks.forwarder import start_sinks
from opencts.lts.writer import LtsConsumer, holding
from opencts.metrics import listener as metrics_listener
from opencts.notifications.notifier import NotifierConsumer
from opencts.opening import open_store
from opencts.smn.service import SmnService
from opencts.sources.cadf_consumer import start_cadf
from opencts.traces.retention import RetentionConsumer
from opencts.traces.retention_hold import ArchiveHold
from opencts.traces.workers import PreparePool, default_workers
from opencts.traces.writer import TraceWriter
from opencts.trackers.catalogue import CatalogueConsumer
from opencts.trackers.recording import PolicyCache

log = logging.getLogger("opencts")


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
        if services.functions is not None:
            services.functions.credentials = AgencyCredentials(
                db, opened.box, storage=agency_storage.grant_from(settings)
            )
        kms = services.kms = KeyService(db, await asyncio.to_thread(open_box, db, settings, opened.box))
        objects = services.storage = await asyncio.to_thread(storage.open_store, settings)
        transfer = services.transfer = Transfer(db, objects, settings, seal=sealer(kms))
        digest_writer = services.digests = digests.open_writer(db, objects, settings, opened.box)
        verifier = services.verifications = VerificationWorker(
            db,
            objects,
            unwrap=unwrapper(kms),
            writer=services.writer,
            interval_s=settings.archive_verify_interval,
            poll_seconds=min(2.0, settings.transfer_interval),
        )
        app.state.services = services
        runners = [
            ConsumerRunner(
                db,
                RetentionConsumer(
                    db,
                    retention_ms=settings.retention_ms,
                    hold=holding(planner.retention_hold),  # the archive's and the lts consumer's
                    gate=ArchiveHold.hours(settings.archive_max_hold_hours),
                ),
                services.signal,
            ),
            ConsumerRunner(db, CatalogueConsumer(db), services.signal),
            ConsumerRunner(db, LtsConsumer(db, max_hold_hours=settings.lts_max_hold_hours), services.signal),
            ConsumerRunner(
                db,
                NotifierConsumer(
                    db,
                    services.smn,
                    functions=services.functions,
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
        app.state.consumer_runners = runners if start_consumers else []  # what /ready watches
        app.state.consumer_tasks = tasks
        if start_consumers:  # the Merkle ledger and its checkpoints; the archive's transfer and digests
            tasks += start_ledger(db, settings, opened.box)
            tasks += start_cadf(settings, services.writer, db)  # when OPENCTS_CADF_AMQP_URL is set
            tasks += start_sinks(db, settings, opened.box, opened.signer)  # LTS streams to their receivers
            transfer.start()
            digest_writer.start()
            verifier.start()  # scheduled and asked-for verifications of trackers' archives
        if start_consumers and services.smn is not None:
            services.smn.start()
        if start_consumers and services.functions is not None:
            services.functions.start()
            # batches of LTS streams to the functions their LTS triggers name
            feeder = LtsTriggerFeeder(db, wake=services.functions.wake)
            tasks.append(asyncio.create_task(feeder.run_forever(), name="lts-triggers"))
        listener = metrics_listener.start(settings, db)  # OPENCTS_METRICS_ADDRESS: /metrics apart
        try:
            yield
        finally:
            metrics_listener.stop(listener)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await transfer.close()
            await digest_writer.close()
            await verifier.stop()
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
    app.add_middleware(access_log.AccessLogMiddleware)  # outside the request id: it logs the id sent
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
    app.include_router(console_notify_router)  # the console's Key Event Notifications
    app.include_router(console_topic_router)  # the console's SMN topics and subscriptions
    app.include_router(function_triggers.router)
    app.include_router(functions.router)
    app.include_router(kms.router)
    app.include_router(ledger.router)
    app.include_router(archive_query.router)
    app.include_router(source_tokens.router)
    app.include_router(sources_api.router)
    app.include_router(archive_status.router)
    app.include_router(archive_verifications.router)
    app.include_router(ready.router)
    app.include_router(metrics_api.router)
    app.include_router(console_pages.router)  # the web console, /console
    app.include_router(console_functions.router)  # the console's Functions pages
    app.include_router(console_archive.router)  # the console's Archive page
    app.include_router(lts.router)
    app.include_router(lts_sinks_api.router)
    return app
