"""The whole archive pipeline under load: ingest with everything on, backfilled traces, a cold start.

1. **Ingest, archive all on vs all off.** ``POST /v3/{project_id}/traces`` (1,000 a batch, two client
   threads) on a server with the transfer (a bucket, ``OPENCTS_TRANSFER_INTERVAL=1``), hourly digests
   (``is_support_validate``) and signed checkpoints every second, next to one with no bucket, no digests
   and checkpoints every day, and one with the transfer alone. (The ledger consumer appends leaves in
   all three: it has no switch, it is the tree every proof needs.) Also how long after the last POST
   the archive has every trace in a file (the status API's ``lag_traces`` at 0), and the floor: the
   same request bodies appended to a plain file with one fsync a batch.
2. **Out of time order.** N traces whose event times are spread at random over the last ``--days`` days,
   appended at once (a backfill), then transferred (``Transfer.drain``), next to N in time order. Checked
   after: every trace is in exactly one file, read back; files are named and foldered by the time they
   were written (the CTS layout), so a backfill makes no more files than live traffic; and the archive SQL
   over one day of event times finds exactly that day's traces (files are picked by their key's date
   with the late-arrival margin).
3. **Cold start.** A server starts on a log with a backlog of N untransferred traces (its tracker got a
   bucket after they arrived): the time from its start until the status API shows no lag, next to gzip
   alone over the same bodies.

Figures are printed; the checks raise SystemExit when they fail (a failure is a bug, not a number).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import random
import shutil
import statistics
import time
from collections import Counter
from pathlib import Path

import httpx
from _measure import console, human_bytes, verdict
from _server import bench_server, bootstrap_data_dir, scratch_space
from _traces import TraceFactory, Universe, encode_batch
from archive_transfer import BATCH, forget_files, give_bucket, gzip_alone, post_all
from rich.table import Table

from opencts.archive import layout, planner, query
from opencts.archive.storage import LocalStore
from opencts.archive.transfer import Transfer
from opencts.archive.verify_leaves import split_traces
from opencts.client.signing import HmacAuth
from opencts.clock import DAY_MS, now_ms
from opencts.config import Settings
from opencts.iam.bootstrap import BootstrapCredentials
from opencts.store import Database, trace_log
from opencts.testing.server import ServerProcess

BUCKET = "bench-pipeline"
#: ingest with everything on must keep at least this share of ingest with everything off
INGEST_FLOOR = 0.5


def lag(server: ServerProcess, auth: HmacAuth, project_id: str) -> int:
    with httpx.Client(base_url=server.url, auth=auth, timeout=60) as client:
        resp = client.get(f"/v3/{project_id}/archive/status", params={"tracker_name": "system"})
        resp.raise_for_status()
        return int(resp.json()["trackers"][0]["lag_traces"])


def wait_caught_up(server: ServerProcess, auth: HmacAuth, project_id: str, timeout: float = 600) -> float:
    """Seconds until the system tracker has every trace in a written file."""
    started = time.perf_counter()
    while lag(server, auth, project_id) > 0:
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"the transfer did not catch up in {timeout:.0f} s")
        time.sleep(0.2)
    return time.perf_counter() - started


def batches_for(creds: BootstrapCredentials, count: int) -> list[bytes]:
    universe = Universe(domain_id=creds.domain_id, domain_name=creds.domain_name)
    factory = TraceFactory(universe, creds.project_id, data_share=0.0)
    now = now_ms()
    return [
        encode_batch([factory.input_trace(now - 60_000 + i) for i in range(BATCH)])
        for _ in range(count // BATCH)
    ]


#: ingest configurations: the tracker's archive options and the server's intervals
MODES: dict[str, tuple[dict[str, object], dict[str, str]]] = {
    "off": ({}, {"OPENCTS_CHECKPOINT_INTERVAL": "86400"}),
    "transfer": (
        {"obs_info": {"bucket_name": BUCKET, "is_obs_created": True}},
        {"OPENCTS_TRANSFER_INTERVAL": "1", "OPENCTS_CHECKPOINT_INTERVAL": "86400"},
    ),
    "all": (
        {"obs_info": {"bucket_name": BUCKET, "is_obs_created": True}, "is_support_validate": True},
        {"OPENCTS_TRANSFER_INTERVAL": "1", "OPENCTS_CHECKPOINT_INTERVAL": "1"},
    ),
}


def ingest(root: Path, count: int, mode: str) -> tuple[float, float | None]:
    """Traces/s posted, and (with a bucket) seconds after the last POST until every trace is in a file."""
    tracker, env = MODES[mode]
    archive = bool(tracker)
    server = bench_server(root / f"ingest-{mode}", env)
    try:
        creds = server.creds
        auth = HmacAuth(creds.access_key, creds.secret_key, project_id=creds.project_id)
        if archive:
            with httpx.Client(base_url=server.url, auth=auth) as client:
                body = {"tracker_type": "system", "tracker_name": "system", **tracker}
                client.put(f"/v3/{creds.project_id}/tracker", json=body).raise_for_status()
        batches = batches_for(creds, count)
        started = time.perf_counter()
        post_all(server.url, auth, creds.project_id, batches)
        rate = len(batches) * BATCH / (time.perf_counter() - started)
        caught_up = wait_caught_up(server, auth, creds.project_id) if archive else None
        return rate, caught_up
    finally:
        server.stop()


def rates(count: int, seconds: list[float]) -> str:
    """Median traces/s of the rounds, with their range."""
    per_s = sorted(count / s for s in seconds)
    return f"{statistics.median(per_s):,.0f} traces/s (rounds {per_s[0]:,.0f}-{per_s[-1]:,.0f})"


def plain_append(root: Path, batches: list[bytes]) -> float:
    """Traces/s of appending the request bodies to one file, an fsync a batch: the disk's floor."""
    path = root / "append.log"
    started = time.perf_counter()
    with path.open("ab") as out:
        for body in batches:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
    seconds = time.perf_counter() - started
    path.unlink()
    return len(batches) * BATCH / seconds


