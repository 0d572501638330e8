"""The ledger's APIs (ours): checkpoints, inclusion and consistency proofs, and the archive signing keys.

- ``GET /v3/{project_id}/ledger/checkpoint``: the signed checkpoint of the project's tree now
- ``GET /v3/{project_id}/traces/{trace_id}/proof[?tree_size=N]``: the trace (its stored bytes in
  ``trace_body``, parsed in ``trace``), ``leaf_index``, ``tree_size``, the ``checkpoint`` note and the
  ``audit_path`` (hex, leaf side first)
- ``GET /v3/{project_id}/ledger/consistency?first=M[&second=N]``: the RFC 9162 consistency proof (hex)
  from size M to the checkpoint of size N (default: now)
- ``GET /v3/{project_id}/archive/signing-keys``: the published keys, the same list in every project
- ``POST /v3/{project_id}/archive/signing-keys/rotate``: a new key takes over now
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from opencts.api.auth import require
from opencts.api.bodies import json_body, json_response
from opencts.api.deps import ServicesDep
from opencts.archive import signing_keys
from opencts.clock import now_ms
from opencts.iam.principal import Principal
from opencts.ledger import proofs
from opencts.ledger.checkpoint import Checkpoint
from opencts.ledger.repository import NoteSigner

router = APIRouter(tags=["ledger"])
Reader = Annotated[Principal, Depends(require("cts:ledger:get"))]
KeyReader = Annotated[Principal, Depends(require("cts:signingKeys:list"))]
KeyAdmin = Annotated[Principal, Depends(require("cts:signingKeys:rotate"))]
Size = Annotated[int | None, Query(ge=1, le=2**62)]


def _checkpoint_doc(checkpoint: Checkpoint) -> dict[str, Any]:
    return {
        "checkpoint": checkpoint.note,
        "origin": checkpoint.origin,
        "tree_size": checkpoint.size,
        "root_hash": checkpoint.root.hex(),
        "time": checkpoint.time_ms,
        "last_seq": checkpoint.last_seq,
    }


@router.get(
    "/v3/{project_id}/ledger/checkpoint", name="getCheckpoint", summary="The tree's signed checkpoint"
)
async def get_checkpoint(project_id: str, services: ServicesDep, caller: Reader) -> Response:
    signer = NoteSigner.from_settings(services.settings, services.box)
    checkpoint = await services.db.write(lambda conn: proofs.current_checkpoint(conn, project_id, signer))
    return json_response(_checkpoint_doc(checkpoint))


@router.get(
    "/v3/{project_id}/traces/{trace_id}/proof",
    name="getTraceProof",
    summary="A trace with its inclusion proof against a signed checkpoint",
)
async def get_trace_proof(
    project_id: str, trace_id: str, services: ServicesDep, caller: Reader, tree_size: Size = None
) -> Response:
    signer = NoteSigner.from_settings(services.settings, services.box)
    proof = await services.db.write(
        lambda conn: proofs.trace_proof(conn, project_id, trace_id, signer, tree_size=tree_size)
    )
    body = {
        "trace": orjson.loads(proof.body),
        "trace_body": proof.body.decode(),
        "leaf_hash": proof.leaf_hash.hex(),
        "leaf_index": proof.leaf_index,
        "tree_size": proof.checkpoint.size,
        "audit_path": [h.hex() for h in proof.audit_path],
        **_checkpoint_doc(proof.checkpoint),
    }
    return json_response(body)


@router.get(
    "/v3/{project_id}/ledger/consistency",
    name="getConsistencyProof",
    summary="A consistency proof between two tree sizes",
)
async def get_consistency(
    project_id: str,
    services: ServicesDep,
    caller: Reader,
    first: Annotated[int, Query(ge=0, le=2**62)],
    second: Size = None,
) -> Response:
    signer = NoteSigner.from_settings(services.settings, services.box)
    proof, checkpoint = await services.db.write(
        lambda conn: proofs.consistency(conn, project_id, first, second, signer)
    )
    body = {
        "first": first,
        "second": checkpoint.size,
        "proof": [h.hex() for h in proof],
        **_checkpoint_doc(checkpoint),
    }
    return json_response(body)


@router.get(
    "/v3/{project_id}/archive/signing-keys",
    name="listSigningKeys",
    summary="The public keys that sign checkpoints and digests, with their validity",
)
async def list_signing_keys(project_id: str, services: ServicesDep, caller: KeyReader) -> Response:
    signer = NoteSigner.from_settings(services.settings, services.box)
    await services.db.write(lambda conn: signer.key(conn, now_ms()))  # there is always a current key
    keys = await services.db.read(signing_keys.published_keys)
    return json_response({"keys": keys})


class _NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@router.post(
    "/v3/{project_id}/archive/signing-keys/rotate",
    name="rotateSigningKey",
    summary="Retire the current signing key and start a new one",
)
async def rotate_signing_key(
    project_id: str, request: Request, services: ServicesDep, caller: KeyAdmin
) -> Response:
    if (await request.body()).strip():  # no body, or an empty JSON object: nothing to choose yet
        await json_body(request, _NoOptions)
    signer = NoteSigner.from_settings(services.settings, services.box)
    key = await services.db.write(
        lambda conn: signing_keys.rotate(conn, services.box, now_ms(), name=signer.key_name)
    )
    keys = await services.db.read(signing_keys.published_keys)
    return json_response({"current": key.fingerprint, "keys": keys})
