"""The seeds' second function, run as written by an LTS trigger, end to end with real peers.

OpenCTS runs with ``region=eu-de`` (the handler hard-codes it in its topic URN) under uvicorn on a real
port; an aiosmtpd server takes SMN's mail; moto (in server mode, on a real port) is the object store,
with its signature and IAM checks on, so only the key pair the operator gave functions
(``OPENCTS_FUNCTIONS_STORAGE_*``) opens the bucket. The handler is the seeds' text with only the SMN host
in its URL and the OBS connection constants at its top (``secure``, ``port``) changed; it downloads the
object with ``esdk-obs-python``, appends the alarm lines and uploads it, signing with
``context.getAccessKey()``/``getSecretKey()``.

Two data trackers feed two LTS streams, each with an LTS trigger on the function: a quiet stream (no
WARN/ERROR) must send nothing and leave the object as it was; an ERROR record on the other must yield one
SMN mail and the object gains its line. "Nothing" is asserted once that invocation has finished.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from opencts.clock import now_ms
from opencts.functions.lts_triggers import cursor_name
from opencts.store.tables import consumer_cursors, function_invocations, lts_records
from opencts.testing.peers import SmtpSink, links_in
from opencts.testing.s3 import S3Server
from opencts.testing.server import RunningServer, anonymous, running_server
from opencts.testing.waiting import until

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).with_name("samples") / "lts_obs_sample.py.txt"
SMN_HOST = '"https://smn." + region + ".otc.t-systems.com/v2/"'
REGION = "eu-de"
BUCKET = "fn-alarm-logs"
#: in the worker's /tmp too (the handler downloads the object there): unique per run
OBJECT = f"ltsfn-alarms-{uuid.uuid4().hex[:12]}.log"
FIRST_LINE = b"alarm log kept by the seeds' LTS function\n"


@dataclass(frozen=True)
class StoreKeys:
    access_key: str
    secret_key: str


@pytest.fixture
def store(s3_server: str) -> Iterator[tuple[S3Server, StoreKeys]]:
    """The bucket with its first line; a moto IAM user allowed only that bucket; then checks enforced."""
    server = S3Server(int(s3_server.rsplit(":", 1)[1]))
    # moto checks no credentials until the end of this fixture: any key creates the user and the bucket
    iam = boto3.client(
        "iam",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id="admin",
        aws_secret_access_key="admin-secret",
    )
    iam.create_user(UserName="functions")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
            }
        ],
    }
    iam.put_user_policy(UserName="functions", PolicyName="alarm-logs", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="functions")["AccessKey"]
    keys = StoreKeys(key["AccessKeyId"], key["SecretAccessKey"])
    s3 = client(s3_server, keys)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=BUCKET, Key=OBJECT, Body=FIRST_LINE)
    server.set_auth(enforced=True)
    try:
        yield server, keys
    finally:
        server.set_auth(enforced=False)


def client(url: str, keys: StoreKeys) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=keys.access_key,
        aws_secret_access_key=keys.secret_key,
    )


@dataclass
class Stack:
    server: RunningServer
    sink: SmtpSink
    s3: S3Server
    keys: StoreKeys

    @property
    def api(self) -> httpx.AsyncClient:
        return self.server.client

    @property
    def project(self) -> str:
        return self.server.project

    def stored(self) -> bytes:
        body: bytes = client(self.s3.url, self.keys).get_object(Bucket=BUCKET, Key=OBJECT)["Body"].read()
        return body

    def alarm_mails(self) -> list[str]:
        return [m.text for m in self.sink.all() if m.text.startswith("Get warning message")]

    async def tracker(self, name: str) -> tuple[str, str]:
        """A data tracker with LTS on; its stream's group and stream ids as ListTrackers shows them."""
        body = {
            "tracker_type": "data",
            "tracker_name": name,
            "data_bucket": {"data_bucket_name": f"{name}-bucket"},
            "is_lts_enabled": True,
        }
        resp = await self.api.post(f"/v3/{self.project}/tracker", json=body)
        assert resp.status_code == 201, resp.text
        listed = await self.api.get(f"/v3/{self.project}/trackers", params={"tracker_name": name})
        [tracker] = listed.json()["trackers"]
        assert tracker["lts"]["is_lts_enabled"] and tracker["lts"]["log_topic_name"] == name
        return str(tracker["group_id"]), str(tracker["stream_id"])

    async def ingest(self, tracker: str, **fields: Any) -> str:
        trace_id = str(uuid.uuid4())
        trace = {
            "trace_id": trace_id,
            "trace_name": "PUT.OBJECT",
            "trace_type": "ObsAPI",
            "trace_rating": "normal",
            "service_type": "OBS",
            "resource_type": "object",
            "resource_name": f"{tracker}-bucket/report.csv",
            "time": now_ms() - 1_000,
            "user": {"id": "u" * 32, "name": "alice", "domain": {"id": "d" * 32, "name": "acme"}},
            "source_ip": "10.1.2.3",
            "code": 200,
            "tracker_name": tracker,
            **fields,
        }
        resp = await self.api.post(f"/v3/{self.project}/traces", json={"traces": [trace]})
        assert resp.status_code < 300 and resp.json()["accepted"] == 1, resp.text
        return trace_id

    async def results(self) -> list[tuple[str, Any]]:
        """Every trigger invocation: (status, the handler's return value)."""

        def read(conn: Any) -> list[tuple[str, Any]]:
            rows = conn.execute(
                function_invocations.select()
                .where(function_invocations.c.source == "trigger")
                .order_by(function_invocations.c.id)
            ).all()
            return [(r.status, json.loads(r.result) if r.result else None) for r in rows]

        return list(await self.server.app.state.services.db.read(read))

    async def finished(self, count: int) -> bool:
        results = await self.results()
        assert all(status != "FAIL" for status, _ in results), results
        return sum(status == "SUCCESS" for status, _ in results) >= count

    async def settled(self) -> bool:
        """Every trigger invocation queued so far has finished (none waits or runs)."""
        results = await self.results()
        return bool(results) and all(status in ("SUCCESS", "FAIL") for status, _ in results)

    async def quiet_outbox(self) -> bool:
        pending = await self.api.get(
            f"/v2/{self.project}/notifications/deliveries", params={"status": "pending"}
        )
        return pending.status_code == 200 and not pending.json()["deliveries"]


