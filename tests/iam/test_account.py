"""Account administration (``iam``: users, groups, credentials, projects) on SQLite and PostgreSQL: rules,
quotas, and account isolation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection, insert, select

from opencts.errors import BadRequest, Conflict, NotFound, QuotaExceeded
from opencts.iam import credentials, groups, projects, users
from opencts.iam.account import security_admins
from opencts.iam.authenticate import load_credential, load_identity
from opencts.iam.bootstrap import ADMIN_GROUP, BootstrapCredentials, bootstrap
from opencts.iam.permissions import CTS_READ_ONLY, SECURITY_ADMINISTRATOR
from opencts.iam.secrets import SecretBox, check_password, new_id
from opencts.iam.tokens import issue
from opencts.store import Database, tables

T = TypeVar("T")
GOOD_PASSWORD = "Correct-Horse-9"

BOX = SecretBox(bytes(range(32)))


@dataclass
class Account:
    db: Database
    creds: BootstrapCredentials
    admin_id: str
    admin_group_id: str

    @property
    def domain(self) -> str:
        return self.creds.domain_id

    def write(self, fn: Callable[[Connection], T]) -> T:
        return self.db.write_sync(fn)

    def read(self, fn: Callable[[Connection], T]) -> T:
        return self.db.read_sync(fn)

    def do(self, fn: Callable[..., T], **kwargs: Any) -> T:
        """Call an ``admin`` function as this account, in a write transaction of its own."""
        kwargs.setdefault("domain_id", self.domain)
        return self.db.write_sync(lambda conn: fn(conn, **kwargs))


def make_domain(conn: Connection, name: str) -> str:
    """A second account: bootstrap refuses once one exists, so it is inserted directly."""
    domain_id = new_id()
    conn.execute(insert(tables.domains).values(id=domain_id, name=name, created_at=0))
    return domain_id


@pytest.fixture
def account(database: Database) -> Account:
    creds = database.write_sync(lambda conn: bootstrap(conn, box=BOX, region="r-1", password="Admin-Pass-1"))
    assert creds is not None
    domain_id = creds.domain_id
    admin_id = database.read_sync(lambda c: users.list_users(c, domain_id=domain_id)[0].id)
    group_id = database.read_sync(
        lambda c: groups.list_groups(c, domain_id=domain_id, name=ADMIN_GROUP)[0].id
    )
    account = Account(database, creds, admin_id, group_id)
    # The first admin manages IAM (README: Tenant Administrator + Security Administrator); idempotent.
    account.do(groups.grant_role, group_id=group_id, role=SECURITY_ADMINISTRATOR)
    return account


def password_hash(account: Account, user_id: str) -> str:
    stmt = select(tables.users.c.password_hash).where(tables.users.c.id == user_id)
    return str(account.read(lambda c: c.execute(stmt).scalar()))


def test_create_user_hashes_the_password(account: Account) -> None:
    user = account.do(users.create_user, name="alice", password=GOOD_PASSWORD)
    assert (user.name, user.enabled, len(user.id)) == ("alice", True, 32)
    stored = password_hash(account, user.id)
    assert GOOD_PASSWORD not in stored and check_password(stored, GOOD_PASSWORD)
    assert [u.name for u in account.do(users.list_users)] == ["admin", "alice"]


@pytest.mark.parametrize("name", ["", "a" * 65, "has space", "ünïcode", "semi;colon", "x/y"])
def test_bad_user_names_are_refused(account: Account, name: str) -> None:
    with pytest.raises(BadRequest, match="user name must be 1-64 characters"):
        account.do(users.create_user, name=name, password=GOOD_PASSWORD)


@pytest.mark.parametrize(
    ("password", "reason"),
    [("Ab1", "8-128 characters"), ("abcdefghij", "two"), ("12345678", "two"), ("x" * 129, "8-128")],
)
def test_password_policy(account: Account, password: str, reason: str) -> None:
    with pytest.raises(BadRequest, match=reason) as caught:
        account.do(users.create_user, name="bob", password=password)
    assert password not in caught.value.message


def test_two_classes_are_enough(account: Account) -> None:
    for i, password in enumerate(["abcdefg1", "ABCDEFGh", "abcdefg!"]):
        account.do(users.create_user, name=f"u{i}", password=password)


def test_user_names_are_unique_per_account_only(account: Account) -> None:
    account.do(users.create_user, name="carol", password=GOOD_PASSWORD)
    with pytest.raises(Conflict, match="already exists"):
        account.do(users.create_user, name="carol", password=GOOD_PASSWORD)
    other = account.write(lambda c: make_domain(c, "other"))
    account.do(users.create_user, domain_id=other, name="carol", password=GOOD_PASSWORD)
    assert len(account.do(users.list_users, domain_id=other)) == 1


def test_another_accounts_rows_are_not_found(account: Account) -> None:
    other = account.write(lambda c: make_domain(c, "other"))
    guest = account.do(users.create_user, domain_id=other, name="guest", password=GOOD_PASSWORD)
    group = account.do(groups.create_group, domain_id=other, name="g")
    key = account.do(
        credentials.create_credential, box=BOX, domain_id=other, user_id=guest.id
    ).credential.access_key
    mine = account.domain
    attempts: list[Callable[[Connection], object]] = [
        lambda c: users.get_user(c, domain_id=mine, user_id=guest.id),
        lambda c: users.update_user(c, domain_id=mine, user_id=guest.id, enabled=False),
        lambda c: users.delete_user(c, domain_id=mine, user_id=guest.id),
        lambda c: groups.get_group(c, domain_id=mine, group_id=group.id),
        lambda c: groups.add_member(c, domain_id=mine, group_id=account.admin_group_id, user_id=guest.id),
        lambda c: groups.add_member(c, domain_id=other, group_id=account.admin_group_id, user_id=guest.id),
        lambda c: groups.grant_role(c, domain_id=mine, group_id=group.id, role=CTS_READ_ONLY),
        lambda c: groups.delete_group(c, domain_id=mine, group_id=group.id),
        lambda c: credentials.create_credential(c, box=BOX, domain_id=mine, user_id=guest.id),
        lambda c: credentials.list_credentials(c, domain_id=mine, user_id=guest.id),
        lambda c: credentials.update_credential(c, domain_id=mine, access_key=key, status="inactive"),
        lambda c: credentials.delete_credential(c, domain_id=mine, access_key=key),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound):
            account.write(attempt)
    assert key not in {c.access_key for c in account.do(credentials.list_credentials, domain_id=mine)}
    assert account.read(lambda c: load_credential(c, key, BOX)) is not None  # untouched


def test_disable_enable_and_new_password(account: Account) -> None:
    user = account.do(users.create_user, name="dave", password=GOOD_PASSWORD)
    token, _ = account.write(lambda c: issue(c, user_id=user.id, project_id=account.creds.project_id, now=1))
    off = account.do(users.update_user, user_id=user.id, enabled=False)
    assert off.enabled is False
    identity = account.read(lambda c: load_identity(c, user.id))
    assert identity is not None and identity.enabled is False
    account.do(users.update_user, user_id=user.id, enabled=True)
    account.do(users.update_user, user_id=user.id, password="New-Pass-22")
    stored = password_hash(account, user.id)
    assert check_password(stored, "New-Pass-22") and not check_password(stored, GOOD_PASSWORD)
    stmt = select(tables.tokens.c.revoked).where(tables.tokens.c.user_id == user.id)
    revoked = account.read(lambda c: c.execute(stmt).scalar())
    assert revoked is True  # whoever knew the old password must log in again
    assert token


def test_delete_user_takes_keys_tokens_and_memberships(account: Account) -> None:
    user = account.do(users.create_user, name="erin", password=GOOD_PASSWORD)
    group = account.do(groups.create_group, name="readers")
    account.do(groups.add_member, group_id=group.id, user_id=user.id)
    account.do(credentials.create_credential, box=BOX, user_id=user.id)
    account.write(lambda c: issue(c, user_id=user.id, project_id=None, now=1))
    account.do(users.delete_user, user_id=user.id)
    for table in (tables.credentials, tables.tokens, tables.group_members):
        stmt = select(table).where(table.c.user_id == user.id)
        assert account.read(lambda c: c.execute(stmt).first()) is None  # noqa: B023 - called at once
    with pytest.raises(NotFound):
        account.do(users.get_user, user_id=user.id)


def test_the_last_security_administrator_cannot_be_removed(account: Account) -> None:
    d, admin_id, group_id = account.domain, account.admin_id, account.admin_group_id
    assert account.do(security_admins) == 1
    refused: list[Callable[[Connection], object]] = [
        lambda c: users.delete_user(c, domain_id=d, user_id=admin_id),
        lambda c: users.update_user(c, domain_id=d, user_id=admin_id, enabled=False),
        lambda c: groups.remove_member(c, domain_id=d, group_id=group_id, user_id=admin_id),
        lambda c: groups.revoke_role(c, domain_id=d, group_id=group_id, role=SECURITY_ADMINISTRATOR),
        lambda c: groups.delete_group(c, domain_id=d, group_id=group_id),
    ]
    for attempt in refused:
        with pytest.raises(Conflict, match="without an enabled user holding Security Administrator"):
            account.write(attempt)
    assert account.do(security_admins) == 1  # every refusal rolled back
    second = account.do(users.create_user, name="sec2", password=GOOD_PASSWORD)
    account.do(groups.add_member, group_id=group_id, user_id=second.id)
    account.do(users.delete_user, user_id=admin_id)
    assert account.do(security_admins) == 1


def test_groups_members_and_roles(account: Account) -> None:
    user = account.do(users.create_user, name="frank", password=GOOD_PASSWORD)
    group = account.do(groups.create_group, name="auditors", description="read traces")
    with pytest.raises(Conflict):
        account.do(groups.create_group, name="auditors")
    for _ in range(2):  # PUT semantics: idempotent
        account.do(groups.add_member, group_id=group.id, user_id=user.id)
        account.do(groups.grant_role, group_id=group.id, role=CTS_READ_ONLY)
    assert [u.name for u in account.do(groups.list_members, group_id=group.id)] == ["frank"]
    assert account.do(groups.list_group_roles, group_id=group.id) == [CTS_READ_ONLY]
    identity = account.read(lambda c: load_identity(c, user.id))
    assert identity is not None and identity.roles == {CTS_READ_ONLY}
    with pytest.raises(BadRequest, match="valid roles: .*CTS ReadOnlyAccess"):
        account.do(groups.grant_role, group_id=group.id, role="God Mode")
    account.do(groups.revoke_role, group_id=group.id, role=CTS_READ_ONLY)
    with pytest.raises(NotFound, match="does not hold"):
        account.do(groups.revoke_role, group_id=group.id, role=CTS_READ_ONLY)
    account.do(groups.remove_member, group_id=group.id, user_id=user.id)
    with pytest.raises(NotFound, match="not a member"):
        account.do(groups.remove_member, group_id=group.id, user_id=user.id)
    account.do(groups.delete_group, group_id=group.id)
    assert [g.name for g in account.do(groups.list_groups)] == [ADMIN_GROUP]


def test_credentials_quota_listing_and_status(account: Account) -> None:
    user = account.do(users.create_user, name="gina", password=GOOD_PASSWORD)
    first = account.do(credentials.create_credential, box=BOX, user_id=user.id, description="ci")
    assert len(first.credential.access_key) == 20 and len(first.secret_key) == 40
    account.do(credentials.create_credential, box=BOX, user_id=user.id)
    with pytest.raises(QuotaExceeded, match="at most|the most"):
        account.do(credentials.create_credential, box=BOX, user_id=user.id)
    listed = account.do(credentials.list_credentials, user_id=user.id)
    assert len(listed) == 2 and all(not hasattr(c, "secret_key") for c in listed)
    ak = first.credential.access_key
    updated = account.do(credentials.update_credential, access_key=ak, status="inactive")
    assert updated.status == "inactive" and updated.description == "ci"
    loaded = account.read(lambda c: load_credential(c, ak, BOX))
    assert loaded is not None and loaded.active is False
    with pytest.raises(BadRequest, match="active or inactive"):
        account.do(credentials.update_credential, access_key=ak, status="paused")
    account.do(credentials.delete_credential, access_key=ak)
    assert account.read(lambda c: load_credential(c, ak, BOX)) is None
    account.do(credentials.create_credential, box=BOX, user_id=user.id)  # room again
    every = {c.user_name for c in account.do(credentials.list_credentials)}
    assert every == {"admin", "gina"}


def test_projects_are_named_and_unique_per_account(account: Account) -> None:
    project = account.do(projects.create_project, name="r-1_staging")
    assert len(project.id) == 32
    with pytest.raises(Conflict):
        account.do(projects.create_project, name="r-1_staging")
    for bad in ("Upper", "", "a" * 65, "dot.ted"):
        with pytest.raises(BadRequest, match="project name"):
            account.do(projects.create_project, name=bad)
    other = account.write(lambda c: make_domain(c, "other"))
    account.do(projects.create_project, domain_id=other, name="r-1_staging")
    assert {p.name for p in account.do(projects.list_projects)} == {"r-1", "r-1_staging"}
    assert [p.domain_id for p in account.do(projects.list_projects, domain_id=other)] == [other]


@pytest.mark.parametrize("odd", ["\x00", "a\x00b", "x" * 500, "../admin", "ünï", ""])
def test_odd_ids_and_names_are_simply_not_found(account: Account, odd: str) -> None:
    """PostgreSQL refuses NUL bytes in text with an error: such input must end as 404/empty, never a 500."""
    for fn, kwargs in (
        (users.get_user, {"user_id": odd}),
        (groups.get_group, {"group_id": odd}),
        (credentials.get_credential, {"access_key": odd}),
        (credentials.create_credential, {"box": BOX, "user_id": odd}),
    ):
        with pytest.raises(NotFound):
            account.do(fn, **kwargs)
    assert account.do(users.list_users, name=odd) == []
    assert account.do(groups.list_groups, name=odd) == []
    with pytest.raises(BadRequest):
        account.do(groups.grant_role, group_id=account.admin_group_id, role=odd)
