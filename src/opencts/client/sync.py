"""The client for threaded apps (Flask, Django, scripts): a flusher thread batches, spools and sends.

``Client.record(...)`` appends to a buffer and returns; the thread seals the buffer every
``flush_interval`` (or once a batch's worth is waiting), writes the batches to the outbox, and posts them
with ``httpx`` signed with the AK/SK. When OpenCTS is down the batches wait in the outbox and the thread
retries with backoff; ``close()`` (also run at interpreter exit) seals what is buffered, sends for up to
``shutdown_timeout`` seconds, and leaves the rest in the spool for the next start to send.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from types import TracebackType

import httpx

from opencts.client.base import BaseClient
from opencts.client.delivery import classify, transport_failure
from opencts.client.settings import ClientSettings

__all__ = ["Client"]

log = logging.getLogger("opencts.client")


class Client(BaseClient):
    """Records traces and delivers them from a background thread. Thread-safe; one per process is enough.

    ``http`` replaces the ``httpx.Client`` (transport, proxies); the client still signs every request.
    """

    def __init__(self, settings: ClientSettings | None = None, *, http: httpx.Client | None = None) -> None:
        super().__init__(settings)
        self._http = http or httpx.Client(timeout=self.settings.timeout)
        self._owns_http = http is None
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        #: a weak reference for the fork hook, which must not keep a discarded client alive
        self._ref = weakref.ref(self)
        if self.settings.enabled:
            self._start()
            _close_at_exit(self)
            os.register_at_fork(after_in_child=lambda: _after_fork(self._ref))

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="opencts-client-flusher", daemon=True)
        self._thread.start()

    def _wake(self) -> None:
        self._event.set()

    # -- the thread --------------------------------------------------------------------------------------

    def _run(self) -> None:
        interval = self.settings.flush_interval
        while True:
            self._event.wait(interval)
            self._event.clear()
            stopping = self._stopping
            try:
                self.seal()
                self._take_flush_request()
                if self._due():
                    self._deliver()
            except Exception:  # the flusher must outlive any surprise; the batches stay in the outbox
                log.exception("OpenCTS client flusher error")
            if stopping:
                return

    def _deliver(self) -> None:
        for key in self.outbox.waiting():
            if self._past_deadline():
                return
            claim = self.outbox.claim(key)
            if claim is None:
                continue
            batch = claim.batch
            try:
                resp = self._http.post(
                    self._url(batch), content=batch.body, headers=self._headers(batch), auth=self._signer
                )
                outcome = classify(resp.status_code, resp.headers, resp.content, batch.count)
            except httpx.HTTPError as exc:
                outcome = transport_failure(exc)
            except BaseException:
                self.outbox.release(claim)
                raise
            if self.settle(claim, outcome) is not None:
                return  # the rest waits for the next due time

    # -- control -----------------------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Seal and send everything now, retrying at once; True when nothing is left buffered or waiting
        before ``timeout`` seconds (default ``shutdown_timeout``)."""
        if self._thread is None or not self._thread.is_alive():
            return self.idle()
        deadline = time.monotonic() + (self.settings.shutdown_timeout if timeout is None else timeout)
        self._flush_requested = True
        self._event.set()
        while time.monotonic() < deadline:
            time.sleep(0.005)
            if self._flush_requested:
                continue  # the flusher has not taken the request yet
            if self.idle():
                return True
            if self._due():
                self._event.set()  # the flusher checks the due time itself
        return self.idle()

    def close(self, timeout: float | None = None) -> None:
        """Seal what is buffered into the outbox, send for up to ``timeout`` seconds (default
        ``shutdown_timeout``), and stop; batches not sent stay in the spool for the next start."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        thread = self._thread
        if thread is not None and thread.is_alive():
            wait = self.settings.shutdown_timeout if timeout is None else timeout
            self._begin_stop(wait)
            self._event.set()
            thread.join(wait + self.settings.timeout + 1)
        else:
            self.seal()
        _LIVE.discard(self)
        if self._owns_http:
            self._http.close()
        self.outbox.close()

    def _after_fork(self) -> None:
        """In a forked child (gunicorn's workers, multiprocessing) the thread is gone: start another. The
        buffer copied from the parent is dropped: the parent sends it."""
        self._buffer.clear()
        self._event = threading.Event()
        self._lock = threading.Lock()
        if not self._closed and self.settings.enabled:
            self._http = httpx.Client(timeout=self.settings.timeout)
            self._owns_http = True
            self._start()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


#: clients not closed yet, closed at interpreter exit (weakly held: a discarded client is not kept alive)
_LIVE: weakref.WeakSet[Client] = weakref.WeakSet()
_HOOKED: list[bool] = []


def _close_at_exit(client: Client) -> None:
    _LIVE.add(client)
    if not _HOOKED:
        _HOOKED.append(True)
        atexit.register(_close_live)


def _close_live() -> None:
    for client in list(_LIVE):
        client.close()


def _after_fork(ref: weakref.ref[Client]) -> None:
    client = ref()
    if client is not None:
        client._after_fork()