@pytest.fixture
async def stack(tmp_path: Path, store: tuple[S3Server, StoreKeys]) -> AsyncIterator[Stack]:
    s3, keys = store
    with SmtpSink() as sink:
        async with running_server(
            tmp_path / "data",
            region=REGION,
            smtp_host="127.0.0.1",
            smtp_port=sink.port,
            smtp_security="none",
            smtp_from="cts@example.com",
            functions_workers=2,
            ingest_workers=0,
            functions_storage_access_key=keys.access_key,
            functions_storage_secret_key=keys.secret_key,
            functions_storage_agencies="serverless_trust",
        ) as server:
            topic = await server.topic("cts_test")
            assert topic == f"urn:smn:{REGION}:{server.project}:cts_test"
            await server.subscribe(topic, "email", "secops@example.com")
            mails = await until(sink.all, 30, "the confirmation email")
            [link] = links_in(mails[0].text, "/confirm?token=")
            assert (await anonymous("GET", link)).status_code == 200
            yield Stack(server, sink, s3, keys)


def seeds_code(stack: Stack) -> bytes:
    """The seeds' handler with only the SMN host and the OBS connection constants changed."""
    code = SAMPLE.read_text()
    changes = {
        SMN_HOST: json.dumps(stack.server.url + "/v2/"),
        "\nsecure = True\n": "\nsecure = False\n",
        "\nport = 443\n": f"\nport = {stack.s3.port}\n",
    }
    for old, new in changes.items():
        assert code.count(old) == 1, old
        code = code.replace(old, new)
    return code.encode()


