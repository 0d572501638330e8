"""Keys and their versions in the database. Functions take a ``Connection``; callers pick the lane.

A key is a project's: every lookup names the project, and a key of another project is
:class:`KeyNotFound` like one that never existed. Each version's 32 bytes of material are sealed under
the KMS master key with ``kms:<key_id>:<version>`` as associated data, so material copied onto another
key or version does not open. Rotation adds a version and makes it current; no version is ever removed,
since files written under it name it in their envelope.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import IntegrityError

from opencts.clock import iso_ms
from opencts.errors import Conflict
from opencts.iam.secrets import SecretBox
from opencts.kms.errors import KEY_VERSION_NOT_FOUND, KeyNotFound
from opencts.kms.model import KEY_SPEC, KEY_USAGE, CreateKey
from opencts.store.tables import kms_key_versions, kms_keys

ENABLED = "2"
DISABLED = "3"
MATERIAL_BYTES = 32
#: the most keys one project may hold (KMS's default quota is 20 customer master keys; archives need few)
MAX_KEYS = 100


def material_context(key_id: str, version: int) -> str:
    return f"kms:{key_id}:{version}"


def _add_version(conn: Connection, box: SecretBox, key_id: str, version: int, now: int) -> None:
    material = os.urandom(MATERIAL_BYTES)
    conn.execute(
        kms_key_versions.insert().values(
            key_id=key_id,
            version=version,
            material=box.seal(material, context=material_context(key_id, version)),
            created_at=now,
        )
    )


def create(
    conn: Connection, box: SecretBox, *, project_id: str, domain_id: str, body: CreateKey, now: int
) -> str:
    """A new enabled key with its first version; 409 when the project has the alias already."""
    count = conn.execute(
        select(func.count()).select_from(kms_keys).where(kms_keys.c.project_id == project_id)
    ).scalar_one()
    if count >= MAX_KEYS:
        raise Conflict(f"a project may hold at most {MAX_KEYS} keys")
    key_id = str(uuid.uuid4())
    try:
        with conn.begin_nested():
            conn.execute(
                kms_keys.insert().values(
                    key_id=key_id,
                    project_id=project_id,
                    domain_id=domain_id,
                    key_alias=body.key_alias,
                    key_description=body.key_description,
                    key_state=ENABLED,
                    current_version=1,
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        raise Conflict(f"a key with alias {body.key_alias} exists already in this project") from None
    _add_version(conn, box, key_id, 1, now)
    return key_id


def get(conn: Connection, project_id: str, key_id: str, *, lock: bool = False) -> Any:
    """The key's row, or :class:`KeyNotFound` (also for another project's key).

    ``lock`` holds the row until commit (PostgreSQL; SQLite has one writer), so two rotations of one
    key on two nodes number their versions one after the other.
    """
    stmt = select(kms_keys).where(kms_keys.c.key_id == key_id, kms_keys.c.project_id == project_id)
    row = conn.execute(stmt.with_for_update() if lock else stmt).first()
    if row is None:
        raise KeyNotFound(f"key {key_id} does not exist in project {project_id}")
    return row


def page(
    conn: Connection, project_id: str, *, limit: int, offset: int, state: str | None
) -> tuple[list[Any], int]:
    """One page of the project's keys, oldest first, and how many there are in all."""
    where = [kms_keys.c.project_id == project_id]
    if state is not None:
        where.append(kms_keys.c.key_state == state)
    total = conn.execute(select(func.count()).select_from(kms_keys).where(*where)).scalar_one()
    rows = conn.execute(
        select(kms_keys)
        .where(*where)
        .order_by(kms_keys.c.created_at, kms_keys.c.key_id)
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), int(total)


def set_state(conn: Connection, project_id: str, key_id: str, *, enabled: bool, now: int) -> str:
    """Enable or disable a key (either twice is no error); returns the new state."""
    get(conn, project_id, key_id)
    state = ENABLED if enabled else DISABLED
    conn.execute(update(kms_keys).where(kms_keys.c.key_id == key_id).values(key_state=state, updated_at=now))
    return state


def rotate(conn: Connection, box: SecretBox, project_id: str, key_id: str, *, now: int) -> int:
    """A new version with fresh material becomes current; earlier versions stay for old files."""
    row = get(conn, project_id, key_id, lock=True)
    version = int(row.current_version) + 1
    _add_version(conn, box, key_id, version, now)
    conn.execute(
        update(kms_keys).where(kms_keys.c.key_id == key_id).values(current_version=version, updated_at=now)
    )
    return version


def material(conn: Connection, box: SecretBox, key_id: str, version: int) -> bytes:
    """One version's material in clear (never stored or logged as such)."""
    sealed = conn.execute(
        select(kms_key_versions.c.material).where(
            kms_key_versions.c.key_id == key_id, kms_key_versions.c.version == version
        )
    ).scalar()
    if sealed is None:
        raise KeyNotFound(f"key {key_id} has no version {version}", code=KEY_VERSION_NOT_FOUND)
    return box.open(sealed, context=material_context(key_id, version))


def render(row: Any) -> dict[str, Any]:
    """KMS's ``KeyDetails`` (strings where KMS has strings), plus the current ``key_version``."""
    return {
        "key_id": row.key_id,
        "domain_id": row.domain_id,
        "key_alias": row.key_alias,
        "realm": None,
        "key_spec": KEY_SPEC,
        "key_usage": KEY_USAGE,
        "key_description": row.key_description,
        "creation_date": str(row.created_at),
        "scheduled_deletion_date": "",
        "key_state": row.key_state,
        "default_key_flag": "0",
        "key_type": "1",
        "expiration_time": "",
        "origin": "kms",
        "key_rotation_enabled": "false",
        "sys_enterprise_project_id": "0",
        "key_version": int(row.current_version),
        "update_time": iso_ms(row.updated_at),
    }
