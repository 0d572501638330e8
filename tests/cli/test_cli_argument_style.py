"""One convention across command groups: what a command creates or acts on is its first argument."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from opencts.cli.main import app
from opencts.testing.server import ServerProcess

runner = CliRunner()


def commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found: list[tuple[tuple[str, ...], Any]] = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found.extend(commands(command, (*path, name)))
        else:
            found.append(((*path, name), command))
    return found


def test_every_create_takes_its_name_as_the_first_argument() -> None:
    root = typer.main.get_command(app)
    creates = [(path, cmd) for path, cmd in commands(root) if path[-1] == "create"]
    assert {p for p, _ in creates} >= {
        ("trackers", "create"),
        ("notifications", "create"),
        ("smn", "topics", "create"),
        ("iam", "users", "create"),
        ("iam", "groups", "create"),
        ("iam", "projects", "create"),
    }
    for path, cmd in creates:
        first = cmd.params[0]
        if path == ("iam", "credentials", "create"):  # a key is created *for* a user, named first
            assert first.name == "user"
            continue
        assert first.param_type_name == "argument" and first.name == "name", path
        # no visible --name beside it (an old spelling may stay, hidden)
        assert not any("--name" in p.opts and not p.hidden for p in cmd.params[1:]), path


@pytest.mark.slow
def test_notifications_create_takes_the_name_positionally_and_the_old_option(
    live_server: ServerProcess,
) -> None:
    target = ["--endpoint", live_server.url, "--data-dir", str(live_server.data_dir)]
    for spelling in (["positional_{}"], ["--name", "option_{}"]):
        name = spelling[-1].format(uuid.uuid4().hex[:8])
        args = [*spelling[:-1], name]
        result = runner.invoke(app, ["notifications", "create", *args, "--disabled", *target])
        assert result.exit_code == 0, result.stderr
        listed = runner.invoke(app, ["notifications", "list", "--name", name, "--json", *target])
        assert name in listed.stdout