async def deploy(stack: Stack, streams: list[tuple[str, str]]) -> list[str]:
    """The function, with an LTS trigger on each stream; the triggers' ids."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", seeds_code(stack))
    env = {
        "SMN_Topic": "cts_test",
        "obs_address": "127.0.0.1",
        "obs_store_bucket": BUCKET,
        "obs_store_objName": OBJECT,
    }
    body = {
        "func_name": "lts_alarms",
        "package": "default",
        "runtime": "Python3.10",
        "handler": "index.handler",
        "memory_size": 256,
        "timeout": 30,
        "code_type": "zip",
        "code_filename": "lts_alarms.zip",
        "func_code": {"file": base64.b64encode(buffer.getvalue()).decode()},
        "user_data": json.dumps(env),
        "xrole": "serverless_trust",
    }
    made = await stack.api.post(f"/v2/{stack.project}/fgs/functions", json=body)
    assert made.status_code < 300, made.text
    urn = str(made.json()["func_urn"])
    assert f":{REGION}:" in urn
    made_triggers = []
    for group, stream in streams:
        trigger = {
            "trigger_type_code": "LTS",
            "event_data": {"log_group_id": group, "log_topic_id": stream, "polling_interval": 1},
        }
        resp = await stack.api.post(f"/v2/{stack.project}/fgs/triggers/{quote(urn, safe='')}", json=trigger)
        assert resp.status_code == 201, resp.text
        made_triggers.append(str(resp.json()["trigger_id"]))
    return made_triggers


async def test_the_seeds_lts_function_alarms_and_appends_to_the_object(stack: Stack) -> None:
    # the store checks keys: anything but the functions' pair is refused
    with pytest.raises(ClientError):
        client(stack.s3.url, StoreKeys(stack.keys.access_key, "not-the-secret")).get_object(
            Bucket=BUCKET, Key=OBJECT
        )
    quiet = await stack.tracker("quiet-app")
    loud = await stack.tracker("loud-app")
    await deploy(stack, [quiet, loud])

    await stack.ingest("quiet-app", message="nightly report uploaded")
    await until(lambda: stack.finished(1), 45, "the quiet stream's invocation")
    assert await stack.results() == [("SUCCESS", "no need to send alarm message")]
    assert await until(stack.quiet_outbox, 10, "an empty outbox")
    assert stack.alarm_mails() == []
    assert stack.stored() == FIRST_LINE

    error_id = await stack.ingest("loud-app", trace_rating="incident", message="ERROR disk quota exceeded")
    await until(lambda: stack.finished(2), 45, "the loud stream's invocation")
    assert (await stack.results())[1] == ("SUCCESS", "log store success")
    [mail] = await until(stack.alarm_mails, 30, "the SMN alarm mail")
    assert error_id in mail and "ERROR disk quota exceeded" in mail
    first, added, *rest = stack.stored().split(b"\n")
    assert first + b"\n" == FIRST_LINE and rest == [b""]
    assert error_id.encode() in added and b"ERROR disk quota exceeded" in added
    assert b'"path": "loud-app"' in added  # the LTS record, as the handler wrote it


async def test_on_the_management_stream_it_never_reads_its_own_alarm(stack: Stack) -> None:
    """Its SMN publish is a management trace whose recorded body holds the ERROR line: handed back to
    the function, it would alarm on its own alarm without end. The trigger passes that record over."""
    system = {"tracker_type": "system", "tracker_name": "system", "is_lts_enabled": True}
    assert (await stack.api.put(f"/v3/{stack.project}/tracker", json=system)).status_code == 200
    listed = await stack.api.get(f"/v3/{stack.project}/trackers", params={"tracker_name": "system"})
    [tracker] = listed.json()["trackers"]
    [trigger_id] = await deploy(stack, [(tracker["group_id"], tracker["stream_id"])])

    trace_id = str(uuid.uuid4())
    trace = {
        "trace_id": trace_id,
        "trace_name": "deleteVolume",
        "trace_type": "ConsoleAction",
        "trace_rating": "incident",
        "service_type": "EVS",
        "resource_type": "volume",
        "resource_name": "db-data",
        "time": now_ms() - 1_000,
        "user": {"id": "u" * 32, "name": "alice", "domain": {"id": "d" * 32, "name": "acme"}},
        "source_ip": "10.1.2.3",
        "code": 200,
        "message": "ERROR volume in use",
    }
    resp = await stack.api.post(f"/v3/{stack.project}/traces", json={"traces": [trace]})
    assert resp.status_code < 300 and resp.json()["accepted"] == 1, resp.text
    [mail] = await until(stack.alarm_mails, 45, "the SMN alarm mail")
    assert trace_id in mail

    db = stack.server.app.state.services.db

    def own_publish_passed(conn: Any) -> bool:
        """The function's own publish is in the stream, and the trigger's cursor is past it."""
        rows = conn.execute(lts_records.select().where(lts_records.c.stream_id == tracker["stream_id"])).all()
        own = [
            r.id
            for r in rows
            if '"AssumedAgency"' in r.content and "publish" in r.content and trace_id in r.content
        ]
        position = conn.execute(
            consumer_cursors.select().where(consumer_cursors.c.name == cursor_name(trigger_id))
        ).first()
        return bool(own) and position is not None and int(position.position) >= max(own)

    await until(lambda: db.read(own_publish_passed), 45, "the trigger to pass the function's own publish")
    await until(stack.settled, 30, "every invocation queued to finish")
    assert await until(stack.quiet_outbox, 10, "an empty outbox")
    results = await stack.results()
    assert [value for _, value in results].count("log store success") == 1, results
    assert len(stack.alarm_mails()) == 1
    assert stack.stored().count(b"\n") == 2  # the first line and the one alarm line
