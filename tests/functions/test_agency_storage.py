"""The object store's key pair an agency hands out: which agencies, what the context returns, never shown.

The handler runs in the real pool (a sandboxed worker process); the issuer runs against the real app.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from runtime_support import CodeStore, make_spec, running_pool, zipped

from cts_helpers import in_process_api
from opencts.config import Settings
from opencts.functions import repository
from opencts.functions.agency_storage import StorageGrant, grant_from, parse_agencies
from opencts.functions.credentials import AgencyCredentials
from opencts.functions.runtime import Credentials

STORE_KEY = "STOREKEY0FUNCTIONS01"
STORE_SECRET = "store-secret-7c1e0a9b44d2f3e6"
TEMPORARY = Credentials(
    access_key="AK4TESTING0001",
    secret_key="sk-9f2a77e1c0d4b6a8secret",
    security_token="st-0123456789abcdef-token",
    auth_token="MIIauth-token-0123456789",
    expires_at_ms=0,
)
WITH_STORE = Credentials(
    access_key=TEMPORARY.access_key,
    secret_key=TEMPORARY.secret_key,
    security_token=TEMPORARY.security_token,
    auth_token=TEMPORARY.auth_token,
    expires_at_ms=0,
    storage_access_key=STORE_KEY,
    storage_secret_key=STORE_SECRET,
)

HANDLER = """
import json
from obs import *  # the OBS SDK, as the seeds' handler imports it


def handler(event, context):
    print("store secret", context.getSecretKey())
    return {
        "obs": ObsClient.__name__,
        "ak": context.getAccessKey(),
        "sk": context.getSecretKey(),
        "sak": context.getSecurityAccessKey(),
        "ssk": context.getSecuritySecretKey(),
        "st": context.getSecurityToken(),
        "token": context.getToken(),
    }
"""


def test_the_grant_names_its_agencies_or_every_one() -> None:
    assert parse_agencies("*") is None and parse_agencies("a, *") is None
    assert parse_agencies(" serverless_trust , ,ops ") == frozenset({"serverless_trust", "ops"})
    some = StorageGrant("k", SecretStr("s"), frozenset({"ops"}))
    assert some.covers("ops") and not some.covers("serverless_trust")
    every = StorageGrant("k", SecretStr("s"), None)
    assert every.covers("anything") and not every.covers("") and not every.covers(None)


def test_the_settings_take_the_pair_whole_and_never_show_the_secret(tmp_path: Path) -> None:
    assert grant_from(Settings(data_dir=tmp_path)) is None
    with pytest.raises(ValidationError, match="go together"):
        Settings(data_dir=tmp_path, functions_storage_access_key=STORE_KEY)
    with pytest.raises(ValidationError, match="go together"):
        Settings(data_dir=tmp_path, functions_storage_secret_key=STORE_SECRET)
    with pytest.raises(ValidationError, match="rewrite trace files"):
        Settings(
            data_dir=tmp_path,
            s3_access_key=STORE_KEY,
            functions_storage_access_key=STORE_KEY,
            functions_storage_secret_key=STORE_SECRET,
        )
    settings = Settings(
        data_dir=tmp_path,
        s3_access_key="archive-key",
        functions_storage_access_key=STORE_KEY,
        functions_storage_secret_key=STORE_SECRET,
        functions_storage_agencies="ops",
    )
    grant = grant_from(settings)
    assert grant is not None and grant.agencies == frozenset({"ops"})
    assert grant.secret_key.get_secret_value() == STORE_SECRET
    for text in (repr(settings), repr(grant), repr(WITH_STORE)):
        assert STORE_SECRET not in text
    for secret in (TEMPORARY.secret_key, TEMPORARY.security_token, TEMPORARY.auth_token):
        assert secret not in repr(WITH_STORE)


async def test_a_handler_signs_for_the_store_with_get_access_key_and_for_opencts_with_the_rest(
    tmp_path: Path,
) -> None:
    store = CodeStore()
    spec = make_spec(store, HANDLER, memory_mb=256)
    async with running_pool(tmp_path, store) as pool:
        granted = await pool.invoke(spec, b"{}", request_id="r1", credentials=WITH_STORE)
        plain = await pool.invoke(spec, b"{}", request_id="r2", credentials=TEMPORARY)
    assert granted.status == "success", granted
    value = json.loads(granted.result)
    assert value["obs"] == "ObsClient"
    assert (value["ak"], value["sk"]) == (STORE_KEY, STORE_SECRET)
    assert (value["sak"], value["ssk"], value["st"], value["token"]) == (
        TEMPORARY.access_key,
        TEMPORARY.secret_key,
        TEMPORARY.security_token,
        TEMPORARY.auth_token,
    )
    assert "store secret ******" in granted.log and STORE_SECRET not in granted.log
    # without a grant the context is as before: the temporary OpenCTS pair
    assert plain.status == "success", plain
    assert json.loads(plain.result)["ak"] == TEMPORARY.access_key
    assert json.loads(plain.result)["sk"] == TEMPORARY.secret_key


async def test_only_the_agencies_the_grant_covers_hand_out_the_store_keys(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        bind="127.0.0.1:8080",
        ingest_workers=0,
        functions_storage_access_key=STORE_KEY,
        functions_storage_secret_key=STORE_SECRET,
        functions_storage_agencies="ops_agency",
    )
    async with in_process_api(settings) as api:
        services = api.app.state.services
        issuer = AgencyCredentials(services.db, services.box, storage=grant_from(settings))
        issued: dict[str, Credentials | None] = {}
        for name, agency in (("covered", "ops_agency"), ("other", "serverless_trust"), ("none", "")):
            body = {
                "func_name": name,
                "package": "default",
                "runtime": "Python3.10",
                "handler": "index.handler",
                "memory_size": 128,
                "timeout": 3,
                "code_type": "zip",
                "func_code": {"file": base64.b64encode(zipped({"index.py": HANDLER})).decode()},
                **({"xrole": agency} if agency else {}),
            }
            made = await api.client.post(f"/v2/{api.project}/fgs/functions", json=body)
            assert made.status_code < 300, made.text
            urn = made.json()["func_urn"]
            record = await services.db.read(lambda c, u=urn: repository.get_by_urn(c, api.project, u))
            issued[name] = await issuer(record, record.timeout)
    covered, other = issued["covered"], issued["other"]
    assert covered is not None and other is not None and issued["none"] is None
    assert (covered.storage_access_key, covered.storage_secret_key) == (STORE_KEY, STORE_SECRET)
    assert (other.storage_access_key, other.storage_secret_key) == ("", "")
    assert covered.access_key != STORE_KEY and covered.security_token  # the OpenCTS pair is still issued
