"""The default object store: a bucket is a folder, writes are atomic, the store's own files stay hidden."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opencts.archive.storage import LocalStore, NoSuchObject, StorageError, open_store
from opencts.config import Settings


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "buckets")


def test_a_bucket_is_a_folder(store: LocalStore) -> None:
    assert store.bucket_problem("b1") == "noBucket"
    store.create_bucket("b1")
    store.create_bucket("b1")  # again: no error
    assert store.bucket_problem("b1") is None
    store.put("b1", "CloudTraces/r/2026/1/2/system/ECS/f.json.gz", b"data")
    assert (store.root / "b1/CloudTraces/r/2026/1/2/system/ECS/f.json.gz").read_bytes() == b"data"


def test_put_get_head_list_delete(store: LocalStore) -> None:
    store.create_bucket("b1")
    for key in ("b/2", "a/1", "b/1", "c"):
        store.put("b1", key, key.encode())
    store.put("b1", "a/1", b"replaced")
    assert store.get("b1", "a/1") == b"replaced"
    info = store.head("b1", "a/1")
    assert info is not None and info.size == len(b"replaced")
    assert store.head("b1", "a/none") is None
    assert [i.key for i in store.list("b1")] == ["a/1", "b/1", "b/2", "c"]
    assert [i.key for i in store.list("b1", "b/")] == ["b/1", "b/2"]
    store.delete("b1", "b/1")
    store.delete("b1", "b/1")  # already gone: no error
    with pytest.raises(NoSuchObject):
        store.get("b1", "b/1")


def test_create_writes_once_and_never_replaces(store: LocalStore) -> None:
    store.create_bucket("b1")
    assert store.create("b1", "CloudTraces/a/f.json.gz", b"first") is True
    assert store.create("b1", "CloudTraces/a/f.json.gz", b"second") is False
    assert store.get("b1", "CloudTraces/a/f.json.gz") == b"first"
    folder = store.root / "b1/CloudTraces/a"
    assert sorted(p.name for p in folder.iterdir()) == ["f.json.gz"]  # no temporary file left behind
    with pytest.raises(StorageError) as caught:
        store.create("missing", "k", b"")
    assert caught.value.detail == "noBucket"


def test_no_bucket_is_a_storage_error(store: LocalStore) -> None:
    with pytest.raises(StorageError) as caught:
        store.put("missing", "k", b"")
    assert caught.value.detail == "noBucket"
    with pytest.raises(StorageError):
        list(store.list("missing"))


@pytest.mark.parametrize("key", ["", "../escape", "a/../../b", "a//b", ".hidden", "a/.tmp-x", "/abs"])
def test_keys_cannot_leave_the_bucket_or_hide(store: LocalStore, key: str) -> None:
    store.create_bucket("b1")
    with pytest.raises(StorageError):
        store.put("b1", key, b"x")
    assert not (store.root.parent / "escape").exists()


@pytest.mark.parametrize("bucket", ["", "a/b", ".meta"])
def test_bucket_names_cannot_leave_the_root(store: LocalStore, bucket: str) -> None:
    with pytest.raises(StorageError):
        store.create_bucket(bucket)


def test_temporary_files_are_never_listed(store: LocalStore) -> None:
    store.create_bucket("b1")
    store.put("b1", "k", b"1")
    (store.root / "b1" / ".tmp-left-by-a-crash").write_bytes(b"half")
    (store.root / "b1" / ".lifecycle").mkdir()
    (store.root / "b1" / ".lifecycle" / "rules.json").write_bytes(b"{}")
    assert [i.key for i in store.list("b1")] == ["k"]


def test_the_default_store_lives_in_the_data_dir(tmp_path: Path) -> None:
    opened = open_store(Settings(data_dir=tmp_path))
    assert isinstance(opened, LocalStore)
    assert opened.root == (tmp_path / "buckets").resolve()
    assert opened.url.startswith("file://")


def test_lifecycle_rules_are_swept_by_expire(store: LocalStore) -> None:
    """The local store keeps its rules in the bucket folder and applies them when the transfer asks."""
    store.create_bucket("b1")
    store.put("b1", "CloudTraces/r/2026/1/2/t/old.json.gz", b"old")
    store.put("b1", "CloudTraces/r/2026/1/9/t/new.json.gz", b"new")
    store.put("b1", "other/keep.txt", b"kept")
    day_ms = 86_400_000
    written = (store.root / "b1/CloudTraces/r/2026/1/2/t/old.json.gz").stat().st_mtime_ns // 1_000_000
    old = store.root / "b1/CloudTraces/r/2026/1/2/t/old.json.gz"
    os.utime(old, ns=((written - 10 * day_ms) * 1_000_000,) * 2)
    store.set_expiry("b1", "CloudTraces/", 30)
    store.set_expiry("b1", "CloudTraces/", 7)  # replaces the rule for that prefix
    assert store.lifecycle_rules("b1") == {"CloudTraces/": 7}
    assert [i.key for i in store.list("b1")] == [  # the rule file is the store's own: never listed
        "CloudTraces/r/2026/1/2/t/old.json.gz",
        "CloudTraces/r/2026/1/9/t/new.json.gz",
        "other/keep.txt",
    ]
    assert store.expire(written) == 1
    assert [i.key for i in store.list("b1")] == ["CloudTraces/r/2026/1/9/t/new.json.gz", "other/keep.txt"]
    assert not (store.root / "b1/CloudTraces/r/2026/1/2").exists()  # emptied folders go too
    assert store.expire(written + 8 * day_ms) == 1  # now the newer one is older than 7 days
    assert [i.key for i in store.list("b1")] == ["other/keep.txt"]
    store.set_expiry("b1", "CloudTraces/", 0)
    assert store.lifecycle_rules("b1") == {}