# -- out of time order ------------------------------------------------------------------------------------

Filled = tuple[Database, LocalStore, Settings, str]


def filled(root: Path, name: str, count: int, times: list[int]) -> Filled:
    data_dir = root / name
    creds = bootstrap_data_dir(data_dir)
    settings = Settings(data_dir=data_dir)
    db = Database(settings.resolved_database_url)
    store = LocalStore(data_dir / "buckets")
    store.create_bucket(BUCKET)
    give_bucket(db, creds.project_id, BUCKET)
    universe = Universe(domain_id=creds.domain_id, domain_name=creds.domain_name)
    factory = TraceFactory(universe, creds.project_id, data_share=0.0)
    now = now_ms()
    for start in range(0, count, 5000):
        rows = [factory.stored_row(times[i], now) for i in range(start, min(count, start + 5000))]
        db.write_sync(lambda c, rows=rows: trace_log.append(c, rows))  # type: ignore[misc]
    return db, store, settings, creds.project_id


def read_back(store: LocalStore) -> tuple[Counter[str], int, set[tuple[int, int, int]]]:
    """Trace ids over every file, the number of files, and the dates of their folders."""
    ids: Counter[str] = Counter()
    files, days = 0, set()
    for info in store.list(BUCKET, f"{layout.ROOT}/"):
        key = layout.parse_key(info.key)
        if key is None or key.kind != "trace":
            continue
        files += 1
        days.add((key.year, key.month, key.day))
        if (key.year, key.month, key.day) != layout_day(key.stamp_ms):
            raise SystemExit(f"{info.key}: its folder is not the day of its stamp")
        for tid, _ in split_traces(gzip.decompress(store.get(BUCKET, info.key))):
            ids[tid or ""] += 1
    return ids, files, days


def layout_day(ms: int) -> tuple[int, int, int]:
    t = time.gmtime(ms / 1000)
    return t.tm_year, t.tm_mon, t.tm_mday


def transfer_run(world: Filled, name: str, count: int, *, last: bool) -> tuple[float, int]:
    """Seconds the transfer takes over the whole log and the files it wrote, checked; unless ``last``,
    the files are forgotten again for the next round."""
    db, store, settings, _ = world
    started = time.perf_counter()
    asyncio.run(Transfer(db, store, settings).drain())
    seconds = time.perf_counter() - started
    ids, files, _ = read_back(store)
    if len(ids) != count or set(ids.values()) != {1}:
        raise SystemExit(f"{name}: {len(ids)} distinct traces in files, {count} appended; doubled: "
                         f"{sum(1 for n in ids.values() if n > 1)}")  # fmt: skip
    if not last:
        db.write_sync(forget_files)
        shutil.rmtree(store.root / BUCKET / layout.ROOT)
    return seconds, files


def backfill(root: Path, count: int, days: int, rounds: int) -> dict[str, str]:
    now = now_ms()
    rng = random.Random(12)
    spread = [now - rng.randrange(days * DAY_MS) for _ in range(count)]
    in_order = [now - 60_000 + i for i in range(count)]
    ordered = filled(root, "in-order", count, in_order)
    db, store, settings, project = world = filled(root, "backfill", count, spread)
    ordered_s: list[float] = []
    spread_s: list[float] = []
    for r in range(rounds):  # interleaved: the machine is shared, its load drifts
        seconds, ordered_files = transfer_run(ordered, "in order", count, last=r == rounds - 1)
        ordered_s.append(seconds)
        seconds, spread_files = transfer_run(world, "backfill", count, last=r == rounds - 1)
        spread_s.append(seconds)
    ordered[0].close()
    try:
        # one day of event times, three days back: the SQL must find exactly the traces of that day
        day_start = now - 3 * DAY_MS
        expected = sum(day_start <= t < day_start + DAY_MS for t in spread)
        sources = query.pick_sources(db.read_sync(planner.targets), project_id=project, tracker=None)
        started = time.perf_counter()
        answer = query.answer(
            store,
            sources,
            sql="SELECT count(*) FROM traces",
            region=settings.region,
            start_ms=day_start,
            end_ms=day_start + DAY_MS,
            late_ms=settings.retention_ms + DAY_MS,
            unwrap=None,
            limit=10,
            timeout=300,
        )
        query_s = time.perf_counter() - started
    finally:
        db.close()
    found = answer.rows[0][0]
    if found != expected:
        raise SystemExit(f"the archive SQL found {found} traces of the day, the log has {expected}")
    return {
        "in time order": f"{rates(count, ordered_s)}, {ordered_files} files",
        f"event times over {days} days": f"{rates(count, spread_s)}, {spread_files} files",
        "every trace in one file": "yes (read back, both runs)",
        "SQL over one day of event times": f"{found:,} traces = the log's {expected:,}, {query_s:.1f} s",
    }


