"""Tampering with an archive the real pipeline wrote (transfer, ledger, digest writer), case by case: each
change to the store is reported by ``verify`` as exactly that change, nothing more and nothing less.

One archive of five hours is built once per backend; each case changes its own copy of the bucket. Cases:
a trace file altered, deleted or added; a digest altered (not re-signed), deleted in the middle of the
chain, or the two newest deleted (silent without an end, gaps with ``--until``); a forged digest added.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from archive.archive_pipeline import BUCKET, H0, Pipeline
from opencts.archive import digest_format as fmt
from opencts.archive import layout, signing_keys
from opencts.archive.verify import Options, Result, verify_source
from opencts.archive.verify_source import keys_from_json, open_source
from opencts.clock import HOUR_MS, MINUTE_MS
from opencts.store import Database

Found = set[tuple[str, str | None]]


def keys_of(bucket: Path, kind: str) -> list[str]:
    out = []
    for path in bucket.rglob("*"):
        key = path.relative_to(bucket).as_posix()
        parsed = layout.parse_key(key) if path.is_file() else None
        if parsed is not None and parsed.kind == kind:
            out.append(key)
    return sorted(out, key=lambda k: (stamp_of(k), k))


def stamp_of(key: str) -> int:
    parsed = layout.parse_key(key)
    assert parsed is not None, key
    return parsed.stamp_ms


def flip_byte(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))


def alter_digest(path: Path) -> None:
    """The digest's content changed and gzipped again, its signature left as it was."""
    doc = json.loads(gzip.decompress(path.read_bytes()))
    doc["newest_event_time"] = (doc.get("newest_event_time") or 0) + 1
    path.write_bytes(gzip.compress(json.dumps(doc).encode(), mtime=0))


class Case:
    def __init__(self, pipe: Pipeline, root: Path, name: str) -> None:
        self.pipe = pipe
        self.bucket = root / name / BUCKET
        shutil.copytree(pipe.store.root / BUCKET, self.bucket)

    def verify(self, **options: int) -> Result:
        keys = keys_from_json(self.pipe.db.read_sync(signing_keys.published_keys))
        with open_source(str(self.bucket), self.pipe.settings) as source:
            return verify_source(source, keys, Options(workers=2, **options))  # type: ignore[arg-type]

    def found(self, **options: int) -> Found:
        return {(f.problem, f.key) for f in self.verify(**options).failures}


async def build(db: Database, tmp_path: Path) -> Pipeline:
    pipe = Pipeline(db, tmp_path)
    pipe.setup()
    await pipe.hour(H0, 0, "none")
    for n, tag in enumerate("abcd", start=1):
        await pipe.hour(H0 + n * HOUR_MS, 3, tag)
    await pipe.digests(H0 + 5 * HOUR_MS + MINUTE_MS)
    return pipe


async def test_each_change_to_the_store_is_reported_as_exactly_that(
    database: Database, tmp_path: Path
) -> None:
    pipe = await build(database, tmp_path)
    root = tmp_path / "copies"
    untouched = Case(pipe, root, "untouched")
    assert untouched.verify().ok
    assert untouched.verify(end_ms=H0 + 5 * HOUR_MS).ok
    files = keys_of(untouched.bucket, "trace")
    digests = keys_of(untouched.bucket, "digest")
    assert len(digests) == 5 and len(files) >= 4

    cases: dict[str, tuple[Callable[[Path], object], Found]] = {}

    target = files[1]
    cases["a trace file altered"] = (
        lambda b: flip_byte(b / target),
        {("hash value doesn't match", target)},
    )
    cases["a trace file deleted"] = (lambda b: (b / target).unlink(), {("not found", target)})
    extra = target.replace(layout.parse_key(target).random16 or "", "0" * 16)  # type: ignore[union-attr]
    cases["a trace file added"] = (
        lambda b: shutil.copyfile(b / files[0], b / extra),
        {("not in any digest", extra)},
    )
    middle, after = digests[2], digests[3]
    cases["a digest altered, not re-signed"] = (
        lambda b: alter_digest(b / middle),
        {("signature verification failed", middle), ("chain broken", after)},
    )
    hour_files = [k for k in files if stamp_of(k) // HOUR_MS == (H0 + 2 * HOUR_MS) // HOUR_MS]
    assert hour_files
    cases["a digest deleted in the middle of the chain"] = (
        lambda b: (b / middle).unlink(),
        {("gap: no digest for hour " + fmt.hour_text(H0 + 2 * HOUR_MS), None), ("chain broken", after)}
        | {("not in any digest", k) for k in hour_files},
    )
    cases["a digest's signature swapped for another's"] = (
        lambda b: shutil.copyfile(b / layout.signature_key(after), b / layout.signature_key(middle)),
        {("signature verification failed", middle), ("chain broken", after)},
    )

    for name, (change, expected) in cases.items():
        case = Case(pipe, root, name.replace(" ", "-").replace(",", ""))
        change(case.bucket)
        assert case.found() == expected, name


async def test_missing_hours_are_gaps_up_to_the_end_asked_for(database: Database, tmp_path: Path) -> None:
    pipe = await build(database, tmp_path)
    case = Case(pipe, tmp_path / "copies", "newest-two-deleted")
    newest = keys_of(case.bucket, "digest")[-2:]
    for key in newest:
        (case.bucket / key).unlink()
        (case.bucket / layout.signature_key(key)).unlink()
    assert case.verify().ok  # without an end, the newest files are only "not yet covered"
    result = case.verify(end_ms=H0 + 5 * HOUR_MS)
    assert {f.problem for f in result.failures} == {
        f"gap: no digest for hour {fmt.hour_text(H0 + n * HOUR_MS)}" for n in (3, 4)
    }
    assert case.verify(end_ms=H0 + 3 * HOUR_MS).ok  # hours before the end all have their digest
