"""The client for asyncio apps: the same buffer, batches and outbox, with the flusher an asyncio task.

``record(...)`` is a plain (non-async) call that appends to the buffer, so middleware calls it without an
``await`` on the request's path. The flusher task starts with :meth:`AsyncClient.start` (or the first
record made inside a running loop), posts with ``httpx.AsyncClient``, and does the outbox's file I/O in a
worker thread so the event loop never waits on the disk. ``aclose()`` seals, sends for up to
``shutdown_timeout`` seconds, and leaves the rest in the spool for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import TracebackType

import httpx

from opencts.client.base import BaseClient
from opencts.client.delivery import classify, transport_failure
from opencts.client.settings import ClientSettings

__all__ = ["AsyncClient"]

log = logging.getLogger("opencts.client")


class AsyncClient(BaseClient):
    """Records traces and delivers them from a task of the running event loop.

    ``http`` replaces the ``httpx.AsyncClient`` (transport, proxies); the client still signs every request.
    """

    def __init__(
        self, settings: ClientSettings | None = None, *, http: httpx.AsyncClient | None = None
    ) -> None:
        super().__init__(settings)
        self._http = http
        self._owns_http = http is None
        self._task: asyncio.Task[None] | None = None
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._started = False

    async def start(self) -> None:
        """Start the flusher in the running loop (idempotent)."""
        self._ensure_started(asyncio.get_running_loop())

    def _ensure_started(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._task is not None or self._closed or not self.settings.enabled:
            return
        self._loop = loop
        self._event = asyncio.Event()
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.settings.timeout)
        self._task = loop.create_task(self._run(), name="opencts-client-flusher")
        self._started = True

    def _wake(self) -> None:
        if self._task is None:
            try:
                self._ensure_started(asyncio.get_running_loop())
            except RuntimeError:  # recorded outside the loop: the first record inside it starts the task
                return
        loop, event = self._loop, self._event
        if loop is None or event is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            loop.call_soon_threadsafe(event.set)

    # -- the task ----------------------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._event is not None
        interval = self.settings.flush_interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), interval)
            self._event.clear()
            stopping = self._stopping
            try:
                await asyncio.to_thread(self.seal)
                self._take_flush_request()
                if self._due():
                    await self._deliver()
            except asyncio.CancelledError:
                raise
            except Exception:  # the flusher must outlive any surprise; the batches stay in the outbox
                log.exception("OpenCTS client flusher error")
            if stopping:
                return

    async def _deliver(self) -> None:
        assert self._http is not None
        for key in await asyncio.to_thread(self.outbox.waiting):
            if self._past_deadline():
                return
            claim = await asyncio.to_thread(self.outbox.claim, key)
            if claim is None:
                continue
            batch = claim.batch
            try:
                resp = await self._http.post(
                    self._url(batch), content=batch.body, headers=self._headers(batch), auth=self._signer
                )
                outcome = classify(resp.status_code, resp.headers, resp.content, batch.count)
            except httpx.HTTPError as exc:
                outcome = transport_failure(exc)
            except BaseException:
                self.outbox.release(claim)
                raise
            if await asyncio.to_thread(self.settle, claim, outcome) is not None:
                return  # the rest waits for the next due time

    # -- control -----------------------------------------------------------------------------------------

    async def flush(self, timeout: float | None = None) -> bool:
        """Seal and send everything now, retrying at once; True when nothing is left buffered or waiting
        before ``timeout`` seconds (default ``shutdown_timeout``)."""
        await self.start()
        if self._task is None or self._task.done():
            return self.idle()
        assert self._event is not None
        deadline = time.monotonic() + (self.settings.shutdown_timeout if timeout is None else timeout)
        self._flush_requested = True
        self._event.set()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.005)
            if self._flush_requested:
                continue  # the flusher has not taken the request yet
            if self.idle():
                return True
            if self._due():
                self._event.set()  # the flusher checks the due time itself
        return self.idle()

    async def aclose(self, timeout: float | None = None) -> None:
        """Seal what is buffered, send for up to ``timeout`` seconds (default ``shutdown_timeout``), stop;
        batches not sent stay in the spool for the next start."""
        if self._closed:
            return
        self._closed = True
        task = self._task
        wait = self.settings.shutdown_timeout if timeout is None else timeout
        if task is not None and not task.done() and self._event is not None:
            self._begin_stop(wait)
            self._event.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), wait + self.settings.timeout + 1)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        else:
            await asyncio.to_thread(self.seal)
        if self._owns_http and self._http is not None:
            await self._http.aclose()
        self.outbox.close()

    async def __aenter__(self) -> AsyncClient:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
