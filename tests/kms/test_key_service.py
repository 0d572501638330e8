"""The key service: keys per project, material sealed at rest, disable and rotate, on both backends."""

from __future__ import annotations

import base64
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Connection, select

from opencts.archive.envelope import EnvelopeError, open_envelope, read_header, seal
from opencts.clock import now_ms
from opencts.config import Settings
from opencts.iam.bootstrap import bootstrap
from opencts.iam.keyring import get_key
from opencts.iam.projects import create_project
from opencts.iam.secrets import MasterKeyError, SecretBox, new_master_key
from opencts.kms import KeyDisabled, KeyNotFound, KeyService, keys, open_key_service
from opencts.kms.master import KEY_FILE, SHARED
from opencts.kms.model import CreateKey
from opencts.store import Database
from opencts.store.tables import kms_key_versions

BOX = SecretBox(bytes(range(32)))
KMS_BOX = SecretBox(bytes(range(32, 64)))


@dataclass
class World:
    service: KeyService
    project: str
    other_project: str
    key_id: str


@pytest.fixture
def world(database: Database) -> World:
    def setup(conn: Connection) -> World:
        creds = bootstrap(conn, box=BOX, region="local-1", password="pw-123456789")
        assert creds is not None
        other = create_project(conn, domain_id=creds.domain_id, name="local-1_other")
        key_id = keys.create(
            conn, KMS_BOX, project_id=creds.project_id, domain_id=creds.domain_id,
            body=CreateKey(key_alias="archive"), now=now_ms(),
        )  # fmt: skip
        return World(KeyService(database, KMS_BOX), creds.project_id, other.id, key_id)

    return database.write_sync(setup)


def _set_state(world: World, *, enabled: bool) -> None:
    world.service.db.write_sync(
        lambda conn: keys.set_state(conn, world.project, world.key_id, enabled=enabled, now=now_ms())
    )


def _rotate(world: World) -> int:
    return world.service.db.write_sync(
        lambda conn: keys.rotate(conn, KMS_BOX, world.project, world.key_id, now=now_ms())
    )


def _unwrap(world: World, project: str | None = None):  # type: ignore[no-untyped-def]
    return lambda header: world.service.unwrap(project or world.project, header)


def test_a_data_key_seals_a_file_that_opens_again(world: World) -> None:
    data_key = world.service.data_key(world.project, world.key_id)
    assert (data_key.kms_id, data_key.key_version, len(data_key.key)) == (world.key_id, 1, 32)
    blob = seal(b"[]", data_key)
    assert open_envelope(blob, _unwrap(world)) == b"[]"
    assert world.service.data_key(world.project, world.key_id).key != data_key.key  # fresh per file


def test_disable_stops_new_data_keys_but_old_files_still_open(world: World) -> None:
    blob = seal(b"old", world.service.data_key(world.project, world.key_id))
    _set_state(world, enabled=False)
    with pytest.raises(KeyDisabled) as raised:
        world.service.data_key(world.project, world.key_id)
    assert raised.value.code == "KMS.0303" and raised.value.status == 409
    assert open_envelope(blob, _unwrap(world)) == b"old"
    _set_state(world, enabled=True)
    assert world.service.data_key(world.project, world.key_id).key_version == 1


def test_rotation_keeps_old_files_readable(world: World) -> None:
    old = seal(b"v1", world.service.data_key(world.project, world.key_id))
    assert _rotate(world) == 2
    new_key = world.service.data_key(world.project, world.key_id)
    assert new_key.key_version == 2
    new = seal(b"v2", new_key)
    assert read_header(old).key_version == 1 and read_header(new).key_version == 2
    fresh = KeyService(world.service.db, KMS_BOX)  # no cached material: read from the table
    assert open_envelope(old, lambda h: fresh.unwrap(world.project, h)) == b"v1"
    assert open_envelope(new, lambda h: fresh.unwrap(world.project, h)) == b"v2"
    assert _rotate(world) == 3


def test_key_material_is_never_stored_in_clear(world: World) -> None:
    _rotate(world)
    stored = world.service.db.read_sync(
        lambda conn: conn.execute(select(kms_key_versions).order_by(kms_key_versions.c.version)).all()
    )
    assert [r.version for r in stored] == [1, 2]
    for row in stored:
        clear = KMS_BOX.open(row.material, context=keys.material_context(row.key_id, row.version))
        assert len(clear) == 32 and row.material.startswith("sealed:v1:")
        for form in (clear.hex(), base64.b64encode(clear).decode(), clear.decode("latin-1")):
            assert form not in row.material
        with pytest.raises(Exception, match="does not open"):  # bound to its key and version
            KMS_BOX.open(row.material, context=keys.material_context(row.key_id, row.version + 1))
    assert stored[0].material != stored[1].material


