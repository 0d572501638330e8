"""The separate metrics listener (``OPENCTS_METRICS_ADDRESS``): /metrics on an address of its own.

Operators who keep the API public but scrape over a private network bind metrics there instead. It is a
small threaded WSGI server (the standard library's) next to the event loop: a scrape reads the database
on its own thread and never waits for, or delays, a request of the API. With ``OPENCTS_METRICS_TOKEN``
set, it asks for the token here too; without, the address itself is the protection.
"""

from __future__ import annotations

import errno
import hmac
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry

from opencts.config import Settings
from opencts.metrics import instruments
from opencts.metrics.exposition import CONTENT_TYPE, multiprocess_dir, render, scrape_registry
from opencts.store import Database

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    """For an IPv6 address (``[::1]:9100``, ``[::]:9100``): the standard library's server is IPv4 only."""

    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes come every few seconds; they are not worth a log line each."""


def metrics_wsgi(
    registry: CollectorRegistry, token: str | None
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"only /metrics is served here\n"]
        if token is not None:
            given = environ.get("HTTP_AUTHORIZATION", "")
            if not (given[:7].lower() == "bearer " and hmac.compare_digest(given[7:].strip(), token)):
                start_response("401 Unauthorized", [("Content-Type", "text/plain")])
                return [b"send the scrape token as Authorization: Bearer TOKEN\n"]
        body = render(registry)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))])
        return [body]

    return app


class MetricsListener:
    """A running listener; :meth:`close` stops it."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry, token: str | None) -> None:
        address = host.strip("[]")
        self.server = make_server(
            address,
            port,
            metrics_wsgi(registry, token),
            server_class=_Server6 if ":" in address else _Server,
            handler_class=_QuietHandler,
        )
        self.port = self.server.server_port
        self._thread = threading.Thread(target=self.server.serve_forever, name="opencts-metrics", daemon=True)
        self._thread.start()
        log.info("metrics served at http://%s:%d/metrics", host, self.port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def start(settings: Settings, db: Database) -> MetricsListener | None:
    """The listener of ``OPENCTS_METRICS_ADDRESS``, started; None when metrics are served on BIND or off.

    It first turns this process's instruments on or off as ``OPENCTS_METRICS_ENABLED`` says (off, they
    cost nothing). In multiprocess mode every worker process tries the address and one gets it; the
    others' scrapes would have shown the same sums, so they go without.
    """
    instruments.set_enabled(settings.metrics_enabled)
    if not settings.metrics_enabled or settings.metrics_address is None:
        return None
    host, _, port = settings.metrics_address.rpartition(":")
    token = settings.metrics_token.get_secret_value() if settings.metrics_token is not None else None
    try:
        return MetricsListener(host, int(port), scrape_registry(db), token)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE and multiprocess_dir() is not None:
            log.info("another worker process serves metrics at %s", settings.metrics_address)
            return None
        raise


def stop(listener: MetricsListener | None) -> None:
    """Close ``listener`` if :func:`start` started one."""
    if listener is not None:
        listener.close()
