"""``opencts iam``: users, groups, roles, access keys and projects of your account.

Users and groups can be named by name or by id; names are resolved with the list calls, so the commands
read the way people think ("add alice to auditors"). Listings take ``--json`` for scripts. A new secret key
is printed exactly once, by ``credentials create``: the server cannot show it again.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape

from opencts.cli.client import ApiClient
from opencts.cli.common import (
    Column,
    DataDirOpt,
    EndpointOpt,
    JsonOpt,
    console,
    err,
    fail,
    fit_table,
    print_json,
    session,
)

app = typer.Typer(help="Manage users, groups, roles, access keys and projects.", no_args_is_help=True)
users_app = typer.Typer(help="Users of your account.", no_args_is_help=True)
groups_app = typer.Typer(help="User groups, their members and their roles.", no_args_is_help=True)
credentials_app = typer.Typer(help="Access keys (AK/SK) of users.", no_args_is_help=True)
projects_app = typer.Typer(help="Projects of your account.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(groups_app, name="groups")
app.add_typer(credentials_app, name="credentials")
app.add_typer(projects_app, name="projects")


#: names and ids are what the other commands take, so they stay whole; dates and descriptions go first
USER_COLUMNS = (Column("Name", shrink=12), Column("Id"), Column("Enabled"), Column("Created (UTC)", drop=1))
GROUP_COLUMNS = (
    Column("Name", shrink=12),
    Column("Id", drop=2),
    Column("Roles", shrink=16, wrap=True),
    Column("Members", shrink=12, wrap=True),
    Column("Description", drop=1, shrink=12),
)
CREDENTIAL_COLUMNS = (
    Column("Access key"),
    Column("User", shrink=10),
    Column("Status"),
    Column("Description", drop=1, shrink=10),
    Column("Created (UTC)", drop=2),
    Column("Last used (UTC)", drop=3),
)
PROJECT_COLUMNS = (Column("Name", shrink=12), Column("Id"))
ROLE_COLUMNS = (Column("Role"), Column("Allows", shrink=20, wrap=True))

YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
UserArg = Annotated[str, typer.Argument(help="User name or id.")]
GroupArg = Annotated[str, typer.Argument(help="Group name or id.")]
AccessKeyArg = Annotated[str, typer.Argument(help="The access key (AK).")]


def _find(client: ApiClient, path: str, key: str, ref: str, kind: str) -> dict[str, Any]:
    """An item by id, else by name: ids win, so a name that looks like another item's id is not ambiguous."""
    items: list[dict[str, Any]] = client.request("GET", path).json()[key]
    for item in items:
        if item["id"] == ref:
            return item
    for item in items:
        if item["name"] == ref:
            return item
    raise fail(f"no {kind} named {ref!r} (or with that id) in this account")


def _user(client: ApiClient, ref: str) -> dict[str, Any]:
    return _find(client, "/v3/users", "users", ref, "user")


def _group(client: ApiClient, ref: str) -> dict[str, Any]:
    return _find(client, "/v3/groups", "groups", ref, "group")


def _when(value: str | None) -> str:
    return value[:19].replace("T", " ") if value else ""


def _confirm(yes: bool, question: str) -> None:
    if not yes and not typer.confirm(question):
        raise typer.Exit(1)


# -- users --------------------------------------------------------------------------------------------------


@users_app.command("list")
def users_list(as_json: JsonOpt = False, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """List the users of your account."""
    with session(endpoint, data_dir) as client:
        found = client.request("GET", "/v3/users").json()["users"]
    if as_json:
        print_json({"users": found})
        return
    rows = [
        [
            escape(u["name"]),
            u["id"],
            "[green]yes[/]" if u["enabled"] else "[red]no[/]",
            _when(u.get("create_time")),
        ]
        for u in found
    ]
    console.print(fit_table(USER_COLUMNS, rows))


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(help="1-64 characters: letters, digits, _ . -")],
    password: Annotated[
        str,
        typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="At least 8 characters."),
    ],
    disabled: Annotated[bool, typer.Option("--disabled", help="Create the user disabled.")] = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a user who can log in with a password; add them to a group to give them roles."""
    body = {"user": {"name": name, "password": password, "enabled": not disabled}}
    with session(endpoint, data_dir) as client:
        user = client.request("POST", "/v3.0/OS-USER/users", body=body).json()["user"]
    console.print(f"created user [bold]{user['name']}[/bold] ({user['id']})")


def _set_enabled(ref: str, enabled: bool, endpoint: str | None, data_dir: Any) -> None:
    with session(endpoint, data_dir) as client:
        user = _user(client, ref)
        client.request("PATCH", f"/v3/users/{user['id']}", body={"user": {"enabled": enabled}})
    console.print(f"user [bold]{user['name']}[/bold] {'enabled' if enabled else 'disabled'}")


@users_app.command("disable")
def users_disable(user: UserArg, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """Disable a user: their password and access keys stop working until enabled again."""
    _set_enabled(user, False, endpoint, data_dir)


@users_app.command("enable")
def users_enable(user: UserArg, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """Enable a disabled user."""
    _set_enabled(user, True, endpoint, data_dir)


@users_app.command("unlock")
def users_unlock(user: UserArg, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """Let a user locked out by wrong passwords log in again now (the lockout would end on its own)."""
    with session(endpoint, data_dir) as client:
        found = _user(client, user)
        client.request("DELETE", f"/v3/users/{found['id']}/lockout")
    console.print(f"user [bold]{found['name']}[/bold] may log in again")


@users_app.command("delete")
def users_delete(
    user: UserArg, yes: YesOpt = False, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Delete a user with their access keys and group memberships."""
    with session(endpoint, data_dir) as client:
        found = _user(client, user)
        _confirm(yes, f"delete user {found['name']} and their access keys?")
        client.request("DELETE", f"/v3/users/{found['id']}")
    console.print(f"deleted user [bold]{found['name']}[/bold]")


