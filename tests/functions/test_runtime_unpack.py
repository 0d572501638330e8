"""Unpacking function code: what a zip may not hold, and what an unpacked tree looks like."""

from __future__ import annotations

import stat
import zipfile
from io import BytesIO
from pathlib import Path

import pytest
from runtime_support import zipped

from opencts.functions.unpack import UnsafeArchive, check_archive, unpack


@pytest.mark.parametrize("name", ["../up.py", "a/../../up.py", "/etc/cron.d/x", "..\\windows.py", "C:/x.py"])
def test_entries_leaving_the_root_are_refused(tmp_path: Path, name: str) -> None:
    data = zipped({"index.py": "x = 1\n", name: "y = 2\n"})
    with pytest.raises(UnsafeArchive):
        check_archive(data)
    with pytest.raises(UnsafeArchive):
        unpack(data, tmp_path / "code" / "d")
    assert not (tmp_path / "code" / "d").exists()
    assert [path.name for path in (tmp_path / "code").iterdir()] == []


def test_symbolic_links_and_non_zips_are_refused(tmp_path: Path) -> None:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("secrets")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/shadow")
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        check_archive(buffer.getvalue())
    with pytest.raises(UnsafeArchive, match="not a zip"):
        unpack(b"plain text", tmp_path / "d")


def test_an_unpacked_tree_is_readable_by_any_worker_and_compiled(tmp_path: Path) -> None:
    unpack(zipped({"index.py": "x = 1\n", "lib/helper.py": "y = 2\n"}), tmp_path / "d")
    root = tmp_path / "d"
    assert (root / "lib" / "helper.py").read_text() == "y = 2\n"
    assert stat.S_IMODE(root.stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "index.py").stat().st_mode) == 0o644
    assert list((root / "__pycache__").glob("index.*.pyc"))
