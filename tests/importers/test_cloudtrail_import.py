"""``opencts import cloudtrail``: CloudTrail log files (the documented format) into a real server."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from opencts.cli.main import app
from opencts.importers.cloudtrail import status_of, to_trace
from opencts.testing.server import ServerProcess

runner = CliRunner()
ACCOUNT = "123456789012"


def _when(minutes_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event(name: str, source: str, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventVersion": "1.09",
        "eventID": str(uuid.uuid4()),
        "eventTime": _when(30),
        "eventSource": source,
        "eventName": name,
        "awsRegion": "eu-central-1",
        "sourceIPAddress": "203.0.113.9",
        "userAgent": "aws-cli/2.15.0",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLEPRINCIPAL",
            "arn": f"arn:aws:iam::{ACCOUNT}:user/alice",
            "accountId": ACCOUNT,
            "accessKeyId": "AKIAEXAMPLEKEY",
            "userName": "alice",
            "sessionContext": {"attributes": {"creationDate": _when(60), "mfaAuthenticated": "true"}},
        },
        "requestID": str(uuid.uuid4()),
        "eventType": "AwsApiCall",
        "readOnly": False,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }
    event.update(fields)
    return event


def trail() -> list[dict[str, Any]]:
    return [
        _event(
            "RunInstances",
            "ec2.amazonaws.com",
            requestParameters={"instanceType": "t3.micro"},
            responseElements={"instancesSet": {"items": [{"instanceId": "i-0abc"}]}},
        ),
        _event(
            "ConsoleLogin",
            "signin.amazonaws.com",
            eventType="AwsConsoleSignIn",
            responseElements={"ConsoleLogin": "Failure"},
            errorMessage="Failed authentication",
        ),
        _event(
            "DeleteBucket",
            "s3.amazonaws.com",
            errorCode="AccessDenied",
            errorMessage="Access Denied",
            requestParameters={"bucketName": "logs-bucket"},
        ),
        _event(
            "PutObject",
            "s3.amazonaws.com",
            eventCategory="Data",
            resources=[
                {"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::logs-bucket/a/b.txt"},
                {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::logs-bucket"},
            ],
        ),
        _event(
            "AssumeRole",
            "sts.amazonaws.com",
            sourceIPAddress="ec2.amazonaws.com",
            eventType="AwsServiceEvent",
            userIdentity={"type": "AWSService", "invokedBy": "ec2.amazonaws.com"},
            readOnly=True,
        ),
    ]


def write_log(root: Path, records: list[dict[str, Any]], gz: bool = True) -> Path:
    """A log file where CloudTrail delivers it, and a digest beside it (which an import skips)."""
    day = datetime.now(UTC)
    folder = root / f"AWSLogs/{ACCOUNT}/CloudTrail/eu-central-1/{day:%Y/%m/%d}"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{ACCOUNT}_CloudTrail_eu-central-1_{day:%Y%m%dT%H%M}Z_{uuid.uuid4().hex[:16]}.json"
    body = json.dumps({"Records": records}).encode()
    path = folder / (name + ".gz" if gz else name)
    path.write_bytes(gzip.compress(body) if gz else body)
    digest = root / f"AWSLogs/{ACCOUNT}/CloudTrail-Digest/eu-central-1/{day:%Y/%m/%d}"
    digest.mkdir(parents=True, exist_ok=True)
    (digest / f"{ACCOUNT}_CloudTrail-Digest_x.json.gz").write_bytes(gzip.compress(b'{"logFiles": []}'))
    return path


def run(server: ServerProcess, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        app, [*args, "--endpoint", server.url, "--data-dir", str(server.data_dir)], env={"COLUMNS": "200"}
    )
    return result.exit_code, result.stdout


def listed(server: ServerProcess, trace_id: str) -> dict[str, Any]:
    with server.client() as client:
        resp = client.get(f"/v3/{server.creds.project_id}/traces", params={"trace_id": trace_id})
    [trace] = resp.json()["traces"]
    result: dict[str, Any] = trace
    return result


@pytest.mark.slow
def test_import_is_mapped_and_idempotent(live_server: ServerProcess, tmp_path: Path) -> None:
    records = trail()
    write_log(tmp_path, records[:3])
    write_log(tmp_path, records[3:], gz=False)
    code, out = run(live_server, "import", "cloudtrail", str(tmp_path))
    assert code == 0, out
    assert "2 files, imported 5, already there 0" in out
    code, out = run(live_server, "import", "cloudtrail", str(tmp_path))
    assert code == 0 and "imported 0, already there 5" in out, out
    run_instances = listed(live_server, records[0]["eventID"])
    assert (run_instances["service_type"], run_instances["trace_name"]) == ("EC2", "RunInstances")
    assert (run_instances["code"], run_instances["trace_rating"]) == ("200", "normal")
    assert (
        run_instances["user"]["name"] == "alice"
        and run_instances["user"]["access_key_id"] == "AKIAEXAMPLEKEY"
    )
    assert run_instances["source_ip"] == "203.0.113.9"
    login = listed(live_server, records[1]["eventID"])
    assert (login["trace_type"], login["code"], login["trace_rating"]) == ("ConsoleAction", "401", "warning")
    denied = listed(live_server, records[2]["eventID"])
    assert (denied["code"], denied["resource_id"], denied["message"]) == (
        "403",
        "logs-bucket",
        "Access Denied",
    )
    put = listed(live_server, records[3]["eventID"])
    assert (put["resource_type"], put["resource_name"]) == ("AWS::S3::Object", "b.txt")
    assumed = listed(live_server, records[4]["eventID"])
    assert assumed["trace_type"] == "SystemAction" and "source_ip" not in assumed


@pytest.mark.slow
def test_old_events_are_counted_apart_and_bad_files_fail(live_server: ServerProcess, tmp_path: Path) -> None:
    old = _event("ListBuckets", "s3.amazonaws.com", eventTime=_when(60 * 24 * 30))
    write_log(tmp_path / "old", [old])
    code, out = run(live_server, "import", "cloudtrail", str(tmp_path / "old"))
    assert code == 0 and "older than the retention window 1" in out, out
    bad = tmp_path / "bad.json"
    bad.write_text('{"traces": []}')
    code, out = run(live_server, "import", "cloudtrail", str(bad))
    assert code == 1 and 'not a CloudTrail log file (no "Records" list)' in out, out
    code, out = run(live_server, "import", "cloudtrail", str(tmp_path / "nothing-here"))
    assert code == 1


@pytest.mark.parametrize(
    ("error", "code", "rating"),
    [
        (None, "200", "normal"),
        ("AccessDenied", "403", "warning"),
        ("Client.UnauthorizedOperation", "403", "warning"),
        ("NoSuchBucket", "404", "warning"),
        ("ThrottlingException", "429", "warning"),
        ("InternalError", "500", "incident"),
        ("ValidationException", "400", "warning"),
    ],
)
def test_error_codes_become_statuses(error: str | None, code: str, rating: str) -> None:
    assert status_of({"errorCode": error} if error else {}) == (code, rating)


def test_an_event_without_an_id_gets_a_stable_one() -> None:
    event = _event("GetObject", "s3.amazonaws.com")
    del event["eventID"]
    assert to_trace(event)["trace_id"] == to_trace(dict(event))["trace_id"]
    with pytest.raises(ValueError, match="no eventName"):
        to_trace({"eventTime": _when(1), "eventSource": "s3.amazonaws.com"})
