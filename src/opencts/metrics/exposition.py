"""What a scrape answers: this process's metrics (or every worker's, in multiprocess mode) and the
deployment's figures read from the database, as one Prometheus text page.

Multiprocess mode is prometheus-client's own: with ``PROMETHEUS_MULTIPROC_DIR`` set (to an empty
directory, before the processes start), each process writes its values to files there and a scrape adds
them up, whichever worker answers it. Without it, the process's default registry is served, with the
client's process and garbage-collector metrics.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from opencts.metrics.database import DatabaseCollector
from opencts.store import Database

#: the Prometheus text format, version 0.0.4
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Forward(Collector):
    """The metrics of another registry, collected when this one is."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self.source.collect()


def multiprocess_dir() -> str | None:
    """The directory of multiprocess mode, when the environment names one."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


def retire_process() -> None:
    """In multiprocess mode, remove this process's files of "live" gauges as it stops.

    A scrape sums every file in the directory, whoever wrote it: without this, the write queue's depth
    a stopped worker last saw would be added to the live workers' for ever (prometheus-client's
    ``mark_process_dead``; its counters and histograms stay, as they should).
    """
    path = multiprocess_dir()
    if path is not None:
        mark_process_dead(os.getpid(), path)  # type: ignore[no-untyped-call]


def scrape_registry(db: Database) -> CollectorRegistry:
    """The registry a scrape of this app collects: the processes' metrics and the database's figures."""
    registry = CollectorRegistry(auto_describe=False)
    path = multiprocess_dir()
    if path is not None:
        MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Forward(REGISTRY))
    registry.register(DatabaseCollector(db))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The page; it queries the database, so async callers run it in a thread."""
    return generate_latest(registry)
