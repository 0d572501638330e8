"""Password login (``iam.login``) on SQLite and PostgreSQL: which project a token is for, and who may not
log in. The lockout and the HTTP answers are in ``test_lockout.py`` and ``tests/api``."""

from __future__ import annotations

import pytest

from opencts.errors import Unauthorized
from opencts.iam import login, projects, users
from opencts.iam.bootstrap import BootstrapCredentials, bootstrap
from opencts.iam.lockout import LockoutPolicy
from opencts.iam.secrets import SecretBox
from opencts.iam.tokens import token_hash
from opencts.store import Database
from opencts.store.tables import tokens

PASSWORD = "Admin-Pass-1"
POLICY = LockoutPolicy()


@pytest.fixture
def creds(database: Database) -> BootstrapCredentials:
    made = database.write_sync(
        lambda conn: bootstrap(conn, box=SecretBox(bytes(32)), region="r-1", password=PASSWORD)
    )
    assert made is not None
    return made


async def log_in(database: Database, creds: BootstrapCredentials, **wanted: str) -> login.Login:
    typed = login.Credentials(creds.user_name, PASSWORD, domain_name=creds.domain_name, **wanted)
    return await login.log_in(database, typed, ip="192.0.2.1", policy=POLICY, now=1_000_000)


async def test_the_token_is_for_the_project_asked_for_or_else_the_oldest(
    database: Database, creds: BootstrapCredentials
) -> None:
    second = database.write_sync(
        lambda conn: projects.create_project(conn, domain_id=creds.domain_id, name="second")
    )
    assert (await log_in(database, creds)).project.id == creds.project_id
    assert (await log_in(database, creds, project_name="second")).project.id == second.id
    done = await log_in(database, creds, project_id=second.id)
    assert done.project.name == "second" and done.identity.user_name == creds.user_name
    stored = database.read_sync(
        lambda conn: conn.execute(tokens.select().where(tokens.c.token_hash == token_hash(done.token))).one()
    )
    assert stored.project_id == second.id and stored.expires_at == done.expires_at


async def test_a_project_of_no_one_or_a_disabled_user_gets_no_token(
    database: Database, creds: BootstrapCredentials
) -> None:
    with pytest.raises(Unauthorized, match="not in your account"):
        await log_in(database, creds, project_name="elsewhere")
    admin = database.read_sync(lambda conn: users.list_users(conn, domain_id=creds.domain_id)[0])
    other = database.write_sync(
        lambda conn: users.create_user(conn, domain_id=creds.domain_id, name="bob", password=PASSWORD)
    )
    database.write_sync(
        lambda conn: users.update_user(conn, domain_id=creds.domain_id, user_id=other.id, enabled=False)
    )
    typed = login.Credentials("bob", PASSWORD, domain_id=creds.domain_id)
    with pytest.raises(Unauthorized, match="disabled"):
        await login.log_in(database, typed, ip=None, policy=POLICY, now=1_000_000)
    with pytest.raises(login.WrongPassword):
        await login.log_in(
            database, login.Credentials(admin.name, "wrong", domain_id=creds.domain_id), ip=None,
            policy=POLICY, now=1_000_000,
        )  # fmt: skip
