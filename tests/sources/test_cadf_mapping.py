"""CADF events made by pycadf (as keystonemiddleware and Keystone make them) mapped to CTS traces."""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
import pytest
from pycadf import cadftaxonomy as taxonomy
from pycadf import reason

from cadf_helpers import audit_response, keystone_event
from opencts.clock import now_ms
from opencts.sources.cadf import (
    OPERATIONS,
    Mapped,
    NotCadf,
    Notification,
    map_notification,
    resource_in_path,
    singular,
    trace_id_of,
    unwrap,
)
from opencts.traces.ingest import prepare
from opencts.traces.model import SERVICE_TYPE_PATTERN, TRACE_NAME_PATTERN


def mapped(event_type: str, payload: dict[str, Any]) -> Mapped:
    result = map_notification(Notification(event_type, payload))
    assert result is not None
    return result


def accepted(trace: dict[str, Any]) -> dict[str, Any]:
    """The trace as ingest stores it (it must be accepted as it is)."""
    batch = prepare([trace], project_id="p" * 32, now=now_ms(), retention_ms=7 * 86_400_000)
    assert batch.results[0].status == "accepted", batch.results[0].reason
    body: dict[str, Any] = orjson.loads(batch.rows[0].body)
    return body


def test_a_server_created_through_nova_is_a_create_server_trace() -> None:
    payload = audit_response(project_id="a" * 32, user_name="alice", address="192.0.2.10", status=202)
    result = mapped("audit.http.response", payload)
    trace = accepted(result.trace)
    assert result.openstack_project == "a" * 32
    assert trace["trace_id"] == payload["id"]
    assert (trace["service_type"], trace["resource_type"], trace["trace_name"]) == (
        "ECS",
        "server",
        "createServer",
    )
    assert (trace["code"], trace["trace_rating"], trace["trace_type"]) == ("202", "normal", "ApiCall")
    assert trace["user"]["name"] == "alice" and trace["user"]["id"] == payload["initiator"]["id"]
    assert trace["source_ip"] == "192.0.2.10"
    assert trace["api_version"] == "v2.1"
    assert trace["endpoint"] == "http://nova.example.com:8774/v2.1"
    assert trace["request_id"] == payload["initiator"]["request_id"]
    assert "resource_id" not in trace  # nova names the new server only in its response body


@pytest.mark.parametrize(
    ("action", "path", "type_uri", "status", "expected"),
    [
        (
            "delete",
            "/v2.1/servers/abc-1",
            "service/compute/servers/server",
            204,
            ("deleteServer", "server", "abc-1"),
        ),
        (
            "read/list",
            "/v2.1/servers/detail",
            "service/compute/servers/detail",
            200,
            ("listServers", "server", None),
        ),
        (
            "update/os-start",
            "/v2.1/servers/abc-1/action",
            "service/compute/servers/server/action",
            202,
            ("startServer", "server", "abc-1"),
        ),
        (
            "update/reboot",
            "/v2.1/servers/abc-1/action",
            "service/compute/servers/server/action",
            409,
            ("rebootServer", "server", "abc-1"),
        ),
        (
            "delete",
            "/v3/volumes/vol-9",
            "service/storage/block/volumes/volume",
            500,
            ("deleteVolume", "volume", "vol-9"),
        ),
        ("create", "/v2.0/networks", "service/network/networks", 201, ("createNetwork", "network", None)),
        (
            "read",
            "/v2/images/img-2",
            "service/storage/image/images/image",
            404,
            ("getImage", "image", "img-2"),
        ),
    ],
)
def test_http_audit_events_name_the_resource_from_the_path(
    action: str, path: str, type_uri: str, status: int, expected: tuple[str, str, str | None]
) -> None:
    trace = accepted(
        mapped(
            "audit.http.response",
            audit_response(method_action=action, path=path, type_uri=type_uri, status=status),
        ).trace
    )
    assert (trace["trace_name"], trace["resource_type"], trace.get("resource_id")) == expected
    assert trace["code"] == str(status)
    rating = "normal" if status < 400 else "warning" if status < 500 else "incident"
    assert trace["trace_rating"] == rating


def test_a_successful_keystone_login_is_a_login_trace() -> None:
    user_id = uuid.uuid4().hex
    payload = keystone_event("authenticate", taxonomy.OUTCOME_SUCCESS, taxonomy.ACCOUNT_USER, user_id=user_id)
    trace = accepted(mapped("identity.authenticate", payload).trace)
    assert (trace["service_type"], trace["resource_type"], trace["trace_name"]) == ("IAM", "user", "login")
    assert (trace["code"], trace["trace_rating"]) == ("200", "normal")
    assert trace["resource_id"] == user_id and trace["resource_name"] == "alice"
    assert trace["source_ip"] == "198.51.100.7"


def test_a_failed_keystone_login_is_a_warning_and_a_locked_account_keeps_its_code() -> None:
    failed = accepted(
        mapped(
            "identity.authenticate",
            keystone_event("authenticate", taxonomy.OUTCOME_FAILURE, taxonomy.ACCOUNT_USER, user_id="u1"),
        ).trace
    )
    assert (failed["trace_name"], failed["code"], failed["trace_rating"]) == ("login", "401", "warning")
    locked = keystone_event("authenticate", taxonomy.OUTCOME_FAILURE, taxonomy.ACCOUNT_USER, user_id="u1")
    locked["reason"] = reason.Reason(reasonType="The account is locked", reasonCode="401").as_dict()
    trace = accepted(mapped("identity.authenticate", locked).trace)
    assert trace["code"] == "401" and "account is locked" in trace["message"]


