"""Trace file bytes: the stored bodies exactly, split back byte for byte, cut at the content limit."""

from __future__ import annotations

import gzip

import orjson

from opencts.archive import encoding


def test_content_is_the_bodies_in_an_array_and_splits_back_exactly() -> None:
    bodies = [orjson.dumps({"trace_id": str(i), "x": "a,\n]" * i}) for i in range(5)]
    data = encoding.content(bodies)
    assert data.startswith(b"[{") and data.endswith(b"}]") and data.count(b"},\n{") == 4
    assert encoding.split_content(data) == bodies
    assert len(data) == encoding.content_size(len(b) for b in bodies)


def test_gzip_is_deterministic_and_json_is_plain() -> None:
    bodies = [b'{"a":1}', b'{"b": 2}']
    first, second = encoding.encode(bodies, "gzip"), encoding.encode(bodies, "gzip")
    assert first == second  # mtime=0: a repeated transfer writes the same object
    assert gzip.decompress(first) == b'[{"a":1},\n{"b": 2}]'
    assert encoding.encode(bodies, "json") == b'[{"a":1},\n{"b": 2}]'
    assert encoding.decode(first, "gzip") == bodies
    assert encoding.decode(encoding.content([]), "json") == []


def test_split_points_keep_every_file_under_the_limit() -> None:
    lengths = [40, 40, 40, 40, 100, 10]
    starts = encoding.split_points(lengths, limit=100)
    assert starts == [0, 2, 4, 5]
    bounds = [*starts, len(lengths)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        size = encoding.content_size(lengths[a:b])
        assert size <= 100 or b - a == 1  # a body larger than the limit gets a file of its own
    assert encoding.split_points([], limit=10) == [0]