def test_another_project_can_neither_use_nor_see_a_key(world: World) -> None:
    blob = seal(b"secret", world.service.data_key(world.project, world.key_id))
    with pytest.raises(KeyNotFound):
        world.service.data_key(world.other_project, world.key_id)
    with pytest.raises(KeyNotFound):
        open_envelope(blob, _unwrap(world, world.other_project))
    rows, total = world.service.db.read_sync(
        lambda conn: keys.page(conn, world.other_project, limit=10, offset=0, state=None)
    )
    assert (rows, total) == ([], 0)
    with pytest.raises(KeyNotFound):
        world.service.db.write_sync(
            lambda conn: keys.set_state(conn, world.other_project, world.key_id, enabled=False, now=now_ms())
        )


def test_a_file_under_an_unknown_version_or_key_does_not_open(world: World) -> None:
    blob = seal(b"x", world.service.data_key(world.project, world.key_id))
    other_key = world.service.db.write_sync(
        lambda conn: keys.create(
            conn, KMS_BOX, project_id=world.project, domain_id="d" * 32, body=CreateKey(key_alias="b"),
            now=now_ms(),
        )
    )  # fmt: skip
    header = read_header(blob)
    moved = type(header)(other_key, header.key_version, header.wrapped_key, header.nonce)
    with pytest.raises(EnvelopeError):
        world.service.unwrap(world.project, moved)
    with pytest.raises(KeyNotFound, match="no version 7"):
        world.service.unwrap(world.project, type(header)(world.key_id, 7, header.wrapped_key, header.nonce))


# -- the KMS master key: environment, file, or generated ----------------------------------------------------


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", **extra)  # type: ignore[arg-type]


def test_the_master_key_is_generated_0600_in_the_data_dir(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with open_key_service(settings) as service:
        assert isinstance(service, KeyService)
    path = settings.data_dir / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    with open_key_service(settings):  # opened again: the same key, not a new one
        pass
    assert path.read_text() == first
    path.unlink()
    with pytest.raises(MasterKeyError, match="none was given"):  # never regenerated over sealed keys
        open_key_service(settings)


def test_the_master_key_from_the_environment_or_a_file(tmp_path: Path) -> None:
    key = new_master_key()
    settings = _settings(tmp_path, kms_master_key=key)
    with open_key_service(settings):
        pass
    assert not (settings.data_dir / KEY_FILE).exists()
    key_file = tmp_path / "kms.key"
    key_file.write_text(key)
    with open_key_service(_settings(tmp_path, kms_master_key_file=key_file)):
        pass
    with pytest.raises(MasterKeyError, match="is not the KMS master key"):
        open_key_service(_settings(tmp_path, kms_master_key=new_master_key()))
    with pytest.raises(MasterKeyError, match="does not exist"):
        open_key_service(_settings(tmp_path, kms_master_key_file=tmp_path / "missing"))


def test_a_generated_master_key_is_shared_with_other_nodes_through_the_database(tmp_path: Path) -> None:
    """Each node has its own data dir and the deployment's master key; the second adopts the first's."""
    common = {"database_url": f"sqlite:///{tmp_path / 'shared.db'}", "master_key": new_master_key()}
    first, second = (Settings(data_dir=tmp_path / n, **common) for n in ("a", "b"))  # type: ignore[arg-type]
    with open_key_service(first) as service:

        def setup(conn: Connection) -> tuple[str, str]:
            creds = bootstrap(conn, box=BOX, region="local-1", password="pw-123456789")
            assert creds is not None
            body = CreateKey(key_alias="k")
            made = keys.create(
                conn,
                service.box,
                project_id=creds.project_id,
                domain_id=creds.domain_id,
                body=body,
                now=now_ms(),
            )
            return creds.project_id, made

        project, key_id = service.db.write_sync(setup)
        blob = seal(b"shared", service.data_key(project, key_id))
    with open_key_service(second) as service:
        assert open_envelope(blob, lambda h: service.unwrap(project, h)) == b"shared"
    assert (tmp_path / "b" / KEY_FILE).read_text() == (tmp_path / "a" / KEY_FILE).read_text()
    assert stat.S_IMODE((tmp_path / "b" / KEY_FILE).stat().st_mode) == 0o600


def test_a_given_master_key_is_never_written_to_the_database(tmp_path: Path) -> None:
    settings = _settings(tmp_path, kms_master_key=new_master_key(), master_key=new_master_key())
    with open_key_service(settings) as service:
        assert service.db.read_sync(lambda conn: get_key(conn, SHARED)) is None
