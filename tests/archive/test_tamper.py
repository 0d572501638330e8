"""The tamper suite: every way an archive can be changed after the fact is detected by ``opencts verify``,
and named (the problem, the object, the hour, the trace where there is one)."""

from __future__ import annotations

import gzip
import json
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opencts.archive import layout
from opencts.archive.verify import Finding, Options, Result, split_traces, verify_source
from opencts.archive.verify_source import keys_from_json, open_source
from opencts.cli.main import app
from opencts.config import Settings
from opencts.testing.archive import BUCKET, ArchiveBuilder, SignKey, file_content, trace_body

H0 = 1_796_450_400_000  # 2026-12-05T06:00:00Z
HOUR = 3_600_000


@pytest.fixture
def archive(tmp_path: Path) -> ArchiveBuilder:
    builder = ArchiveBuilder(tmp_path)
    for i in range(4):
        builder.hour(H0 + i * HOUR)
    return builder


def run(builder: ArchiveBuilder, *, proofs: bool = True, checkpoint: str | None = None) -> Result:
    keys = keys_from_json(json.loads(builder.keys_file().read_text()))
    with open_source(str(builder.bucket), Settings(data_dir=builder.root)) as source:
        return verify_source(source, keys, Options(proofs=proofs, checkpoint_note=checkpoint, workers=2))


def problems(result: Result) -> set[tuple[str, str | None]]:
    return {(f.problem, f.key) for f in result.failures}


def trace_files(builder: ArchiveBuilder) -> list[str]:
    return sorted(
        p.relative_to(builder.bucket).as_posix()
        for p in builder.bucket.rglob("*.json.gz")
        if (k := layout.parse_key(p.relative_to(builder.bucket).as_posix())) and k.kind == "trace"
    )


def digests(builder: ArchiveBuilder) -> list[str]:
    return sorted(p.relative_to(builder.bucket).as_posix() for p in builder.bucket.rglob("*Digest*.json.gz"))


def test_an_untouched_archive_verifies(archive: ArchiveBuilder) -> None:
    result = run(archive)
    assert result.ok, result.failures
    assert (result.digests, result.files, result.traces, result.leaves) == (4, 8, 24, 24)


def test_one_byte_changed_in_a_trace_file(archive: ArchiveBuilder) -> None:
    key = trace_files(archive)[3]
    path = archive.bucket / key
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    result = run(archive, proofs=False)
    assert ("hash value doesn't match", key) in problems(result)
    assert [f.hour for f in result.failures if f.key == key] == ["2026-12-05T07-00-00Z"]


def test_a_trace_removed_and_the_file_regzipped(archive: ArchiveBuilder) -> None:
    key = trace_files(archive)[0]
    path = archive.bucket / key
    traces = split_traces(gzip.decompress(path.read_bytes()))
    path.write_bytes(gzip.compress(file_content([body for _, body in traces[1:]]), 6, mtime=0))
    found = problems(run(archive))
    assert ("hash value doesn't match", key) in found
    assert ("trace count doesn't match", key) in found


def test_a_file_deleted(archive: ArchiveBuilder) -> None:
    key = trace_files(archive)[5]
    (archive.bucket / key).unlink()
    assert problems(run(archive, proofs=False)) == {("not found", key)}


def test_two_consecutive_digests_deleted(archive: ArchiveBuilder) -> None:
    keys = digests(archive)
    for key in keys[1:3]:
        (archive.bucket / key).unlink()
        (archive.bucket / layout.signature_key(key)).unlink()
    result = run(archive, proofs=False)
    names = {f.problem for f in result.failures}
    assert "gap: no digest for hour 2026-12-05T07-00-00Z" in names
    assert "gap: no digest for hour 2026-12-05T08-00-00Z" in names
    assert ("chain broken", keys[3]) in problems(result)
    # the four files those digests listed are now in no digest
    assert sum(f.problem == "not in any digest" for f in result.failures) == 4


def test_a_file_moved_to_another_hour(archive: ArchiveBuilder) -> None:
    key = trace_files(archive)[0]
    moved = key.replace("_2026-12-05T06-01-00Z_", "_2026-12-05T09-01-00Z_")
    (archive.bucket / moved).write_bytes((archive.bucket / key).read_bytes())
    (archive.bucket / key).unlink()
    result = run(archive, proofs=False)
    assert problems(result) == {("has been moved", key)}
    assert moved in result.failures[0].detail


def test_files_renamed(archive: ArchiveBuilder) -> None:
    keys = trace_files(archive)[2:4]
    for i, key in enumerate(keys):
        renamed = key[: -len("0000000000000000.json.gz")] + f"fffffffffffffff{i}.json.gz"
        (archive.bucket / key).rename(archive.bucket / renamed)
    assert problems(run(archive, proofs=False)) == {("has been renamed", k) for k in keys}


def test_a_file_added(archive: ArchiveBuilder) -> None:
    key = trace_files(archive)[1]
    added = key[: -len("0000000000000000.json.gz")] + "0123456789abcdef.json.gz"
    (archive.bucket / added).write_bytes(gzip.compress(file_content([trace_body(999, H0)]), 6, mtime=0))
    assert problems(run(archive, proofs=False)) == {("not in any digest", added)}


