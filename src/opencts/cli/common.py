"""What every ``opencts`` command group shares: where to connect, how to fail, how to print."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console, ConsoleDimensions
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from opencts.cli.client import ApiClient, ApiError, CliError, resolve_target

#: the width of output that goes to a pipe or a file: wide enough that no line is ever wrapped, so a
#: captured value (a URN, an id) is one piece and a table keeps every column
PIPE_WIDTH = 100_000


class CliConsole(Console):
    """A terminal's width on a terminal (``COLUMNS`` wins); no wrapping at all into a pipe or a file.

    Rich would wrap at 80 columns whenever it cannot ask a terminal, which puts newlines inside long values
    that a script captures. ``soft_wrap`` also keeps plain lines whole on a terminal: only tables, which
    are fitted to the width on purpose (:func:`fit_table`), are laid out to it.
    """

    def __init__(self, *, stderr: bool = False) -> None:
        super().__init__(stderr=stderr, soft_wrap=True)

    @property
    def size(self) -> ConsoleDimensions:
        dims = super().size
        if not self.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
            return ConsoleDimensions(PIPE_WIDTH, dims.height)
        return dims

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console = CliConsole()
err = CliConsole(stderr=True)


def one_line(message: str) -> str:
    """Error texts from servers and libraries may hold newlines; an error is one line on stderr."""
    return " ".join(message.split())


def report(message: str) -> None:
    err.print(Text(f"error: {one_line(message)}", style="red"))


class CliGroup(TyperGroup):
    """The top-level group: whatever goes wrong in a command ends as one line on stderr and exit status 1.

    Errors the user can act on (a server that cannot be reached, a file that is missing, an API error)
    are expected here, so they are reported, never shown as a traceback.
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except ApiError as exc:
            report(f"{exc} (request id {exc.request_id})" if exc.request_id else str(exc))
        except CliError as exc:
            report(exc.message)
        except httpx.InvalidURL as exc:
            report(f"not a usable URL: {exc}")
        except httpx.HTTPError as exc:
            report(f"the connection to OpenCTS failed: {exc or type(exc).__name__}")
        except BrokenPipeError:
            # The reader of a pipe (``| head``) has gone: nothing is left to say. What is still buffered
            # goes to /dev/null, or Python's flush at exit would complain about the pipe again.
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):
                pass
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            report(f"{where}{exc.strerror or exc}")
        raise typer.Exit(1)


EndpointOpt = Annotated[
    str | None,
    typer.Option("--endpoint", help="OpenCTS URL (default OPENCTS_ENDPOINT, else http://OPENCTS_BIND)."),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Read credentials.json from here (default OPENCTS_DATA_DIR)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table.")]


@contextmanager
def session(endpoint: str | None, data_dir: Path | None) -> Iterator[ApiClient]:
    """A signed client whose API errors end the command with the server's message and exit status 1."""
    with ApiClient(resolve_target(endpoint, data_dir)) as client:
        yield client


def fail(message: str) -> typer.Exit:
    """Print why, and return the exit to ``raise``."""
    report(message)
    return typer.Exit(1)


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, ensure_ascii=False))  # one document per line, for scripts
    sys.stdout.write("\n")


def topic_urn(client: ApiClient, topic: str) -> str:
    """A URN as given, or the URN of the project's SMN topic with that name."""
    if topic.startswith("urn:"):
        return topic
    found = client.request("GET", f"/v2/{client.project}/notifications/topics", params={"name": topic}).json()
    if not found["topics"]:
        raise fail(f"no topic named {topic!r} in project {client.project}")
    return str(found["topics"][0]["topic_urn"])


# -- tables that fit ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A table column and what may happen to it when the table is wider than the terminal.

    ``drop``: 0 is always shown; otherwise columns go highest number first. ``shrink``: the narrowest width
    the column may be given (its cells then end in an ellipsis, or wrap if ``wrap``); ``None`` keeps it
    whole. Identifiers people copy (ids, URNs, times) are kept whole or dropped, never shortened.
    """

    header: str
    drop: int = 0
    shrink: int | None = None
    wrap: bool = False


def _cell_width(cell: str) -> int:
    return max((Text.from_markup(line).cell_len for line in cell.split("\n")), default=0)


def fit_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    width: int | None = None,
) -> Table:
    """A table laid out for ``width`` (default the console's): the least important columns go first, then
    the columns that may be shortened are, widest first; the others are never cut."""
    width = width or console.width
    natural = [
        max([_cell_width(col.header), *(_cell_width(row[i]) for row in rows)])
        for i, col in enumerate(columns)
    ]

    def least(kept: list[int]) -> int:
        # a box table takes one character per border and one of padding each side of a cell
        return sum(min(natural[i], columns[i].shrink or natural[i]) for i in kept) + 3 * len(kept) + 1

    kept = list(range(len(columns)))
    while least(kept) > width and any(columns[i].drop for i in kept):
        kept.remove(max((i for i in kept if columns[i].drop), key=lambda i: columns[i].drop))
    widths = {i: natural[i] for i in kept}
    excess = sum(widths.values()) + 3 * len(kept) + 1 - width
    while excess > 0:
        shrinkable = [i for i in kept if widths[i] > (columns[i].shrink or widths[i])]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        others = [widths[i] for i in shrinkable if i != widest]
        floor = max(columns[widest].shrink or 0, max(others, default=0), widths[widest] - excess)
        if floor >= widths[widest]:
            floor = widths[widest] - 1
        excess -= widths[widest] - floor
        widths[widest] = floor
    table = Table(title=title)
    for i in kept:
        col = columns[i]
        if widths[i] < natural[i]:
            if col.wrap:
                table.add_column(col.header, width=widths[i], overflow="fold")
            else:
                table.add_column(col.header, width=widths[i], no_wrap=True, overflow="ellipsis")
        else:
            table.add_column(col.header, no_wrap=True)
    for row in rows:
        table.add_row(*(row[i] for i in kept))
    return table