# -- cold start ---------------------------------------------------------------------------------------------


def cold_start(root: Path, count: int) -> dict[str, str]:
    data_dir = root / "cold"
    creds = bootstrap_data_dir(data_dir)
    settings = Settings(data_dir=data_dir)
    db = Database(settings.resolved_database_url)
    try:
        universe = Universe(domain_id=creds.domain_id, domain_name=creds.domain_name)
        factory = TraceFactory(universe, creds.project_id, data_share=0.0)
        now = now_ms()
        bodies: dict[str, list[bytes]] = {}
        for start in range(0, count, 5000):
            rows = [factory.stored_row(now - 60_000 + i, now) for i in range(start, min(count, start + 5000))]
            db.write_sync(lambda c, rows=rows: trace_log.append(c, rows))  # type: ignore[misc]
            for row in rows:
                bodies.setdefault(row.service_type, []).append(row.body)
        LocalStore(data_dir / "buckets").create_bucket(BUCKET)
        give_bucket(db, creds.project_id, BUCKET)  # the bucket comes after the traces: all of them wait
    finally:
        db.close()
    size = sum(len(b) for group in bodies.values() for b in group)
    started = time.perf_counter()
    server = bench_server(data_dir, {"OPENCTS_TRANSFER_INTERVAL": "1", "OPENCTS_CHECKPOINT_INTERVAL": "1"})
    try:
        healthy = time.perf_counter() - started
        auth = HmacAuth(creds.access_key, creds.secret_key, project_id=creds.project_id)
        backlog = lag(server, auth, creds.project_id)
        wait_caught_up(server, auth, creds.project_id)
        total = time.perf_counter() - started
    finally:
        server.stop()
    gzip_s = gzip_alone(bodies)
    return {
        "backlog": f"{count:,} traces ({human_bytes(size)} of JSON), {backlog:,} still waiting when healthy",
        "server start to healthy": f"{healthy:.1f} s",
        "start to no lag": f"{total:.1f} s ({count / total:,.0f} traces/s, {size / total / 1e6:.1f} MB/s)",
        "healthy to no lag": f"{total - healthy:.1f} s ({count / (total - healthy):,.0f} traces/s)",
        "gzip alone, same bodies": f"{gzip_s:.1f} s ({size / gzip_s / 1e6:.1f} MB/s)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingest", type=int, default=50_000, help="traces posted in each ingest run")
    parser.add_argument("--backfill", type=int, default=100_000, help="traces in each out-of-order run")
    parser.add_argument("--days", type=int, default=7, help="days the backfilled event times spread over")
    parser.add_argument("--backlog", type=int, default=100_000, help="untransferred traces at a cold start")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of each ingest and transfer"
    )
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    table = Table(title="archive pipeline")
    for column in ("measure", "value"):
        table.add_column(column)
    with scratch_space("archive-pipeline-", keep=args.keep) as root:
        seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
        caught_up: list[float] = []
        for r in range(args.rounds):  # interleaved: the machine is shared, its load drifts
            for mode in MODES:
                rate, behind = ingest(root / f"round-{r}", args.ingest, mode)
                seconds[mode].append(args.ingest / rate)
                if mode == "all" and behind is not None:
                    caught_up.append(behind)
        creds = bootstrap_data_dir(root / "append-creds")
        floor = plain_append(root, batches_for(creds, args.ingest))
        median = {mode: args.ingest / statistics.median(s) for mode, s in seconds.items()}
        table.add_row(
            "ingest, archive off (no transfer, digests, checkpoints)", rates(args.ingest, seconds["off"])
        )
        table.add_row("ingest, transfer only (checkpoints daily)", rates(args.ingest, seconds["transfer"]))
        table.add_row(
            "ingest, transfer + digests + checkpoints every 1 s", rates(args.ingest, seconds["all"])
        )
        ratio = median["all"] / median["off"]
        table.add_row(
            "all on / all off (medians)",
            f"{ratio:.2f} (floor {INGEST_FLOOR}: {verdict(ratio >= INGEST_FLOOR)})",
        )
        table.add_row(
            "archive complete after the last POST", f"{statistics.median(caught_up):.1f} s (median)"
        )
        table.add_row("plain append of the same bodies, fsync a batch", f"{floor:,.0f} traces/s")
        for measure, value in backfill(root, args.backfill, args.days, args.rounds).items():
            table.add_row(f"backfill: {measure}", value)
        for measure, value in cold_start(root, args.backlog).items():
            table.add_row(f"cold start: {measure}", value)
    console.print(table)


if __name__ == "__main__":
    main()
