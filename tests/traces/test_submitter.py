"""The submitter recorded for each way in: an access key, a token, and OpenCTS itself."""

from __future__ import annotations

from opencts.iam.principal import Principal
from opencts.traces.submitter import SELF, Submitter


def principal(**overrides: object) -> Principal:
    values: dict[str, object] = {
        "user_id": "u1",
        "user_name": "OpenCTS",  # a user may pick the service's name: the label still differs
        "domain_id": "d1",
        "domain_name": "acme",
        "project_id": "p1",
        "roles": frozenset(),
        "method": "aksk",
        "access_key": "AK1",
    }
    values.update(overrides)
    return Principal(**values)  # type: ignore[arg-type]


def test_an_access_key_is_recorded_with_its_user() -> None:
    by = Submitter.of(principal())
    assert by.record == {
        "type": "user",
        "user_id": "u1",
        "user_name": "OpenCTS",
        "auth": "aksk",
        "access_key_id": "AK1",
    }
    assert by.label == "OpenCTS (AK1)" != SELF.label


def test_a_token_is_recorded_as_such() -> None:
    by = Submitter.of(principal(method="token", access_key=None))
    assert by.record["auth"] == "token" and "access_key_id" not in by.record
    assert by.label == "OpenCTS (token)" != SELF.label


def test_opencts_itself() -> None:
    assert SELF.record == {"type": "service", "name": "OpenCTS"} and SELF.label == "OpenCTS"
