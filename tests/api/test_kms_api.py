"""The KMS API through signed requests: create, list, describe, disable, enable, rotate; one project's keys
are invisible and unusable in another."""

from __future__ import annotations

import httpx
import pytest

from cts_helpers import Api
from opencts.api.deps import Services
from opencts.archive.envelope import open_envelope, seal
from opencts.client.signing import HmacAuth
from opencts.iam.projects import create_project
from opencts.kms import KeyDisabled, KeyNotFound
from opencts.kms.keys import ENABLED


def kms(api: Api, op: str, project: str | None = None) -> str:
    return f"/v1.0/{project or api.project}/kms/{op}"


async def test_key_lifecycle_through_the_api(api: Api) -> None:
    created = await api.client.post(
        kms(api, "create-key"), json={"key_alias": "archive", "sequence": "9" * 36}
    )
    assert created.status_code == 200, created.text
    key_id = created.json()["key_info"]["key_id"]
    assert created.json()["key_info"]["domain_id"] == api.creds.domain_id
    again = await api.client.post(kms(api, "create-key"), json={"key_alias": "archive"})
    assert again.status_code == 409 and again.json()["error_code"] == "CTS.0409"

    described = (await api.client.post(kms(api, "describe-key"), json={"key_id": key_id})).json()["key_info"]
    assert described["key_alias"] == "archive" and described["key_state"] == ENABLED
    assert described["key_spec"] == "AES_256" and described["key_version"] == 1

    disabled = await api.client.post(kms(api, "disable-key"), json={"key_id": key_id})
    assert disabled.json() == {"key_info": {"key_id": key_id, "key_state": "3"}}
    services: Services = api.app.state.services
    assert services.kms is not None
    with pytest.raises(KeyDisabled):
        services.kms.data_key(api.project, key_id)
    enabled = await api.client.post(kms(api, "enable-key"), json={"key_id": key_id})
    assert enabled.json()["key_info"]["key_state"] == "2"
    old = seal(b"old", services.kms.data_key(api.project, key_id))

    rotated = await api.client.post(kms(api, "rotate-key"), json={"key_id": key_id})
    assert rotated.json() == {"key_info": {"key_id": key_id, "key_version": 2}}
    assert services.kms.data_key(api.project, key_id).key_version == 2
    assert open_envelope(old, lambda h: services.kms.unwrap(api.project, h)) == b"old"  # type: ignore[union-attr]

    listed = (await api.client.post(kms(api, "list-keys"), json={})).json()
    assert listed["keys"] == [key_id] and listed["total"] == 1 and listed["truncated"] == "false"
    assert listed["key_details"][0]["key_version"] == 2


async def test_listing_pages_and_filters_by_state(api: Api) -> None:
    ids = []
    for n in range(3):
        made = await api.client.post(kms(api, "create-key"), json={"key_alias": f"k{n}"})
        ids.append(made.json()["key_info"]["key_id"])
    first = (await api.client.post(kms(api, "list-keys"), json={"limit": "2"})).json()
    assert first["keys"] == ids[:2] and first["truncated"] == "true" and first["total"] == 3
    rest = (
        await api.client.post(kms(api, "list-keys"), json={"limit": "2", "marker": first["next_marker"]})
    ).json()
    assert rest["keys"] == ids[2:] and rest["truncated"] == "false" and rest["next_marker"] == ""
    await api.client.post(kms(api, "disable-key"), json={"key_id": ids[1]})
    off = (await api.client.post(kms(api, "list-keys"), json={"key_state": "3"})).json()
    assert off["keys"] == [ids[1]]


async def test_bad_bodies_are_named(api: Api) -> None:
    for body, field in (
        ({}, "key_alias"),
        ({"key_alias": "a b"}, "key_alias"),
        ({"key_alias": "x/default"}, "key_alias"),
        ({"key_alias": "ok", "key_spec": "RSA_2048"}, "key_spec"),
    ):
        resp = await api.client.post(kms(api, "create-key"), json=body)
        assert resp.status_code == 400 and field in resp.json()["error_msg"], resp.text
    ghost = await api.client.post(kms(api, "describe-key"), json={"key_id": "0" * 36})
    assert ghost.status_code == 404 and ghost.json()["error_code"] == "KMS.0207"


async def test_another_project_neither_sees_nor_uses_a_key(api: Api) -> None:
    services: Services = api.app.state.services
    other = await services.db.write(
        lambda conn: create_project(conn, domain_id=api.creds.domain_id, name="local-1_other")
    )
    key_id = (await api.client.post(kms(api, "create-key"), json={"key_alias": "mine"})).json()["key_info"][
        "key_id"
    ]
    auth = HmacAuth(api.creds.access_key, api.creds.secret_key, project_id=other.id)
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080", auth=auth) as client:
        listed = (await client.post(kms(api, "list-keys", other.id), json={})).json()
        assert listed["keys"] == [] and listed["total"] == 0
        for op in ("describe-key", "disable-key", "enable-key", "rotate-key"):
            resp = await client.post(kms(api, op, other.id), json={"key_id": key_id})
            assert resp.status_code == 404 and resp.json()["error_code"] == "KMS.0207", op
        same_alias = await client.post(kms(api, "create-key", other.id), json={"key_alias": "mine"})
        assert same_alias.status_code == 200  # aliases are per project
    assert services.kms is not None
    with pytest.raises(KeyNotFound):
        services.kms.data_key(other.id, key_id)
    described = await api.client.post(kms(api, "describe-key"), json={"key_id": key_id})
    assert described.json()["key_info"]["key_version"] == 1  # untouched by the other project's calls


async def test_key_calls_are_audited_as_kms(api: Api) -> None:
    await api.client.post(kms(api, "create-key"), json={"key_alias": "audited"})
    traces = (await api.list(service_type="KMS", trace_name="createKey")).json()["traces"]
    assert len(traces) == 1 and traces[0]["resource_type"] == "key"
