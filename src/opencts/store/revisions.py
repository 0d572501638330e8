"""Which schema revision a database is at, what an upgrade would run, and the upgrades that are refused.

An operator upgrading OpenCTS needs to know before the start what the new version will do to the
database (``opencts migrate --check``), and a database cannot be handed to a version that does not know
its schema: one written by a newer OpenCTS (an unknown revision) or stepped back on purpose (a
downgrade) would be read with the wrong tables and columns. Both are refused here with a sentence that
says what to do, instead of Alembic's "Can't locate revision" deep inside a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Connection

from opencts.store.migrate import alembic_config


class SchemaRevisionError(Exception):
    """The database's schema cannot be brought to the one this version of OpenCTS needs."""


@dataclass(frozen=True)
class Step:
    """One migration an upgrade would run: its revision and the first line of its docstring."""

    revision: str
    summary: str


def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    """The newest revision this version ships (one head: branches re-chain migrations before a release)."""
    found = scripts().get_current_head()
    assert found is not None, "no migrations shipped"
    return found


def current(conn: Connection) -> str | None:
    """The revision the database is at; None for an empty database (nothing migrated yet)."""
    return MigrationContext.configure(conn).get_current_revision()


def _summary(script: Script) -> str:
    doc = (script.doc or "").strip()
    return doc.splitlines()[0] if doc else ""


def known(revision: str) -> bool:
    try:
        return scripts().get_revision(revision) is not None
    except Exception:  # alembic raises several kinds for an id it has never heard of
        return False


def unknown_message(revision: str) -> str:
    from opencts import __version__

    return (
        f"the database is at schema revision {revision}, which OpenCTS {__version__} does not know "
        f"(its newest is {head()}): it was written by a newer OpenCTS. Run that version, or restore a "
        "backup taken under this one (`opencts restore`); a schema is never taken back by an older version"
    )


def pending(conn: Connection, target: str = "head") -> list[Step]:
    """The migrations an upgrade to ``target`` would run, oldest first; refuses what cannot be done.

    Raises :class:`SchemaRevisionError` when the database's revision is unknown to this version, when
    ``target`` is unknown, or when ``target`` lies before the database's revision (a downgrade).
    """
    at = current(conn)
    if at is not None and not known(at):
        raise SchemaRevisionError(unknown_message(at))
    if target != "head" and not known(target):
        raise SchemaRevisionError(f"{target} is not a schema revision of this OpenCTS (newest: {head()})")
    directory = scripts()
    goal = directory.get_revision(target if target != "head" else head())
    assert goal is not None
    if at is not None and at != goal.revision:
        ahead = {s.revision for s in directory.iterate_revisions(at, "base")}
        if goal.revision in ahead:
            raise SchemaRevisionError(
                f"the database is at schema revision {at}, newer than {goal.revision}: a downgrade is "
                "refused (it would drop data); restore a backup taken at that revision instead"
            )
    steps = list(directory.iterate_revisions(goal.revision, at or "base"))
    steps.reverse()
    return [Step(s.revision, _summary(s)) for s in steps if s.revision != at]
