"""First start: create the account, its project, the admin user and an AK/SK, and write them down.

``credentials.json`` (mode 0600) is the only place the admin password and secret key are ever shown;
the database keeps a password hash and the secret key sealed under the master key. A later start finds
the domain and leaves everything alone, and so does a node that joins a database another node set up:
it needs no ``credentials.json`` of its own.

The project's management tracker is the caller's to create in the same transaction (the server does, in
``api.app``): IAM does not depend on CTS.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from opencts.clock import now_ms
from opencts.iam.keyring import seal_secret_key
from opencts.iam.permissions import SECURITY_ADMINISTRATOR, TENANT_ADMINISTRATOR
from opencts.iam.secrets import (
    SecretBox,
    hash_password,
    new_access_key,
    new_id,
    new_password,
    new_secret_key,
)
from opencts.store.files import open_private
from opencts.store.tables import credentials, domains, group_members, group_roles, groups, projects, users

ADMIN_GROUP = "admin"
#: as on Huawei Cloud, the account's first user administers both the services and IAM
ADMIN_ROLES = (TENANT_ADMINISTRATOR, SECURITY_ADMINISTRATOR)


@dataclass(frozen=True)
class BootstrapCredentials:
    domain_id: str
    domain_name: str
    project_id: str
    project_name: str
    region: str
    user_name: str
    password: str
    access_key: str
    secret_key: str


def bootstrap(
    conn: Connection,
    *,
    box: SecretBox,
    region: str,
    domain_name: str = "opencts",
    password: str | None = None,
) -> BootstrapCredentials | None:
    """Create the first account if there is none; returns its credentials, or None if it existed."""
    if conn.execute(select(domains.c.id).limit(1)).first() is not None:
        return None
    now = now_ms()
    creds = BootstrapCredentials(
        domain_id=new_id(),
        domain_name=domain_name,
        project_id=new_id(),
        project_name=region,  # Huawei names a region's default project after the region
        region=region,
        user_name="admin",
        password=password or new_password(),
        access_key=new_access_key(),
        secret_key=new_secret_key(),
    )
    user_id, group_id = new_id(), new_id()
    try:
        with conn.begin_nested():
            conn.execute(insert(domains).values(id=creds.domain_id, name=domain_name, created_at=now))
    except IntegrityError:  # another node sharing the database bootstrapped it a moment earlier
        return None
    conn.execute(
        insert(projects).values(id=creds.project_id, domain_id=creds.domain_id, name=region, created_at=now)
    )
    conn.execute(
        insert(users).values(
            id=user_id,
            domain_id=creds.domain_id,
            name=creds.user_name,
            password_hash=hash_password(creds.password),
            enabled=True,
            created_at=now,
        )
    )
    conn.execute(
        insert(groups).values(
            id=group_id,
            domain_id=creds.domain_id,
            name=ADMIN_GROUP,
            description="administrators",
            created_at=now,
        )
    )
    conn.execute(insert(group_members).values(group_id=group_id, user_id=user_id))
    for role in ADMIN_ROLES:
        conn.execute(insert(group_roles).values(group_id=group_id, role=role))
    conn.execute(
        insert(credentials).values(
            access_key=creds.access_key,
            secret_key=seal_secret_key(box, creds.access_key, creds.secret_key),
            user_id=user_id,
            status="active",
            description="created at first start",
            created_at=now,
        )
    )
    return creds


def write_credentials(path: Path, creds: BootstrapCredentials) -> None:
    """Write with mode 0600 from the first byte: the file is never readable by others, even briefly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_private(path) as fh:
        fh.write(json.dumps(asdict(creds), indent=2).encode() + b"\n")


def read_credentials(path: Path) -> BootstrapCredentials:
    data = json.loads(path.read_text())
    return BootstrapCredentials(**{k: data[k] for k in BootstrapCredentials.__dataclass_fields__})
