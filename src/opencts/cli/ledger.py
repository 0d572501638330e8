"""``opencts ledger checkpoint|prove|consistency``: the Merkle ledger, checked on this side.

``prove`` and ``consistency`` do not take the server's word: they fetch the published signing keys and
verify the note's signature and the proof with :mod:`opencts.ledger.verifying` (pure RFC 9162 code),
then say so; a proof that does not verify exits 1 naming what failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from opencts.cli.client import ApiClient, CliError, resolve_target
from opencts.cli.common import DataDirOpt, EndpointOpt, console, print_json
from opencts.ledger.verifying import LedgerVerificationError, check_consistency, check_inclusion, old_size

app = typer.Typer(
    help="The Merkle ledger: signed checkpoints, inclusion and consistency proofs.", no_args_is_help=True
)


def _vkeys(client: ApiClient) -> list[str]:
    keys = client.request("GET", f"/v3/{client.project}/archive/signing-keys").json()["keys"]
    return [str(k["note_verifier_key"]) for k in keys]


def _get(client: ApiClient, path: str, **params: Any) -> dict[str, Any]:
    doc: dict[str, Any] = client.request("GET", f"/v3/{client.project}{path}", params=params or None).json()
    return doc


@app.command("checkpoint")
def checkpoint(endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """Print the project's signed checkpoint (a C2SP note; save it to check growth later)."""
    with ApiClient(resolve_target(endpoint, data_dir)) as client:
        doc = _get(client, "/ledger/checkpoint")
    console.print(doc["checkpoint"], end="", markup=False, highlight=False)


@app.command("prove")
def prove(
    trace_id: Annotated[str, typer.Argument(help="The trace to prove.")],
    tree_size: Annotated[int | None, typer.Option(help="Prove against this checkpointed size.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the API's answer as JSON.")] = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Fetch a trace's inclusion proof and verify it here against the signed checkpoint."""
    with ApiClient(resolve_target(endpoint, data_dir)) as client:
        params = {"tree_size": tree_size} if tree_size else {}
        answer = _get(client, f"/traces/{trace_id}/proof", **params)
        vkeys = _vkeys(client)
    try:
        signed = check_inclusion(answer, vkeys)
    except LedgerVerificationError as exc:
        raise CliError(f"trace {trace_id}: {exc}") from None
    if json_output:
        print_json({**answer, "verified": True})
        return
    console.print(
        f"verified: trace {trace_id} is leaf {answer['leaf_index']} of the tree of size {signed.size}"
        f" (root {signed.root.hex()}), checkpoint signed by a published key",
        markup=False,
    )


@app.command("consistency")
def consistency(
    old: Annotated[Path, typer.Option("--from", help="A checkpoint note saved earlier.")],
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Verify here that the project's tree today extends an old checkpoint: the log has only grown."""
    try:
        note = old.read_text()
    except OSError as exc:
        raise CliError(f"cannot read {old}: {exc.strerror or exc}") from None
    try:
        size = old_size(note)
        with ApiClient(resolve_target(endpoint, data_dir)) as client:
            answer = _get(client, "/ledger/consistency", first=size)
            new = check_consistency(note, answer, _vkeys(client))
    except LedgerVerificationError as exc:
        raise CliError(str(exc)) from None
    console.print(
        f"verified: the tree of size {new.size} (root {new.root.hex()})"
        f" extends the checkpoint of size {size}",
        markup=False,
    )
