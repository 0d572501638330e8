"""``verify --proofs`` in a process pool finds exactly what the serial run finds, on a tampered archive."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from typer.testing import CliRunner

from opencts.archive import layout
from opencts.archive.verify import Options, Result, verify_source
from opencts.archive.verify_leaves import FileLeaves, LeafPool, file_leaves, split_traces
from opencts.archive.verify_source import keys_from_json, open_source
from opencts.cli.main import app
from opencts.config import Settings
from opencts.testing.archive import ArchiveBuilder, file_content, trace_body

H0 = 1_796_450_400_000  # 2026-12-05T06:00:00Z
HOUR = 3_600_000


def run(builder: ArchiveBuilder, processes: int) -> Result:
    keys = keys_from_json(json.loads(builder.keys_file().read_text()))
    with open_source(str(builder.bucket), Settings(data_dir=builder.root)) as source:
        return verify_source(source, keys, Options(proofs=True, workers=3, processes=processes))


def test_the_pool_and_the_serial_run_agree_on_a_tampered_archive(tmp_path: Path) -> None:
    builder = ArchiveBuilder(tmp_path)
    builder.hour(H0)
    changed = trace_body(5, H0 + 120_000).replace(b"createServer", b"deleteServer")
    builder.hour(H0 + HOUR, exported={8: changed.replace(b"00000005", b"00000008")})  # behind the tree
    for i in range(2, 5):
        builder.hour(H0 + i * HOUR)
    files = [
        builder.bucket / key
        for key in sorted(p.relative_to(builder.bucket).as_posix() for p in builder.bucket.rglob("*.json.gz"))
        if (k := layout.parse_key(key)) and k.kind == "trace"
    ]
    assert len(files) == 10
    # a trace removed and the file re-gzipped; a file that is no gzip; a file that holds no JSON array
    traces = split_traces(gzip.decompress(files[4].read_bytes()))
    files[4].write_bytes(gzip.compress(file_content([body for _, body in traces[1:]]), 6, mtime=0))
    files[6].write_bytes(b"not gzip at all")
    files[8].write_bytes(gzip.compress(b'{"trace_id": "x"}', 6, mtime=0))

    serial, pooled = run(builder, processes=0), run(builder, processes=2)
    assert pooled.to_json() == serial.to_json()
    # the same from the shell: --processes 0 and 2 print the same document and exit 1
    outputs = []
    for processes in ("0", "2"):
        args = ["verify", str(builder.bucket), "--keys", str(builder.keys_file()), "--proofs", "--json"]
        done = CliRunner().invoke(
            app, [*args, "--processes", processes], env={"OPENCTS_DATA_DIR": str(tmp_path)}
        )
        assert done.exit_code == 1, done.output
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1] == serial.to_json()
    found = {(f.problem, f.trace_id) for f in serial.failures}
    assert ("trace not in the ledger", "trace-00000008") in found
    assert {"trace count doesn't match", "not gzip", "not a trace file"} <= {p for p, _ in found}
    assert serial.leaves == 30 and serial.traces == 23  # 30 leaves; 2 files unreadable, 1 trace removed


def test_file_leaves_in_a_process_are_the_serial_ones() -> None:
    content = file_content([trace_body(i, H0 + i) for i in range(50)])
    expected = file_leaves(gzip.compress(content, 6, mtime=0), True)
    assert len(expected.ids) == 50 and len(expected.leaves) == 50 * 32
    with LeafPool(1) as pool:
        assert pool.leaves(gzip.compress(content, 6, mtime=0), True) == expected
        assert pool.leaves(content, False) == expected
        assert pool.leaves(b"[oops]", False) == FileLeaves([], b"", "not a trace file", pool_detail())


def pool_detail() -> str:
    return file_leaves(b"[oops]", False).detail
