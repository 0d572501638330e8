"""Key-event matching throughput: 100 notifications of 1,000 operations each; floor ≥ 100,000 traces/s.

What the notifier does per trace, in process, on one core: parse the stored JSON body (orjson) and ask the
project's compiled :class:`~opencts.notifications.matcher.Matcher` which notifications it raises (operation
index, then user lists, then the advanced filter). The traces are the benchmark suite's realistic stream
(8 real services, ~45 operations, 20 users, 90/8/2 % ratings, 10 % OBS data events), stored exactly as
ingest stores them. The notifications are built like real ones: each covers 100 services and 1,000
operations, of which 1-3 are sensitive operations of the stream (deletions, policy and ACL changes, password
resets, logins, new users and keys: the key events) and the rest are operations of the other services (92
services the stream does not use, plus unused operations of the 8 it does); about a third name users,
about half carry an AND/OR filter of 1-3 rules.

Three figures: parse + match (the floor), match only on pre-parsed dicts, and a naive evaluation that
checks every notification for every trace (on a sample), to show what the index saves.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from typing import Any

import orjson
from _measure import console, verdict
from _traces import TraceFactory, Universe
from rich.table import Table

from opencts.clock import HOUR_MS, now_ms
from opencts.notifications.matcher import Matcher, Notification, compile_matcher, passes_filter
from opencts.traces.model import user_name

FLOOR_PER_SECOND = 100_000
NOTIFICATIONS = 100
OPERATIONS = 1_000
SERVICES = 100
SENSITIVE = ("delete", "set", "reset", "login", "createUser", "createCredential", "resize", "updateTracker")
RULES = (
    "trace_rating != normal", "trace_rating = incident", "code != 200", "code = 403", "trace_type = ApiCall",
    "trace_type = ConsoleAction", "api_version = v3", "resource_name != web-prod-0001",
)  # fmt: skip


def build_notifications(universe: Universe, project_id: str, seed: int = 5) -> list[Notification]:
    """100 notifications x 1,000 operations over 100 services, a few of them real operations of the stream."""
    rng = random.Random(seed)
    real = [(s, op[1], op[0]) for s, ops in universe.ops_by_service.items() for op in ops]
    # key events are the sensitive operations: deletions, policy and ACL changes, resets, logins, new keys
    sensitive = [o for o in real if o[2].startswith(SENSITIVE)]
    real_services = sorted({s for s, _, _ in real})
    synthetic = [f"SVC{i:03d}" for i in range(SERVICES - len(real_services))]
    users = [u.name for u in universe.users]
    out = []
    for i in range(NOTIFICATIONS):
        ops: set[tuple[str, str, str]] = set(rng.sample(sensitive, rng.randint(1, 3)))
        # every real service gets at least one operation, so the notification spans 100 services
        for service in real_services:
            if not any(o[0] == service for o in ops):
                ops.add((service, "other", f"rareOperation{rng.randint(0, 99)}"))
        while len(ops) < OPERATIONS:
            service = synthetic[len(ops) % len(synthetic)]
            ops.add((service, f"type{rng.randint(0, 9)}", f"operation{rng.randint(0, 999)}"))
        flt = None
        if rng.random() < 0.5:
            flt = {"condition": rng.choice(("AND", "OR")), "is_support_filter": True,
                   "rule": rng.sample(RULES, rng.randint(1, 3))}  # fmt: skip
        groups = [{"user_group": "admins", "user_list": rng.sample(users, 5)}] if rng.random() < 0.33 else []
        merged: dict[tuple[str, str], list[str]] = {}
        for s, r, t in sorted(ops):
            merged.setdefault((s, r), []).append(t)
        config: dict[str, Any] = {
            "operations": [
                {"service_type": s, "resource_type": r, "trace_names": t} for (s, r), t in merged.items()
            ],
            "notify_user_list": groups,
            "filter": flt,
        }
        assert len(ops) == OPERATIONS and len({s for s, _, _ in ops}) == SERVICES
        out.append(
            Notification.from_config(
                notification_id=f"n{i:03d}", project_id=project_id, name=f"key_events_{i}",
                notification_type="smn", topic_id=f"urn:smn:local-1:{project_id}:alarms",
                operation_type="customized", config=config,
            )
        )  # fmt: skip
    return out


def naive_match(notifications: list[Notification], trace: dict[str, Any]) -> list[Notification]:
    """What matching costs without the index: every notification, every trace."""
    key = (trace.get("service_type"), trace.get("resource_type"), trace.get("trace_name"))
    user = user_name(trace)
    return [
        n for n in notifications
        if key in n.operations and (n.users is None or user in n.users) and passes_filter(n, trace)
    ]  # fmt: skip


def timed(fn: Any) -> tuple[float, Any]:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        result = fn()
        return time.perf_counter() - start, result
    finally:
        gc.enable()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--traces", type=int, default=500_000, help="trace bodies to match (default 500,000)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds; the best counts (default 3)")
    args = p.parse_args()

    project = "0" * 32
    universe = Universe(domain_id="d" * 32, domain_name="acme")
    factory = TraceFactory(universe, project)
    console.print(f"generating {args.traces:,} realistic stored traces …")
    now = now_ms()
    bodies: list[bytes] = [
        factory.stored_row(now - HOUR_MS + i % HOUR_MS, now).body for i in range(args.traces)
    ]
    size = sum(len(b) for b in bodies) / len(bodies)
    notifications = build_notifications(universe, project)
    compile_s, matcher = timed(lambda: compile_matcher(notifications))
    assert isinstance(matcher, Matcher)
    parsed = [orjson.loads(b) for b in bodies]

    def parse_and_match() -> int:
        loads, match, hits = orjson.loads, matcher.match, 0
        for body in bodies:
            hits += len(match(loads(body)))
        return hits

    def match_only() -> int:
        match, hits = matcher.match, 0
        for trace in parsed:
            hits += len(match(trace))
        return hits

    sample = parsed[: max(1, len(parsed) // 10)]

    def naive() -> int:
        return sum(len(naive_match(notifications, t)) for t in sample)

    results: dict[str, tuple[float, int, int]] = {}
    runs = (
        ("parse + match", parse_and_match, len(bodies)),
        ("match only", match_only, len(parsed)),
        ("naive, no index", naive, len(sample)),
    )
    for label, fn, n in runs:
        best = min((timed(fn) for _ in range(args.rounds)), key=lambda r: r[0])
        results[label] = (best[0], best[1], n)
    assert results["naive, no index"][1] == sum(len(matcher.match(t)) for t in sample), "index != naive"

    candidates = sum(1 for t in parsed if matcher.match(t))
    table = Table(title=f"Key-event matching: {NOTIFICATIONS} notifications x {OPERATIONS:,} operations "
                        f"({SERVICES} services each), one core")  # fmt: skip
    floor_col = f"floor ≥ {FLOOR_PER_SECOND:,}/s"
    for col in ("measure", "traces", "seconds", "traces/s", "µs/trace", "alarms", floor_col):
        table.add_column(col, justify="left" if col == "measure" else "right")
    ok = True
    for label, (secs, hits, n) in results.items():
        rate = n / secs
        floor = ""
        if label == "parse + match":
            ok = rate >= FLOOR_PER_SECOND
            floor = verdict(ok)
        table.add_row(label, f"{n:,}", f"{secs:.3f}", f"{rate:,.0f}", f"{1e6 / rate:.2f}", f"{hits:,}", floor)
    console.print(table)
    console.print(
        f"index: {len(matcher._index):,} operation keys, compiled in {compile_s * 1000:.0f} ms; "
        f"traces: {len(bodies):,} bodies, {size:.0f} bytes on average; "
        f"{candidates / len(parsed):.1%} of traces raise at least one alarm"
    )
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
