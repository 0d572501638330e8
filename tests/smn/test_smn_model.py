"""SMN request validation, the SSRF guard and message signing, without a server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from opencts.iam.secrets import SecretBox
from opencts.smn.model import (
    AddSubscription,
    CreateTopic,
    NewSubscription,
    PublishMessage,
    UpdateTopic,
    normalise_endpoint,
    text_for,
)
from opencts.smn.signing import (
    KEY_FILE,
    Signer,
    canonical_string,
    load_or_create,
    remove_legacy_files,
    verify_message,
)
from opencts.smn.ssrf import EndpointRefused, check_url, is_public
from opencts.store import Database


@pytest.mark.parametrize("name", ["a", "Alarms-1", "9_x", "a" * 255])
def test_good_topic_names(name: str) -> None:
    assert CreateTopic(name=name, display_name="x").name == name


@pytest.mark.parametrize("name", ["", "-a", "_a", "a b", "a.b", "ü", "a" * 256])
def test_bad_topic_names(name: str) -> None:
    with pytest.raises(ValidationError, match="letters, digits"):
        CreateTopic(name=name, display_name="x")


def test_display_name_is_limited_in_bytes_not_characters() -> None:
    assert UpdateTopic(display_name="a" * 192).display_name
    with pytest.raises(ValidationError, match="192 bytes"):
        UpdateTopic(display_name="é" * 97)  # 194 bytes
    with pytest.raises(ValidationError, match="line breaks"):
        CreateTopic(name="a", display_name="Alarms\r\nBcc: x@example.com")


@pytest.mark.parametrize(
    ("protocol", "endpoint", "expected"),
    [
        ("email", "ops@example.com", "ops@example.com"),
        ("email", "root@localhost", "root@localhost"),
        ("sms", "+86 138-0000-0000", "+8613800000000"),
        ("sms", "13800000000", "13800000000"),
        ("http", "http://hooks.example.com/x?y=1", "http://hooks.example.com/x?y=1"),
        ("https", "https://[2001:db8::1]:8443/", "https://[2001:db8::1]:8443/"),
    ],
)
def test_endpoints_are_checked_per_protocol(protocol: str, endpoint: str, expected: str) -> None:
    assert normalise_endpoint(protocol, endpoint) == expected


@pytest.mark.parametrize(
    ("protocol", "endpoint", "message"),
    [
        ("email", "not-an-address", "not an email address"),
        ("email", "a@b@c", "not an email address"),
        ("sms", "call me", "not a phone number"),
        ("sms", "+0123", "not a phone number"),
        ("http", "https://x.example.com/", "http:// URL"),
        ("https", "ftp://x.example.com/", "https:// URL"),
        ("http", "http://[::1", "not a valid URL"),
        ("http", "http:///path-only", "with a host"),
        ("wechat", "x", "not supported by OpenCTS; supported: email, sms, http, https"),
        ("carrier-pigeon", "x", "not an SMN protocol"),
    ],
)
def test_bad_endpoints_say_why(protocol: str, endpoint: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("?", r"\?")):
        normalise_endpoint(protocol, endpoint)


def test_subscription_bodies_single_and_batch() -> None:
    one = AddSubscription.model_validate({"protocol": "email", "endpoint": "a@example.com"}).items()
    assert [(s.protocol, s.endpoint) for s in one] == [("email", "a@example.com")]
    batch = AddSubscription.model_validate(
        {"subscriptions": [{"protocol": "sms", "endpoint": "+8613800000000"}] * 3}
    ).items()
    assert len(batch) == 3
    with pytest.raises(ValueError, match="required"):
        AddSubscription.model_validate({}).items()
    with pytest.raises(ValidationError):
        AddSubscription.model_validate({"subscriptions": [{"protocol": "sms", "endpoint": "1"}] * 51})


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ({"X-Smn-Token": "x"}, "reserved"),
        ({"bad header": "x"}, "not a valid HTTP header name"),
        ({"X-A": "line\nbreak"}, "control characters"),
        ({f"H{i}": "x" for i in range(11)}, "at most 10"),
    ],
)
def test_custom_headers_are_limited(header: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        NewSubscription(protocol="http", endpoint="http://h.example.com/", extension={"header": header})


def test_publish_defaults_and_limits() -> None:
    body = PublishMessage(message="m")
    assert body.ttl_seconds == 3600
    assert PublishMessage(message="m", time_to_live="86400").ttl_seconds == 86400
    for ttl in ("0", "86401", "abc", "-5", "1.5"):
        with pytest.raises(ValidationError, match="seconds"):
            PublishMessage(message="m", time_to_live=ttl)
    with pytest.raises(ValidationError, match="256"):
        PublishMessage(message="x" * (256 * 1024 + 1))
    with pytest.raises(ValidationError, match="512 bytes"):
        PublishMessage(message="m", subject="s" * 513)
    with pytest.raises(ValidationError, match="line breaks"):
        PublishMessage(message="m", subject="hi\r\nBcc: everyone@example.com")
    with pytest.raises(ValidationError, match="give message or message_structure"):
        PublishMessage(subject="only a subject")
    with pytest.raises(ValidationError, match="templates are not supported"):
        PublishMessage(message_template_name="t")


@pytest.mark.parametrize(
    ("structure", "message"),
    [
        ("not json", "JSON object encoded as a string"),
        ('["default"]', '"default" key'),
        ('{"email": "x"}', '"default" key'),
        ('{"default": "x", "sms": 5}', "must be strings: sms"),
    ],
)
def test_message_structure_needs_a_default(structure: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PublishMessage(message_structure=structure)


def test_message_structure_picks_the_protocol_text() -> None:
    structure = orjson.dumps({"default": "d", "sms": "s"}).decode()
    assert text_for("sms", None, structure) == "s"
    assert text_for("email", "ignored", structure) == "d"
    assert text_for("email", "plain", None) == "plain"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
    ],
)
def test_is_public(address: str, public: bool) -> None:
    assert is_public(address) is public


async def test_check_url_resolves_names_and_can_be_lifted() -> None:
    with pytest.raises(EndpointRefused, match="loopback"):
        await check_url("http://localhost:8080/hook", allow_private=False)
    with pytest.raises(EndpointRefused, match="loopback"):
        await check_url("http://127.0.0.1/hook", allow_private=False)
    await check_url("http://127.0.0.1/hook", allow_private=True)
    await check_url("https://8.8.8.8/hook", allow_private=False)  # literal address: no DNS needed


def _doc() -> dict[str, Any]:
    return {
        "type": "Notification",
        "message_id": "m1",
        "topic_urn": "urn:smn:r:p:t",
        "subject": "s",
        "message": "line one\nline two",
        "timestamp": "2026-01-01T00:00:00Z",
        "unsubscribe_url": "http://x/u",
        "signing_cert_url": "http://x/cert",
    }


def test_the_canonical_string_is_documented_and_stable() -> None:
    assert canonical_string(_doc()) == (
        "message\nline one\nline two\nmessage_id\nm1\nsubject\ns\ntimestamp\n2026-01-01T00:00:00Z\n"
        "topic_urn\nurn:smn:r:p:t\ntype\nNotification\nunsubscribe_url\nhttp://x/u\n"
    )
    assert "subject" not in canonical_string({**_doc(), "subject": None})


def test_signing_key_is_sealed_persistent_and_verifies(database: Database) -> None:
    box = SecretBox(bytes(range(32)))
    signer = database.write_sync(lambda conn: load_or_create(conn, box))
    again = database.write_sync(lambda conn: load_or_create(conn, box))
    assert again.cert_pem == signer.cert_pem and again.token("u") == signer.token("u")
    doc = signer.sign(_doc())
    assert doc["signature_version"] == "v1"
    assert verify_message(doc, signer.cert_pem)
    public_pem = signer.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert verify_message(doc, public_pem.decode())
    for tampered in (
        {**doc, "message": "other"},
        {**doc, "subject": None},
        {**doc, "signature_version": "v2"},
        {**doc, "signature": "!!"},
    ):
        assert not verify_message(tampered, signer.cert_pem)
    other = Signer.from_private_key(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert not verify_message(doc, other.cert_pem)
    assert signer.token("urn:a") != signer.token("urn:b") != other.token("urn:b")


def test_a_signing_key_file_is_moved_into_the_database(database: Database, tmp_path: Path) -> None:
    """Links already sent stay valid: the key a data dir held is adopted, then its file is removed."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / KEY_FILE).write_bytes(pem)
    old = Signer.from_private_key(key)
    box = SecretBox(bytes(range(32)))
    signer = database.write_sync(lambda conn: load_or_create(conn, box, tmp_path))
    assert signer.token("urn:s") == old.token("urn:s")
    remove_legacy_files(tmp_path, signer)
    assert not (tmp_path / KEY_FILE).exists()
    assert database.read_sync(lambda conn: load_or_create(conn, box)).token("urn:s") == old.token("urn:s")
