"""Secrets at rest: a private data dir, and a copied database that yields no usable key.

The attacker here can read the data dir's files (another local user, a backup, a copied volume) or holds a
copy of the database alone. The data dir and every file in it must be readable by the service's user only,
whatever the umask it was started with, and nothing in the database may be a usable secret key or the
SMN signing key without the master key.
"""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Connection, select, update

from cts_helpers import TraceFactory, in_process_api, signed_client
from opencts.api.app import create_app
from opencts.config import Settings
from opencts.iam.bootstrap import BootstrapCredentials, bootstrap, write_credentials
from opencts.iam.secrets import SecretBox, new_master_key
from opencts.smn import subscriptions, topics
from opencts.smn.model import CreateTopic, Extension, NewSubscription
from opencts.smn.signing import KEY_FILE, Signer, verify_message
from opencts.store import Database, migrate
from opencts.store.tables import credentials, smn_subscriptions


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def modes(data_dir: Path) -> dict[str, int]:
    """The permission bits of the data dir ("." ) and of everything in it."""
    found = {".": stat.S_IMODE(data_dir.stat().st_mode)}
    for path in data_dir.rglob("*"):
        found[str(path.relative_to(data_dir))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def assert_private(data_dir: Path) -> dict[str, int]:
    found = modes(data_dir)
    loose = {
        name: oct(mode)
        for name, mode in found.items()
        if mode != (0o700 if name == "." or (data_dir / name).is_dir() else 0o600)
    }
    assert not loose, f"readable by others: {loose}"
    return found


async def use_service(settings: Settings, make_trace: TraceFactory) -> list[str]:
    """Start the app, make it write (a trace, an access key), and return the secrets it handed out."""
    async with in_process_api(settings) as api:
        app, creds, client = api.app, api.creds, api.client
        resp = await client.post(f"/v3/{creds.project_id}/traces", json={"traces": [make_trace()]})
        assert resp.status_code == 200, resp.text
        made = await client.post(
            "/v3.0/OS-CREDENTIAL/credentials",
            json={"credential": {"user_id": await new_user(client), "description": "second"}},
        )
        assert made.status_code == 201, made.text
        secret = made.json()["credential"]["secret"]
        # the new key works, so it is stored in a form the server can still verify signatures with
        app.state.services.authenticator.invalidate()
        cert = (await client.get("/v2/notifications/signing-cert.pem")).text
        assert "BEGIN CERTIFICATE" in cert
        assert_private(settings.data_dir)  # the WAL and shared-memory files exist now
        signer = app.state.services.smn.signer
        der = signer.private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        pem = signer.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        numbers = signer.private_key.private_numbers()
        return [
            creds.secret_key,
            secret,
            base64.b64encode(der).decode(),
            der.hex(),
            pem.splitlines()[1],  # a line of the PEM body
            format(numbers.p, "x"),
        ]


async def new_user(client: httpx.AsyncClient) -> str:
    name = f"u{uuid.uuid4().hex[:8]}"
    made = await client.post("/v3.0/OS-USER/users", json={"user": {"name": name, "password": "Pass-word-1"}})
    assert made.status_code == 201, made.text
    return str(made.json()["user"]["id"])


@pytest.mark.parametrize("mask", [0o022, 0o000])
async def test_data_dir_and_every_file_are_private_whatever_the_umask(
    tmp_path: Path, make_trace: TraceFactory, mask: int
) -> None:
    settings = Settings(data_dir=tmp_path / "data", ingest_workers=0)
    with umask(mask):
        await use_service(settings, make_trace)
    found = assert_private(settings.data_dir)
    for name in ("opencts.db", "credentials.json", "master.key", "opencts.db.terms"):
        assert name in found, f"{name} was not written: {sorted(found)}"


async def test_an_older_looser_data_dir_is_tightened_at_start(
    tmp_path: Path, make_trace: TraceFactory
) -> None:
    settings = Settings(data_dir=tmp_path / "data", ingest_workers=0)
    await use_service(settings, make_trace)
    (settings.data_dir / "notes.txt").write_text("left by an operator")
    (settings.data_dir / "smn_signing_cert.pem").write_text("what an older version left, mode 0644")
    for path in [settings.data_dir, *settings.data_dir.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    with umask(0o022):
        await use_service(settings, make_trace)
    assert_private(settings.data_dir)


async def test_a_copied_database_holds_no_usable_secret(tmp_path: Path, make_trace: TraceFactory) -> None:
    settings = Settings(data_dir=tmp_path / "data", ingest_workers=0)
    secrets = await use_service(settings, make_trace)
    copy = tmp_path / "stolen"
    copy.mkdir()
    for path in settings.data_dir.glob("opencts.db*"):
        shutil.copy(path, copy / path.name)
    raw = b"".join(p.read_bytes() for p in copy.iterdir())
    assert len(raw) > 10_000
    for secret in secrets:
        assert secret.encode() not in raw, f"{secret[:6]}... is readable in the copied database"
        assert secret.encode().upper() not in raw.upper()
    # what is stored is sealed, and a database copied without its master key does not start
    db = Database(f"sqlite:///{copy / 'opencts.db'}")
    try:
        stored = db.read_sync(lambda conn: conn.execute(select(credentials.c.secret_key)).scalars().all())
    finally:
        db.close()
    assert len(stored) == 2 and all(s.startswith("sealed:v1:") for s in stored)
    failed = serve(copy, {})
    assert failed.returncode == 1
    assert "none was given" in failed.stderr and "Traceback" not in failed.stderr


def serve(data_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``opencts serve`` on ``data_dir``; these runs end before listening, so no port is ever opened."""
    exe = Path(sys.executable).with_name("opencts")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OPENCTS_")}
    return subprocess.run(
        [str(exe), "serve", "--data-dir", str(data_dir), "--bind", "127.0.0.1:1", "--log-level", "warning"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_a_wrong_or_malformed_master_key_is_a_clear_startup_error(
    tmp_path: Path, make_trace: TraceFactory
) -> None:
    settings = Settings(data_dir=tmp_path / "data", ingest_workers=0)
    await use_service(settings, make_trace)
    before = (settings.data_dir / "opencts.db").read_bytes()
    wrong = serve(settings.data_dir, {"OPENCTS_MASTER_KEY": new_master_key()})
    assert wrong.returncode == 1, wrong.stderr
    assert "is not the master key this database's secrets are sealed under" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    (settings.data_dir / "master.key").write_text(new_master_key() + "\n")
    wrong_file = serve(settings.data_dir, {})
    assert wrong_file.returncode == 1 and "master.key is not the master key" in wrong_file.stderr
    malformed = serve(settings.data_dir, {"OPENCTS_MASTER_KEY": "hunter2"})
    assert malformed.returncode == 1
    assert "OPENCTS_MASTER_KEY is not a master key: it must be 32 random bytes" in malformed.stderr
    assert "Traceback" not in wrong_file.stderr + malformed.stderr
    assert (settings.data_dir / "opencts.db").read_bytes() == before  # nothing was re-sealed or generated


async def test_plain_text_secrets_of_an_older_database_are_sealed_at_start(
    tmp_path: Path, make_trace: TraceFactory
) -> None:
    """A database from before sealing: plain secret keys in the table, the signing key in a file."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    db = Database(f"sqlite:///{data_dir / 'opencts.db'}")
    try:
        migrate.upgrade(db, "0010")
        creds = db.write_sync(lambda conn: bootstrap(conn, box=SecretBox(os.urandom(32)), region="local-1"))
        assert creds is not None
        db.write_sync(lambda conn: store_in_plain_text(conn, creds, Signer.from_private_key(key)))
    finally:
        db.close()
    write_credentials(data_dir / "credentials.json", creds)
    (data_dir / KEY_FILE).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    settings = Settings(data_dir=data_dir, ingest_workers=0)
    app = create_app(settings, start_consumers=False)
    async with app.router.lifespan_context(app):
        async with signed_client(app, creds, "http://127.0.0.1:8080") as client:
            listed = await client.get(f"/v3/{creds.project_id}/traces")
            assert listed.status_code == 200, listed.text  # the old secret key still signs
            cert = (await client.get("/v2/notifications/signing-cert.pem")).text
    db = Database(f"sqlite:///{data_dir / 'opencts.db'}")
    try:
        [stored] = db.read_sync(lambda conn: conn.execute(select(credentials.c.secret_key)).scalars().all())
        [extension] = db.read_sync(
            lambda conn: conn.execute(select(smn_subscriptions.c.extension)).scalars().all()
        )
    finally:
        db.close()
    assert stored.startswith("sealed:v1:") and creds.secret_key not in stored
    assert list(orjson.loads(extension)) == ["header_sealed"]
    assert not (data_dir / KEY_FILE).exists()  # adopted into the database, so links already sent still work
    assert verify_message(Signer.from_private_key(key).sign({"message": "m"}), cert)
    raw = b"".join(p.read_bytes() for p in data_dir.glob("opencts.db*"))
    assert creds.secret_key.encode() not in raw and WEBHOOK_TOKEN.encode() not in raw


WEBHOOK_TOKEN = "Bearer hook-secret-5f1c9a"


def store_in_plain_text(conn: Connection, creds: BootstrapCredentials, signer: Signer) -> None:
    """What an earlier version stored: the secret key and a webhook's custom headers in plain text."""
    conn.execute(
        update(credentials)
        .where(credentials.c.access_key == creds.access_key)
        .values(secret_key=creds.secret_key)
    )
    topic = topics.create(
        conn, project_id=creds.project_id, region="local-1", body=CreateTopic(name="t"), now=0
    )
    item = NewSubscription(
        protocol="https",
        endpoint="https://hooks.example.com/cts",
        extension=Extension(header={"Authorization": WEBHOOK_TOKEN}),
    )
    [urn] = subscriptions.add(
        conn,
        project_id=creds.project_id,
        topic_urn=topic,
        items=[item],
        signer=signer,
        box=SecretBox(os.urandom(32)),
        now=0,
    )
    plain = orjson.dumps({"header": {"Authorization": WEBHOOK_TOKEN}}).decode()
    conn.execute(
        update(smn_subscriptions).where(smn_subscriptions.c.subscription_urn == urn).values(extension=plain)
    )


async def test_webhook_headers_are_sealed(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", ingest_workers=0, allow_private_endpoints=True)
    async with in_process_api(settings) as api:
        creds, client = api.creds, api.client
        base = f"/v2/{creds.project_id}/notifications"
        made = await client.post(f"{base}/topics", json={"name": "hooks", "display_name": "h"})
        urn = made.json()["topic_urn"]
        sub = await client.post(
            f"{base}/topics/{urn}/subscriptions",
            json={
                "protocol": "http",
                "endpoint": "http://127.0.0.1:9/cts",
                "extension": {"header": {"Authorization": WEBHOOK_TOKEN}},
            },
        )
        assert sub.status_code == 200, sub.text
        listed = await client.get(f"{base}/subscriptions")
        assert WEBHOOK_TOKEN not in listed.text
    raw = b"".join(p.read_bytes() for p in settings.data_dir.glob("opencts.db*"))
    assert WEBHOOK_TOKEN.encode() not in raw
