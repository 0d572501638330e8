"""An account's projects. A project's management tracker is the caller's to create, in the same
transaction (``trackers``' ``create_system_tracker``): IAM does not depend on CTS."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from opencts.clock import now_ms
from opencts.errors import NotFound
from opencts.iam.account import PROJECT_NAME, check_name, insert_unique
from opencts.iam.secrets import new_id
from opencts.store.tables import domains, projects


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    domain_id: str
    created_at: int


def create_project(conn: Connection, *, domain_id: str, name: str) -> Project:
    """A new project in the account."""
    check_name("project", name, PROJECT_NAME)
    project = Project(new_id(), name, domain_id, now_ms())
    insert_unique(
        conn,
        "project",
        name,
        insert(projects).values(id=project.id, domain_id=domain_id, name=name, created_at=project.created_at),
    )
    return project


def lock_project(conn: Connection, project_id: str) -> str:
    """Lock the project row so concurrent creates in it cannot both pass a quota check; its domain id.

    On PostgreSQL this is ``FOR UPDATE``; SQLite serialises all writes with ``BEGIN IMMEDIATE`` anyway.
    NotFound if the project does not exist.
    """
    domain_id = conn.execute(
        select(projects.c.domain_id).where(projects.c.id == project_id).with_for_update()
    ).scalar()
    if domain_id is None:
        raise NotFound(f"project {project_id} does not exist")
    return str(domain_id)


def list_projects(conn: Connection, *, domain_id: str, name: str | None = None) -> list[Project]:
    """The account's projects by name, or the one called ``name``."""
    stmt = select(projects).where(projects.c.domain_id == domain_id)
    if name is not None:
        stmt = stmt.where(projects.c.name == name)
    return [
        Project(r.id, r.name, r.domain_id, int(r.created_at))
        for r in conn.execute(stmt.order_by(projects.c.name))
    ]


def first_project(
    conn: Connection,
    *,
    domain_id: str | None = None,
    domain_name: str | None = None,
    project_id: str | None = None,
    project_name: str | None = None,
) -> Project | None:
    """The account's oldest project (its default), or the one named by id or name; None if it has none.

    The account is named by id or, failing that, by name (what a person types at login).
    """
    stmt = select(projects).join(domains, domains.c.id == projects.c.domain_id)
    stmt = stmt.where(domains.c.id == domain_id) if domain_id else stmt.where(domains.c.name == domain_name)
    if project_id:
        stmt = stmt.where(projects.c.id == project_id)
    elif project_name:
        stmt = stmt.where(projects.c.name == project_name)
    r = conn.execute(stmt.order_by(projects.c.created_at).limit(1)).first()
    return None if r is None else Project(r.id, r.name, r.domain_id, int(r.created_at))
