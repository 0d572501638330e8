"""Splitting a trace file's content back into the exact stored bodies (what the ledger hashed)."""

from __future__ import annotations

import pytest

from opencts.archive.verify import split_traces


def test_compact_bodies_come_back_byte_for_byte() -> None:
    bodies = [b'{"trace_id":"a","s":"x,\\ny"}', b'{"trace_id":"b","n":[1,2]}']
    assert split_traces(b"[" + b",\n".join(bodies) + b"]") == [("a", bodies[0]), ("b", bodies[1])]


def test_bodies_with_newlines_and_whitespace_are_kept_whole() -> None:
    bodies = [b'{"trace_id":"a",\n "k": 1} ', b' {"trace_id":"b"}']
    assert split_traces(b"[" + b",\n".join(bodies) + b"]") == [("a", bodies[0]), ("b", bodies[1])]


def test_an_empty_file_and_a_stranger() -> None:
    assert split_traces(b"[]") == []
    with pytest.raises(ValueError):
        split_traces(b'{"trace_id":"a"}')
