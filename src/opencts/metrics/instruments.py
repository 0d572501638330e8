"""The metrics the code moves, one module-level object each, created at import.

``prometheus_client`` picks its value store when a metric is created: in-memory, or, when the environment
names ``PROMETHEUS_MULTIPROC_DIR``, memory-mapped files one per process that a scrape adds up. Gauges say
how they are combined over processes (``multiprocess_mode``): a queue depth is summed over live
processes. Labels are few and bounded: a rejection's reason is a class, never its message, and a route is
its template, never a path holding ids.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.metrics import MetricWrapperBase

# No ``*_created`` series beside every counter and histogram child: a third of the page and of a scrape's
# work, for a start time no dashboard reads (Prometheus sees a restart as a counter reset anyway).
disable_created_metrics()  # type: ignore[no-untyped-call]

M = TypeVar("M", bound=MetricWrapperBase)

#: traces per ingest batch as received, and rows per group commit
_SIZE_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

INGEST_TRACES = Counter("opencts_ingest_traces", "Traces handed to the writer, by verdict.", ["outcome"])
INGEST_REJECTIONS = Counter(
    "opencts_ingest_rejections", "Traces rejected at ingest, by class of reason.", ["reason"]
)
INGEST_BATCH = Histogram(
    "opencts_ingest_batch_traces", "Traces per ingest batch, as received.", buckets=_SIZE_BUCKETS
)
INGEST_OVERLOADED = Counter(
    "opencts_ingest_overloaded", "Ingest batches refused with 429 because the write queue was full."
)
COMMIT_SECONDS = Histogram(
    "opencts_commit_seconds",
    "Time from handing a group of batches to the writer until it is durable.",
    buckets=_LATENCY_BUCKETS,
)
COMMIT_ROWS = Histogram("opencts_commit_rows", "Rows appended per group commit.", buckets=_SIZE_BUCKETS)
WRITE_QUEUE = Gauge(
    "opencts_write_queue_batches",
    "Ingest batches waiting for the next group commit.",
    multiprocess_mode="livesum",
)
LIST_SECONDS = Histogram(
    "opencts_list_traces_seconds",
    "ListTraces latency, by the filters given (sorted names joined by '+', 'none', or 'trace_id').",
    ["filters"],
    buckets=_LATENCY_BUCKETS,
)
HTTP_REQUESTS = Counter(
    "opencts_http_requests", "Requests answered, by route name and status.", ["route", "status"]
)
HTTP_SECONDS = Histogram(
    "opencts_http_request_seconds",
    "Time to answer a request, by route name.",
    ["route"],
    buckets=_LATENCY_BUCKETS,
)
SMN_ATTEMPTS = Counter(
    "opencts_smn_delivery_attempts",
    "SMN delivery attempts, by channel (email, sms, http, https, functiongraph) and outcome.",
    ["channel", "outcome"],
)
FUNCTION_INVOCATIONS = Counter(
    "opencts_function_invocations", "Function invocations run, by result status.", ["status"]
)
FUNCTION_SECONDS = Histogram(
    "opencts_function_duration_seconds",
    "Run time of one function invocation.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0),
)


def rejection_reason(message: str) -> str:
    """The bounded class of an ingest rejection message (the message itself names fields and values)."""
    if "tracker" in message:
        return "tracker_policy"
    if "retention window" in message:
        return "too_old"
    if "in the future" in message:
        return "future"
    if "NUL" in message:
        return "nul_character"
    if "JSON object" in message or "stored as JSON" in message:
        return "not_json"
    return "invalid"


def filter_mix(trace_id: str | None, filters: dict[str, str]) -> str:
    """The ``filters`` label of a ListTraces call: which filters, never their values."""
    if trace_id is not None:
        return "trace_id"
    return "+".join(sorted(filters)) or "none"


class _Off:
    """What an instrument becomes with metrics off: every call returns at once."""

    def labels(self, *values: str, **named: str) -> _Off:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass

    def set(self, value: float) -> None:
        pass


_OFF = _Off()
_METHODS = ("labels", "inc", "observe", "set")


class Children(Generic[M]):
    """The children of a labelled metric, each looked up through ``labels()`` once and kept.

    ``labels()`` takes the metric's lock, checks and joins the values on every call (about 1.5 µs);
    a hot path (every request, every ingest batch) asks for the same few children again and again, so a
    dict lookup on the values as given serves it instead. Label values are few and bounded (route names,
    statuses, reason classes), and so is the dict. :func:`set_enabled` empties it, so a child looked up
    while metrics were off (the no-op) is never served once they are on, nor the other way round.
    """

    __slots__ = ("metric", "_children")

    def __init__(self, metric: M) -> None:
        self.metric = metric
        self._children: dict[tuple[object, ...], M] = {}
        _CACHES.append(self)

    def __call__(self, *values: object) -> M:
        """The child of ``values`` (anything ``str()`` gives the label value of, e.g. an int status)."""
        try:
            return self._children[values]
        except KeyError:
            child: Any = self.metric.labels(*(str(v) for v in values))
            self._children[values] = child
            return child  # type: ignore[no-any-return]

    def clear(self) -> None:
        self._children.clear()


_CACHES: list[Children[Any]] = []

#: the hot paths' children: ingest verdicts and rejection classes per batch, HTTP figures per request,
#: ListTraces latency per filter mix
INGEST_TRACES_BY = Children(INGEST_TRACES)
INGEST_REJECTIONS_BY = Children(INGEST_REJECTIONS)
HTTP_REQUESTS_BY = Children(HTTP_REQUESTS)
HTTP_SECONDS_BY = Children(HTTP_SECONDS)
LIST_SECONDS_BY = Children(LIST_SECONDS)
ALL = (
    INGEST_TRACES,
    INGEST_REJECTIONS,
    INGEST_BATCH,
    INGEST_OVERLOADED,
    COMMIT_SECONDS,
    COMMIT_ROWS,
    WRITE_QUEUE,
    LIST_SECONDS,
    HTTP_REQUESTS,
    HTTP_SECONDS,
    SMN_ATTEMPTS,
    FUNCTION_INVOCATIONS,
    FUNCTION_SECONDS,
)


def set_enabled(enabled: bool) -> None:
    """Turn every instrument of this process on or off (``OPENCTS_METRICS_ENABLED``).

    Off, an instrument's methods are shadowed on the instance by ones that do nothing, so the code that
    moves it needs no flag of its own; on again, the shadows go and the class's methods are back. The
    children :class:`Children` kept are forgotten either way, so none is served across the switch.
    """
    for cache in _CACHES:
        cache.clear()
    for metric in ALL:
        for method in _METHODS:
            if enabled:
                metric.__dict__.pop(method, None)
            elif hasattr(type(metric), method):
                setattr(metric, method, getattr(_OFF, method))