def test_a_file_newer_than_the_last_digest_is_not_yet_covered(archive: ArchiveBuilder) -> None:
    key = trace_files(archive)[0].replace("_2026-12-05T06-01-00Z_", "_2026-12-05T10-05-00Z_")
    (archive.bucket / key).parent.mkdir(parents=True, exist_ok=True)
    (archive.bucket / key).write_bytes(gzip.compress(file_content([trace_body(999, H0)]), 6, mtime=0))
    result = run(archive, proofs=False)
    assert result.ok
    assert [(f.problem, f.key) for f in result.findings] == [("not yet covered", key)]


def test_a_digest_resigned_with_an_unpublished_key(archive: ArchiveBuilder) -> None:
    key = digests(archive)[2]
    archive.sign(key, (archive.bucket / key).read_bytes(), SignKey.new())
    found = problems(run(archive, proofs=False))
    assert ("signed by an unpublished key", key) in found
    assert ("chain broken", digests(archive)[3]) in found  # the next digest signed over the old signature


def test_a_digest_signature_that_does_not_verify(archive: ArchiveBuilder) -> None:
    key = digests(archive)[1]
    sig = archive.bucket / layout.signature_key(key)
    doc = json.loads(sig.read_text())
    doc["signature"] = doc["signature"][:-2] + ("00" if doc["signature"][-2:] != "00" else "01")
    sig.write_text(json.dumps(doc))
    assert ("signature verification failed", key) in problems(run(archive, proofs=False))


def test_a_trace_changed_in_the_database_behind_the_tree(tmp_path: Path) -> None:
    """The file was exported from a database row changed after the tree took its leaf: the digest lists the
    file honestly (its hash matches), but the trace's bytes are no leaf of the signed tree."""
    builder = ArchiveBuilder(tmp_path)
    builder.hour(H0)
    changed = trace_body(5, H0 + 120_000).replace(b"createServer", b"deleteServer")
    builder.hour(H0 + HOUR, exported={8: changed.replace(b"00000005", b"00000008")})
    assert run(builder, proofs=False).ok
    result = run(builder)
    assert [(f.problem, f.trace_id, f.hour) for f in result.failures] == [
        ("trace not in the ledger", "trace-00000008", "2026-12-05T07-00-00Z")
    ]


def test_an_old_checkpoint_the_tree_does_not_extend(tmp_path: Path, archive: ArchiveBuilder) -> None:
    assert run(archive, checkpoint=archive.notes[1]).ok  # a real older checkpoint: consistent
    other = ArchiveBuilder(tmp_path / "other", key=archive.key)
    other.seq = 100  # other traces: another history under the same key and origin
    other.hour(H0)
    other.hour(H0 + HOUR)
    result = run(archive, checkpoint=other.notes[1])
    assert [f.problem for f in result.failures] == ["checkpoint inconsistent"]


def test_a_leaf_changed_breaks_the_checkpoint(archive: ArchiveBuilder) -> None:
    from opencts.archive import digest_format as fmt

    key = digests(archive)[1]
    digest = fmt.decode((archive.bucket / key).read_bytes())
    assert digest.tree_leaves is not None
    leaves_path = archive.bucket / digest.tree_leaves.object
    leaves = fmt.decode_leaves(leaves_path.read_bytes())
    leaves_path.write_bytes(fmt.encode_leaves([bytes(32), *leaves[1:]]))
    assert ("hash value doesn't match", digest.tree_leaves.object) in problems(run(archive))


def test_an_encrypted_file_that_does_not_open(archive: ArchiveBuilder) -> None:
    key = trace_files(archive)[0]
    enc = key + ".enc"
    (archive.bucket / enc).write_bytes(b"OCTSENC1" + b"\x00\x00\x00\x02{}garbage")
    result = run(archive, proofs=False)
    assert ("cannot decrypt", enc) in problems(result)


def test_the_cli_reads_a_tarball_and_exits_1_with_json(archive: ArchiveBuilder, tmp_path: Path) -> None:
    keys = archive.keys_file()
    tarball = tmp_path / "copy.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(archive.bucket, arcname=BUCKET)
    runner = CliRunner()
    env = {"OPENCTS_DATA_DIR": str(tmp_path)}
    ok = runner.invoke(app, ["verify", str(tarball), "--keys", str(keys), "--proofs"], env=env)
    assert ok.exit_code == 0, ok.output
    assert "verified" in ok.output
    (archive.bucket / trace_files(archive)[0]).unlink()
    bad = runner.invoke(app, ["verify", str(archive.bucket), "--keys", str(keys), "--json"], env=env)
    assert bad.exit_code == 1
    doc = json.loads(bad.stdout)
    assert [f["problem"] for f in doc["failures"]] == ["not found"]
    assert isinstance(Finding(**doc["failures"][0]), Finding)


def test_an_s3_bucket_is_read_through_the_store(archive: ArchiveBuilder, s3_settings: Settings) -> None:
    from opencts.archive.storage import open_store

    store = open_store(s3_settings)
    store.create_bucket("audit")
    for path in sorted(archive.bucket.rglob("*")):
        if path.is_file():
            store.put("audit", path.relative_to(archive.bucket).as_posix(), path.read_bytes())
    keys = keys_from_json(json.loads(archive.keys_file().read_text()))
    with open_source("s3://audit", s3_settings) as source:
        assert verify_source(source, keys, Options(proofs=True)).ok
    store.delete("audit", trace_files(archive)[2])
    with open_source("s3://audit/CloudTraces/", s3_settings) as source:
        result = verify_source(source, keys, Options())
    assert problems(result) == {("not found", trace_files(archive)[2])}
