"""Inserts that meet an existing row: the one place above SQL that has to know which dialect it speaks.

SQLAlchemy has ``ON CONFLICT`` only in the dialect packages (``postgresql.insert``, ``sqlite.insert``);
both spell it the same, so the callers name the table, the key and what to do, and this module picks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, bindparam, case
from sqlalchemy.dialects import postgresql, sqlite

#: rows per statement: well under SQLite's host-parameter limit for the tables that use it
CHUNK = 500


def _insert(conn: Connection, table: Table) -> Any:
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


def insert_ignore(conn: Connection, table: Table, values: Mapping[str, Any], *, key: Sequence[str]) -> bool:
    """Insert one row unless a row with the same ``key`` exists; True if this call inserted it.

    On PostgreSQL a concurrent insert of the same key waits for the other transaction and then does
    nothing, so of two writers exactly one sees True.
    """
    stmt = _insert(conn, table).values(**values).on_conflict_do_nothing(index_elements=list(key))
    # RETURNING rather than rowcount: psycopg does not report a row count for this statement
    return conn.execute(stmt.returning(table.c[key[0]])).first() is not None


def upsert_greatest(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *, key: Sequence[str], column: str
) -> None:
    """Insert rows, or move an existing row's ``column`` up to the new value (never down).

    A batch applied twice therefore changes nothing the second time.
    """
    insert = _insert(conn, table)
    current, new = table.c[column], insert.excluded[column]
    stmt = insert.on_conflict_do_update(
        index_elements=list(key), set_={column: case((current < new, new), else_=current)}
    )
    for start in range(0, len(rows), CHUNK):
        conn.execute(stmt, list(rows[start : start + CHUNK]))


def insert_ignore_many(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    key: Sequence[str],
) -> None:
    """Insert the rows (values in ``columns``' order) whose ``key`` is new and skip the others, in order.

    For consumers that copy the log elsewhere: a batch seen twice (a crash before the cursor moved) adds
    nothing the second time. The statement is compiled once and the rows go to the driver's
    ``executemany`` as plain tuples: SQLAlchemy's per-row parameter processing cost as much as SQLite's
    insert itself (benchmarks/lts_transfer.py, the backlog drain).
    """
    if not rows:
        return
    stmt = _insert(conn, table).values({c: bindparam(c) for c in columns})
    compiled = stmt.on_conflict_do_nothing(index_elements=list(key)).compile(dialect=conn.dialect)
    sql, positions = str(compiled), compiled.positiontup
    if positions is not None and list(positions) != list(columns):  # qmark style, in another order
        order = [list(columns).index(name) for name in positions]
        rows = [tuple(r[i] for i in order) for r in rows]
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        if positions is not None:  # SQLite's qmark style: tuples as they are
            conn.exec_driver_sql(sql, list(chunk))
        else:  # named parameters (psycopg)
            conn.exec_driver_sql(sql, [dict(zip(columns, r, strict=True)) for r in chunk])
