"""``opencts verify PATH|s3://BUCKET/PREFIX``: check an archive offline, with no service running.

Exit 0 when everything verifies, 1 otherwise (also when the target or the keys cannot be read). The
failures are listed one per line (problem, hour, object, trace id) under a summary table; ``--json``
prints them as one document instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from opencts.archive.storage import StorageError
from opencts.archive.verify import Options, Result, Unwrap, verify_source
from opencts.archive.verify_source import PublishedKeys, Source, SourceError, load_keys, open_source
from opencts.cli.common import JsonOpt, console, err, fail, print_json
from opencts.cli.timeparse import parse_time
from opencts.clock import now_ms
from opencts.config import Settings


def _key_service(settings: Settings) -> Unwrap:
    from opencts.kms import open_key_service

    return open_key_service(settings).unwrap


def verify(
    target: Annotated[
        str, typer.Argument(help="A bucket's folder, a tarball of one, or s3://BUCKET/PREFIX.")
    ],
    keys: Annotated[
        Path | None,
        typer.Option(
            "--keys",
            help="Published signing keys (the signing-keys API's JSON); default: this "
            "installation's database.",
        ),
    ] = None,
    proofs: Annotated[
        bool, typer.Option("--proofs", help="Check every trace against the signed Merkle tree.")
    ] = False,
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="An older saved checkpoint note the tree must extend.")
    ] = None,
    start: Annotated[str | None, typer.Option("--start", help="Only hours from this time (UTC).")] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--end",
            "--until",
            help="Only hours before this time (UTC); every hour over by then must have a digest (a"
            " missing one is a gap).",
        ),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Parallel reads.")] = 4,
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            min=0,
            help="Processes hashing traces with --proofs (default: the CPU count; 0: none).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify an archive: digest signatures, the chain, every file, and (--proofs) every trace."""
    settings = Settings()
    try:
        options = Options(
            proofs=proofs,
            checkpoint_note=checkpoint.read_text() if checkpoint else None,
            start_ms=parse_time(start, now_ms()) if start else None,
            end_ms=parse_time(end, now_ms()) if end else None,
            workers=workers,
            processes=processes,
            key_service=lambda: _key_service(settings),
        )
        published = load_keys(keys, settings)
        with open_source(target, settings) as source:
            result = _run(source, published, options, progress=not as_json)
    except (SourceError, StorageError, OSError) as exc:
        raise fail(f"cannot verify {target}: {exc}") from None
    if as_json:
        print_json(result.to_json())
    else:
        _print(result)
    raise typer.Exit(0 if result.ok else 1)


def _run(source: Source, published: PublishedKeys, options: Options, *, progress: bool) -> Result:
    if not progress:
        return verify_source(source, published, options)
    columns = (TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("verify", total=None)
        return verify_source(
            source,
            published,
            options,
            on_total=lambda n: bar.update(task, total=n),
            on_done=lambda n: bar.advance(task, n),
        )


def _print(result: Result) -> None:
    table = Table(title="Verification", show_header=False)
    table.add_row("Digests", str(result.digests))
    table.add_row("Trace files", str(result.files))
    table.add_row("Traces", str(result.traces))
    if result.leaves:
        table.add_row("Tree leaves", str(result.leaves))
    table.add_row("Failures", str(len(result.failures)))
    table.add_row("Result", "[green]verified[/]" if result.ok else "[red]FAILED[/]")
    console.print(table)
    for finding in result.findings:
        parts = [
            finding.problem,
            finding.hour or "",
            finding.key or "",
            finding.trace_id or "",
            finding.detail,
        ]
        mark = "FAIL" if finding.failure else "note"
        console.print(f"{mark}  " + "  ".join(p for p in parts if p), markup=False, highlight=False)
