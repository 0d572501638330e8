"""The moto S3 server of the tests: an outage (stop) and a recovery (start on the same port, same content)."""

from __future__ import annotations

import pytest

from opencts.archive.s3 import S3Store
from opencts.archive.storage import StorageError
from opencts.testing.s3 import ACCESS_KEY, SECRET_KEY, S3Server


def test_stop_and_start_again_on_the_same_port() -> None:
    server = S3Server()
    server.start()
    try:
        server.reset()
        store = S3Store(endpoint=server.url, access_key=ACCESS_KEY, secret_key=SECRET_KEY, region="us-east-1")
        store.create_bucket("outage")
        store.put("outage", "before", b"1")
        server.stop()
        assert store.bucket_problem("outage") == "unavailable"
        with pytest.raises(StorageError) as raised:
            store.put("outage", "during", b"2")
        assert raised.value.detail == "unavailable"
        server.start()
        store.put("outage", "after", b"3")
        assert [i.key for i in store.list("outage")] == ["after", "before"]
    finally:
        server.stop()