# -- groups -------------------------------------------------------------------------------------------------


@groups_app.command("list")
def groups_list(as_json: JsonOpt = False, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """List groups with their roles and members."""
    with session(endpoint, data_dir) as client:
        found = client.request("GET", "/v3/groups").json()["groups"]
        for g in found:
            base = f"/v3/groups/{g['id']}"
            g["roles"] = [r["name"] for r in client.request("GET", f"{base}/roles").json()["roles"]]
            g["users"] = [u["name"] for u in client.request("GET", f"{base}/users").json()["users"]]
    if as_json:
        print_json({"groups": found})
        return
    rows = [
        [
            escape(g["name"]),
            g["id"],
            escape(", ".join(g["roles"])),
            escape(", ".join(g["users"])),
            escape(g["description"]),
        ]
        for g in found
    ]
    console.print(fit_table(GROUP_COLUMNS, rows))


@groups_app.command("create")
def groups_create(
    name: Annotated[str, typer.Argument(help="1-64 characters: letters, digits, _ . -")],
    description: Annotated[str, typer.Option(help="What the group is for.")] = "",
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a user group."""
    with session(endpoint, data_dir) as client:
        body = {"group": {"name": name, "description": description}}
        created = client.request("POST", "/v3/groups", body=body).json()["group"]
    console.print(f"created group [bold]{created['name']}[/bold] ({created['id']})")


@groups_app.command("delete")
def groups_delete(
    group: GroupArg, yes: YesOpt = False, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Delete a group; its members lose the roles it granted."""
    with session(endpoint, data_dir) as client:
        found = _group(client, group)
        _confirm(yes, f"delete group {found['name']}?")
        client.request("DELETE", f"/v3/groups/{found['id']}")
    console.print(f"deleted group [bold]{found['name']}[/bold]")


def _membership(method: str, group: str, user: str, endpoint: str | None, data_dir: Any) -> tuple[str, str]:
    with session(endpoint, data_dir) as client:
        g, u = _group(client, group), _user(client, user)
        client.request(method, f"/v3/groups/{g['id']}/users/{u['id']}")
    return g["name"], u["name"]


@groups_app.command("add-user")
def groups_add_user(
    group: GroupArg, user: UserArg, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Add a user to a group (they get the group's roles)."""
    g, u = _membership("PUT", group, user, endpoint, data_dir)
    console.print(f"added [bold]{u}[/bold] to group [bold]{g}[/bold]")


@groups_app.command("remove-user")
def groups_remove_user(
    group: GroupArg, user: UserArg, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Remove a user from a group."""
    g, u = _membership("DELETE", group, user, endpoint, data_dir)
    console.print(f"removed [bold]{u}[/bold] from group [bold]{g}[/bold]")


def _role(method: str, group: str, role: str, endpoint: str | None, data_dir: Any) -> str:
    with session(endpoint, data_dir) as client:
        g = _group(client, group)
        client.request(method, f"/v3/groups/{g['id']}/roles/{quote(role, safe='')}")
    return str(g["name"])


RoleArg = Annotated[str, typer.Argument(help="Role name, e.g. 'CTS ReadOnlyAccess' (see opencts iam roles).")]


@groups_app.command("grant")
def groups_grant(
    group: GroupArg, role: RoleArg, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Grant a role to a group."""
    name = _role("PUT", group, role, endpoint, data_dir)
    console.print(f"granted [bold]{role}[/bold] to group [bold]{name}[/bold]")


@groups_app.command("revoke")
def groups_revoke(
    group: GroupArg, role: RoleArg, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Revoke a role from a group."""
    name = _role("DELETE", group, role, endpoint, data_dir)
    console.print(f"revoked [bold]{role}[/bold] from group [bold]{name}[/bold]")


# -- credentials --------------------------------------------------------------------------------------------


@credentials_app.command("list")
def credentials_list(
    user: Annotated[str | None, typer.Option(help="Only this user's keys (name or id).")] = None,
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List access keys (never their secret keys)."""
    with session(endpoint, data_dir) as client:
        params = {"user_id": _user(client, user)["id"]} if user else None
        found = client.request("GET", "/v3.0/OS-CREDENTIAL/credentials", params=params).json()["credentials"]
    if as_json:
        print_json({"credentials": found})
        return
    rows = [
        [
            c["access"],
            escape(c.get("user_name", c["user_id"])),
            "[green]active[/]" if c["status"] == "active" else "[red]inactive[/]",
            escape(c["description"]),
            _when(c["create_time"]),
            _when(c.get("last_use_time")),
        ]
        for c in found
    ]
    console.print(fit_table(CREDENTIAL_COLUMNS, rows))


@credentials_app.command("create")
def credentials_create(
    user: UserArg,
    description: Annotated[str, typer.Option(help="What the key is for.")] = "",
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create an access key for a user (at most two each) and print its secret key, this once."""
    with session(endpoint, data_dir) as client:
        u = _user(client, user)
        body = {"credential": {"user_id": u["id"], "description": description}}
        cred = client.request("POST", "/v3.0/OS-CREDENTIAL/credentials", body=body).json()["credential"]
    err.print("[yellow]The secret key is shown only now and cannot be retrieved later: store it safely.[/]")
    if as_json:
        print_json({"credential": cred})
        return
    console.print(f"user:        {u['name']}")
    console.print(f"access key:  {cred['access']}")
    console.print(f"secret key:  {cred['secret']}", highlight=False)


def _set_status(access_key: str, status: str, endpoint: str | None, data_dir: Any) -> None:
    with session(endpoint, data_dir) as client:
        path = f"/v3.0/OS-CREDENTIAL/credentials/{quote(access_key, safe='')}"
        client.request("PUT", path, body={"credential": {"status": status}})
    console.print(f"access key {access_key} is now {status}")


@credentials_app.command("disable")
def credentials_disable(
    access_key: AccessKeyArg, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Deactivate an access key: requests signed with it are refused until it is enabled again."""
    _set_status(access_key, "inactive", endpoint, data_dir)


@credentials_app.command("enable")
def credentials_enable(
    access_key: AccessKeyArg, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Activate an access key again."""
    _set_status(access_key, "active", endpoint, data_dir)


@credentials_app.command("delete")
def credentials_delete(
    access_key: AccessKeyArg, yes: YesOpt = False, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Delete an access key for good."""
    _confirm(yes, f"delete access key {access_key}?")
    with session(endpoint, data_dir) as client:
        client.request("DELETE", f"/v3.0/OS-CREDENTIAL/credentials/{quote(access_key, safe='')}")
    console.print(f"deleted access key {access_key}")


# -- projects and roles -------------------------------------------------------------------------------------


@projects_app.command("list")
def projects_list(
    as_json: JsonOpt = False, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None
) -> None:
    """List the projects of your account."""
    with session(endpoint, data_dir) as client:
        found = client.request("GET", "/v3/projects").json()["projects"]
    if as_json:
        print_json({"projects": found})
        return
    console.print(fit_table(PROJECT_COLUMNS, [[escape(p["name"]), p["id"]] for p in found]))


@projects_app.command("create")
def projects_create(
    name: Annotated[str, typer.Argument(help="1-64 characters: a-z 0-9 _ -")],
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a project; it starts with its management tracker, so its traces are kept at once."""
    with session(endpoint, data_dir) as client:
        project = client.request("POST", "/v3/projects", body={"project": {"name": name}}).json()["project"]
    console.print(f"created project [bold]{project['name']}[/bold] ({project['id']})")


@app.command("roles")
def roles(as_json: JsonOpt = False, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """List the roles a group can be granted, with the actions each allows."""
    with session(endpoint, data_dir) as client:
        found = client.request("GET", "/v3/roles").json()["roles"]
    if as_json:
        print_json({"roles": found})
        return
    rows = [[escape(r["name"]), escape(", ".join(r["actions"]))] for r in found]
    console.print(fit_table(ROLE_COLUMNS, rows))
