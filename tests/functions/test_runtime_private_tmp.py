"""Each worker run as its own uid has a /tmp of its own: handlers that write fixed /tmp paths (the seeds'
LTS function) neither collide with another worker's files nor see them, and the host's /tmp stays clean."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from runtime_support import CodeStore, make_spec, running_pool

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="workers get their own uid only under root")

NAME = f"ltsfn-private-{uuid.uuid4().hex[:8]}.log"
HANDLER = f"""
import os

PATH = "/tmp/{NAME}"


def handler(event, context):
    before = open(PATH).read() if os.path.exists(PATH) else None
    with open(PATH, "a") as out:
        out.write(context.getFunctionName() + "\\n")
    return {{"before": before, "uid": os.getuid()}}
"""


async def test_workers_write_the_same_tmp_path_without_meeting(tmp_path: Path) -> None:
    store = CodeStore()
    first, second = (make_spec(store, HANDLER, func_id=f) for f in ("f-1", "f-2"))
    async with running_pool(tmp_path, store) as pool:
        one = await pool.invoke(first, b"{}", request_id="r1", credentials=None)
        two = await pool.invoke(second, b"{}", request_id="r2", credentials=None)
        again = await pool.invoke(first, b"{}", request_id="r3", credentials=None)
    for result in (one, two, again):
        assert result.status == "success", result.result  # a PermissionError on a file another uid left
    results = [json.loads(r.result) for r in (one, two, again)]
    assert results[0]["before"] is None
    assert results[1]["before"] is None, "another worker's file is not visible"
    assert results[0]["uid"] != results[1]["uid"]
    assert results[2]["before"] == "fn-f-1\n", "a warm worker keeps its own /tmp between invocations"
    assert not Path("/tmp", NAME).exists(), "nothing reaches the host's /tmp"