@pytest.mark.parametrize(
    ("event_type", "action", "target_type", "name", "rtype"),
    [
        ("identity.user.created", "created.user", taxonomy.SECURITY_ACCOUNT_USER, "createUser", "user"),
        (
            "identity.project.deleted",
            "deleted.project",
            taxonomy.SECURITY_PROJECT,
            "deleteProject",
            "project",
        ),
        ("identity.domain.disabled", "disabled.domain", taxonomy.SECURITY_DOMAIN, "disableDomain", "domain"),
        (
            "identity.OS-TRUST:trust.created",
            "created.OS-TRUST:trust",
            taxonomy.SECURITY_TRUST,
            "createTrust",
            "trust",
        ),
        (
            "identity.role_assignment.created",
            "created.role_assignment",
            taxonomy.ACCOUNT_USER,
            "createRoleAssignment",
            "roleAssignment",
        ),
    ],
)
def test_keystone_crud_notifications(
    event_type: str, action: str, target_type: str, name: str, rtype: str
) -> None:
    rid = uuid.uuid4().hex
    payload = keystone_event(
        action,
        taxonomy.OUTCOME_SUCCESS,
        target_type,
        target_id=rid,
        user_id="admin-id",
        project_id="b" * 32,
        resource_info=rid,
    )
    result = mapped(event_type, payload)
    trace = accepted(result.trace)
    assert (trace["service_type"], trace["trace_name"], trace["resource_type"]) == ("IAM", name, rtype)
    assert trace["resource_id"] == rid and result.openstack_project == "b" * 32
    assert name in OPERATIONS["IAM"][rtype]


def test_the_stored_request_keeps_the_event_but_not_the_credential() -> None:
    payload = audit_response()
    payload["initiator"]["credential"] = {"token": "gAAAAB***secret***", "identity_status": "Confirmed"}
    payload["attachments"] = [
        {"name": "partial_password_hash", "content": "abc", "typeURI": "mime:text/plain"}
    ]
    trace = accepted(mapped("audit.http.response", payload).trace)
    stored = orjson.loads(trace["request"])
    assert stored["id"] == payload["id"] and stored["requestPath"] == payload["requestPath"]
    assert "credential" not in stored["initiator"] and "attachments" not in stored
    assert "secret" not in trace["request"]


def test_the_pending_request_event_is_no_trace() -> None:
    assert map_notification(Notification("audit.http.request", audit_response())) is None


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"not json", "not JSON"),
        (b'{"oslo.version": "3.0", "oslo.message": "{}"}', "oslo.version"),
        (b'{"oslo.version": "2.0", "oslo.message": "[1]"}', "no event_type"),
        (b'{"oslo.version": "2.0", "oslo.message": "{nope"}', "not JSON"),
        (b"[1, 2]", "no event_type"),
    ],
)
def test_what_is_no_notification(body: bytes, match: str) -> None:
    with pytest.raises(NotCadf, match=match):
        unwrap(body)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"resource_info": "abc"}, "not a CADF event"),  # Keystone's "basic" notification format
        ({"typeURI": "http://schemas.dmtf.org/cloud/audit/1.0/event", "id": "x"}, "no eventTime"),
        (
            {
                "typeURI": "http://schemas.dmtf.org/cloud/audit/1.0/event",
                "id": "x",
                "eventTime": "yesterday",
                "action": "create",
                "outcome": "success",
            },
            "not an ISO 8601 time",
        ),
    ],
)
def test_what_is_no_cadf_event(payload: dict[str, Any], match: str) -> None:
    with pytest.raises(NotCadf, match=match):
        map_notification(Notification("identity.user.created", payload))


def test_trace_ids_are_the_event_ids_or_a_stable_uuid_of_them() -> None:
    event_id = str(uuid.uuid4())
    assert trace_id_of(event_id) == event_id
    odd = "urn:openstack:event/1"
    assert trace_id_of(odd) == trace_id_of(odd) != odd
    assert str(uuid.UUID(trace_id_of(odd))) == trace_id_of(odd)


def test_resource_from_the_type_uri_and_path() -> None:
    path = ["v2.1", "servers", "s1", "os-interface", "p1"]
    trail = ["servers", "server", "os-interface", "interface"]
    assert resource_in_path(trail, path) == ("os-interface", "interface", "p1")
    assert resource_in_path([], ["v1"]) == (None, None, None)
    assert [singular(w) for w in ("servers", "policies", "addresses", "access")] == [
        "server",
        "policy",
        "address",
        "access",
    ]


def test_an_unknown_service_keeps_its_name() -> None:
    trace = mapped(
        "audit.http.response",
        audit_response(
            type_uri="service/container-infra/clusters", path="/v1/clusters", method_action="create"
        ),
    ).trace
    assert (trace["service_type"], trace["trace_name"]) == ("CONTAINER-INFRA", "createCluster")


def test_the_operations_catalogue_holds_valid_trace_names() -> None:
    names = [name for resources in OPERATIONS.values() for names in resources.values() for name in names]
    assert names and all(re.fullmatch(TRACE_NAME_PATTERN, name) for name in names)
    assert all(re.fullmatch(SERVICE_TYPE_PATTERN, service) for service in OPERATIONS)
    assert "login" in OPERATIONS["IAM"]["user"] and "deleteServer" in OPERATIONS["ECS"]["server"]
