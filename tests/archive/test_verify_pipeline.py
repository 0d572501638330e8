"""``opencts verify`` over an archive written by the real pipeline: the transfer writes the files, the ledger
appends and signs checkpoints, the digest writer chains the hours (a fixed clock makes the hours pass).
The archive verifies, with proofs; a trace changed in the database behind the tree, then transferred, is
named by its trace id once proofs are checked; a file deleted afterwards is named too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archive.archive_pipeline import BUCKET, H0, Pipeline
from opencts.clock import HOUR_MS, MINUTE_MS
from opencts.store import Database


async def test_a_pipeline_archive_verifies_and_tampering_is_named(database: Database, tmp_path: Path) -> None:
    pipe = Pipeline(database, tmp_path)
    pipe.setup()
    await pipe.hour(H0, 0, "none")  # the chain starts before the project's first checkpoint
    await pipe.hour(H0 + HOUR_MS, 5, "a")
    await pipe.hour(H0 + 2 * HOUR_MS, 0, "none")
    await pipe.hour(H0 + 3 * HOUR_MS, 4, "b", behind="b-2")
    await pipe.digests(H0 + 4 * HOUR_MS + MINUTE_MS)

    plain = pipe.verify(proofs=False)
    assert plain.ok, plain.failures
    assert plain.digests == 4 and plain.traces == 9

    proved = pipe.verify(proofs=True)
    assert [(f.problem, f.trace_id) for f in proved.failures] == [("trace not in the ledger", "b-2")]
    assert proved.leaves == 9

    first: Any = next((pipe.store.root / BUCKET).rglob("CloudTrace_*.json.gz"))
    first.unlink()
    missing = pipe.verify(proofs=False)
    assert [f.problem for f in missing.failures] == ["not found"]
