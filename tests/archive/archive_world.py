"""The archive tests' world: one account (``DOMAIN``) with two projects, ``PROJECT`` and ``OTHER``, each with
its management tracker (no bucket yet). ``tests/archive/conftest.py`` builds it in the ``db`` fixture."""

from __future__ import annotations

from sqlalchemy import Connection, insert

from opencts.store.tables import domains, projects
from opencts.trackers import repository

DOMAIN, PROJECT, OTHER = "d" * 32, "p" * 32, "q" * 32


def two_projects(conn: Connection) -> None:
    conn.execute(insert(domains).values(id=DOMAIN, name="acme", created_at=1))
    for pid, name in ((PROJECT, "r1"), (OTHER, "r2")):
        conn.execute(insert(projects).values(id=pid, domain_id=DOMAIN, name=name, created_at=1))
        repository.create_system_tracker(conn, project_id=pid, domain_id=DOMAIN)
