"""``TermIndex.top_values`` and ``bucket_counts`` (the dashboard's tops and hourly counts) agree with a
brute-force count of what was fed, however many distinct values there are and however the early stop
prunes them; other projects, other kinds and hours outside the window never count."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from opencts.clock import HOUR_MS
from opencts.store.term_index import INDEXED_COLUMNS, TermIndex

BASE_HOUR = 480_000


def fed(rng: random.Random, n: int) -> tuple[TermIndex, list[dict[str, object]]]:
    """``n`` rows over 48 hours; users skewed (a few busy, hundreds rare), so the walk can stop early."""
    index = TermIndex()
    rows: list[dict[str, object]] = []
    feed = []
    for seq in range(1, n + 1):
        row: dict[str, object] = dict.fromkeys(INDEXED_COLUMNS)
        row.update(
            project_id=rng.choice(("p1", "p1", "p2")),
            kind=rng.choice(("system", "system", "system", "data")),
            time=(BASE_HOUR + rng.randrange(48)) * HOUR_MS + rng.randrange(HOUR_MS),
            user_name=f"u{min(int(rng.paretovariate(1.2)), 400)}",
            trace_name=rng.choice(("login", "logout", "createServer", "deleteServer", "putObject")),
            service_type=rng.choice(("IAM", "ECS", "OBS")),
            trace_rating=rng.choices(("normal", "warning", "incident"), weights=(90, 8, 2))[0],
        )
        rows.append(row)
        feed.append(
            (seq, row["project_id"], row["kind"], row["time"], tuple(row[c] for c in INDEXED_COLUMNS))
        )
    index.feed(feed)  # type: ignore[arg-type]
    return index, rows


def inside(rows: list[dict[str, object]], first: int, last: int) -> list[dict[str, object]]:
    return [
        r
        for r in rows
        if r["project_id"] == "p1" and r["kind"] == "system" and first <= int(r["time"]) // HOUR_MS <= last  # type: ignore[call-overload]
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_top_values_count_what_brute_force_counts(seed: int) -> None:
    index, rows = fed(random.Random(seed), 20_000)
    first, last = BASE_HOUR + 10, BASE_HOUR + 33
    window = inside(rows, first, last)
    users = Counter(str(r["user_name"]) for r in window)
    found = index.top_values("p1", "system", "user_name", first_bucket=first, last_bucket=last, limit=10)
    assert [n for _, n in found] == sorted(users.values(), reverse=True)[:10]
    assert all(users[value] == n for (value,), n in found)

    pairs = Counter((str(r["trace_name"]), str(r["service_type"])) for r in window)
    ops = index.top_values(
        "p1", "system", "trace_name", first_bucket=first, last_bucket=last, limit=10, split_by="service_type"
    )
    assert [n for _, n in ops] == sorted(pairs.values(), reverse=True)[:10]
    assert all(pairs[(name, service)] == n for (name, service), n in ops)


def test_bucket_counts_count_each_hour_by_value() -> None:
    index, rows = fed(random.Random(9), 5_000)
    first, last = BASE_HOUR + 20, BASE_HOUR + 43
    found = index.bucket_counts("p1", "system", "trace_rating", first_bucket=first, last_bucket=last)
    assert sorted(found) == list(range(first, last + 1))
    expected: dict[int, Counter[str]] = {h: Counter() for h in range(first, last + 1)}
    for r in inside(rows, first, last):
        expected[int(r["time"]) // HOUR_MS][str(r["trace_rating"])] += 1  # type: ignore[call-overload]
    assert found == {h: dict(c) for h, c in expected.items()}


def test_an_empty_window_and_a_column_the_index_does_not_hold() -> None:
    index, _ = fed(random.Random(4), 500)
    assert index.top_values("p1", "system", "user_name", first_bucket=1, last_bucket=2, limit=10) == []
    assert (
        index.top_values(
            "p9", "system", "user_name", first_bucket=BASE_HOUR, last_bucket=BASE_HOUR + 47, limit=5
        )
        == []
    )
    with pytest.raises(ValueError, match="resource_id is not a term column"):
        index.top_values("p1", "system", "resource_id", first_bucket=0, last_bucket=1, limit=1)


def test_a_value_spread_over_many_others_costs_no_pair_its_place() -> None:
    """``spread`` is the busiest operation name but split over five services; ``focused``, the quietest,
    is all one service, so its one pair outnumbers every pair of the others."""
    index = TermIndex()
    feed = []
    seq = 0
    time = BASE_HOUR * HOUR_MS

    def add(name: str, service: str, count: int) -> None:
        nonlocal seq
        for _ in range(count):
            seq += 1
            values = dict.fromkeys(INDEXED_COLUMNS) | {"trace_name": name, "service_type": service}
            feed.append((seq, "p1", "system", time, tuple(values[c] for c in INDEXED_COLUMNS)))

    for s in range(5):
        add("spread", f"S{s}", 4)
    add("focused", "IAM", 15)
    for n in range(3):
        for s in range(2):
            add(f"other{n}", f"S{s}", 8)
    index.feed(feed)
    ops = index.top_values(
        "p1",
        "system",
        "trace_name",
        first_bucket=BASE_HOUR,
        last_bucket=BASE_HOUR,
        limit=1,
        split_by="service_type",
    )
    assert ops == [(("focused", "IAM"), 15)]
