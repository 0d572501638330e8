"""A function's Monitoring tab: invocations, errors and duration per step, drawn by ``console.charts``
from the buckets ``functions.invocations.statistics`` counts (the statistics API's numbers)."""

from __future__ import annotations

from datetime import UTC, datetime

from opencts.clock import HOUR_MS
from opencts.console import charts
from opencts.functions.invocations import Bucket

#: succeeded and failed invocations; function errors (the handler raised) and system errors (timeouts,
#: crashes, rejections); colours of 4.5:1 contrast or more on white
OUTCOME_COLOURS = {"succeeded": "#2b6cb0", "failed": "#c53030"}
ERROR_COLOURS = {"function errors": "#c53030", "system errors": "#8a5a00", "rejected": "#4a5568"}
DURATION_COLOURS = {"average ms": "#2b6cb0"}


def _label(start: int, step_ms: int) -> str:
    moment = datetime.fromtimestamp(start / 1000, UTC)
    return moment.strftime("%m-%d %H:%M" if step_ms >= HOUR_MS else "%H:%M")


def monitoring(buckets: list[Bucket], step_ms: int) -> list[charts.Chart]:
    """The three charts of the tab, oldest step first (UTC)."""
    labels = [_label(b.start, step_ms) for b in buckets]
    runs = [
        (lbl, {"succeeded": b.count - b.fail_count, "failed": b.fail_count})
        for lbl, b in zip(labels, buckets, strict=True)
    ]
    errors = [
        (
            lbl,
            {
                "function errors": b.function_errors,
                "system errors": b.system_errors,
                "rejected": b.reject_count,
            },
        )
        for lbl, b in zip(labels, buckets, strict=True)
    ]
    durations = [
        (lbl, {"average ms": round(b.total_duration / b.count) if b.count else 0})
        for lbl, b in zip(labels, buckets, strict=True)
    ]
    return [
        charts.stacked_columns("Invocations (UTC)", runs, OUTCOME_COLOURS, unit="invocations"),
        charts.stacked_columns("Errors (UTC)", errors, ERROR_COLOURS, unit="errors"),
        charts.stacked_columns(
            "Average duration in ms (UTC)", durations, DURATION_COLOURS, unit="ms summed over"
        ),
    ]
