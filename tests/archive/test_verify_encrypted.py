"""An encrypted archive verifies through the key service opened offline (the installation's database and
KMS master key), also once the key is disabled; without the key service every file is named ``cannot
decrypt``."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Connection, insert

from opencts.archive.envelope import seal
from opencts.archive.verify import Options, verify_source
from opencts.archive.verify_source import keys_from_json, open_source
from opencts.clock import now_ms
from opencts.config import Settings
from opencts.kms import keys, open_key_service
from opencts.kms.model import CreateKey
from opencts.store.tables import domains, projects
from opencts.testing.archive import PROJECT, ArchiveBuilder

H0 = 1_796_450_400_000


def test_an_encrypted_archive_needs_the_key_service(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with open_key_service(settings) as service:

        def create(conn: Connection) -> str:
            conn.execute(insert(domains).values(id="d" * 32, name="acme", created_at=1))
            conn.execute(insert(projects).values(id=PROJECT, domain_id="d" * 32, name="r1", created_at=1))
            return keys.create(
                conn, service.box, project_id=PROJECT, domain_id="d" * 32,
                body=CreateKey(key_alias="archive"), now=now_ms(),
            )  # fmt: skip

        key_id = service.db.write_sync(create)
        builder = ArchiveBuilder(tmp_path, seal=lambda blob: seal(blob, service.data_key(PROJECT, key_id)))
        builder.hour(H0)
        builder.hour(H0 + 3_600_000)
        service.db.write_sync(lambda c: keys.set_state(c, PROJECT, key_id, enabled=False, now=now_ms()))
    published = keys_from_json(json.loads(builder.keys_file().read_text()))
    with open_key_service(settings) as service, open_source(str(builder.bucket), settings) as source:
        result = verify_source(source, published, Options(proofs=True, key_service=lambda: service.unwrap))
        assert result.ok, result.failures
        assert (result.files, result.traces) == (4, 12)
        blind = verify_source(source, published, Options())
    assert [f.problem for f in blind.failures] == ["cannot decrypt"] * 4
