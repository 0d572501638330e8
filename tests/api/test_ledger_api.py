"""The ledger APIs end to end in process: proofs that verify on the client, tampering that is caught."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Connection, delete, select, update

from cts_helpers import Api, TraceFactory
from opencts.consumers import ConsumerRunner
from opencts.ledger.consumer import LedgerConsumer
from opencts.ledger.verifying import LedgerVerificationError, check_consistency, check_inclusion
from opencts.store import Database
from opencts.store.tables import consumer_cursors, ledger_checkpoints, ledger_tiles, ledger_trees, traces


async def drain(api: Api) -> None:
    db: Database = api.app.state.services.db
    await ConsumerRunner(db, LedgerConsumer(db)).drain()


async def vkeys(api: Api) -> list[str]:
    resp = await api.client.get(f"/v3/{api.project}/archive/signing-keys")
    assert resp.status_code == 200
    return [k["note_verifier_key"] for k in resp.json()["keys"]]


async def get(api: Api, path: str, **params: Any) -> dict[str, Any]:
    resp = await api.client.get(f"/v3/{api.project}{path}", params=params)
    assert resp.status_code == 200, resp.text
    doc: dict[str, Any] = resp.json()
    return doc


async def test_inclusion_proofs_verify_and_a_body_changed_behind_the_tree_does_not(
    api: Api, make_trace: TraceFactory
) -> None:
    batch = [make_trace() for _ in range(10)]
    assert (await api.put(batch)).status_code == 200
    missing = await api.client.get(f"/v3/{api.project}/traces/{batch[3]['trace_id']}/proof")
    assert missing.status_code == 404 and "not in the ledger yet" in missing.json()["error_msg"]
    await drain(api)
    keys = await vkeys(api)
    checkpoint = await get(api, "/ledger/checkpoint")
    assert checkpoint["tree_size"] == 10
    for trace in batch:
        answer = await get(api, f"/traces/{trace['trace_id']}/proof")
        assert answer["trace"]["trace_id"] == trace["trace_id"]
        assert check_inclusion(answer, keys).size == answer["tree_size"]

    db: Database = api.app.state.services.db
    victim = batch[3]["trace_id"]

    def tamper(conn: Connection) -> None:
        body = conn.execute(select(traces.c.body).where(traces.c.trace_id == victim)).scalar_one()
        # one byte more: still the same JSON, and the same trace to anyone reading it
        conn.execute(update(traces).where(traces.c.trace_id == victim).values(body=bytes(body) + b" "))

    db.write_sync(tamper)
    answer = await get(api, f"/traces/{victim}/proof")
    with pytest.raises(LedgerVerificationError, match="changed after it was logged"):
        check_inclusion(answer, keys)
    assert check_inclusion(await get(api, f"/traces/{batch[4]['trace_id']}/proof"), keys)


async def test_consistency_proofs_show_growth_and_catch_a_rewritten_log(
    api: Api, make_trace: TraceFactory
) -> None:
    first = [make_trace() for _ in range(5)]
    await api.put(first)
    await drain(api)
    keys = await vkeys(api)
    old = await get(api, "/ledger/checkpoint")
    await api.put([make_trace() for _ in range(7)])
    await drain(api)
    answer = await get(api, "/ledger/consistency", first=old["tree_size"])
    assert check_consistency(old["checkpoint"], answer, keys).size > old["tree_size"]
    # an old proof is still served against the old checkpoint
    assert check_inclusion(
        await get(api, f"/traces/{first[0]['trace_id']}/proof", tree_size=old["tree_size"]), keys
    )

    # someone rewrites an early trace and rebuilds the ledger from scratch: a new tree, signed by the same key
    db: Database = api.app.state.services.db

    def rewrite(conn: Connection) -> None:
        conn.execute(
            update(traces).where(traces.c.trace_id == first[1]["trace_id"]).values(body=b'{"forged":1}')
        )
        for table in (ledger_checkpoints, ledger_tiles, ledger_trees):
            conn.execute(delete(table))
        conn.execute(delete(consumer_cursors).where(consumer_cursors.c.name == "ledger"))

    db.write_sync(rewrite)
    await drain(api)
    answer = await get(api, "/ledger/consistency", first=old["tree_size"])
    with pytest.raises(LedgerVerificationError, match="not an extension"):
        check_consistency(old["checkpoint"], answer, keys)


async def test_signing_keys_rotate_and_old_checkpoints_still_verify(
    api: Api, make_trace: TraceFactory
) -> None:
    await api.put([make_trace()])
    await drain(api)
    old = await get(api, "/ledger/checkpoint")
    resp = await api.client.post(f"/v3/{api.project}/archive/signing-keys/rotate")
    assert resp.status_code == 200
    keys = resp.json()["keys"]
    assert (
        len(keys) == 2
        and keys[0]["valid_to"] is not None
        and keys[1]["fingerprint"] == resp.json()["current"]
    )
    await api.put([make_trace()])
    await drain(api)
    answer = await get(api, "/ledger/consistency", first=old["tree_size"])
    assert check_consistency(old["checkpoint"], answer, [k["note_verifier_key"] for k in keys])
    with pytest.raises(LedgerVerificationError, match="not signed by a published key"):
        check_consistency(old["checkpoint"], answer, [keys[1]["note_verifier_key"]])
