"""A function's code, as stored: always one zip archive, checked before it is accepted.

Inline code (``code_type: inline``) is the handler's source; it is stored as a zip holding one file named
after the handler's module (``index.handler`` → ``index.py``), so the runtime unpacks one format only.
A zip is checked here, at upload, for what would fail later anyway (not a zip, paths that leave the
directory, more than the unpacked limit, no file for the handler), so the caller hears of it at once
rather than from an invocation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import posixpath
import zipfile
from dataclasses import dataclass

from opencts.errors import BadRequest

#: a zip as uploaded: its base64 and the JSON around it fit the 5 MiB a signed request body may have
MAX_ZIP_BYTES = 3584 * 1024
MAX_UNPACKED_BYTES = 200 * 1024 * 1024
MAX_ENTRIES = 10_000
#: an upload's request body: the base64 of the largest zip, and the JSON around it
MAX_CODE_BODY = 5 * 1024 * 1024
#: what ShowFunctionCode returns for inline code: the source as sent, if it is at most this long
MAX_INLINE_SOURCE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Code:
    zip: bytes
    digest: str  # SHA-512 hex, FunctionGraph's ``digest``
    filename: str | None


def _decode(file_b64: str) -> bytes:
    try:
        return base64.b64decode(file_b64, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("func_code.file: is not base64") from None


def handler_file(handler: str) -> str:
    """``index.handler`` → ``index.py``; ``pkg.mod.handler`` → ``pkg/mod.py``."""
    module = handler.rsplit(".", 1)[0]
    return module.replace(".", "/") + ".py"


def safe_name(name: str) -> bool:
    """A zip entry that stays inside the directory it is unpacked into."""
    if not name or name.startswith(("/", "\\")) or "\\" in name or ":" in name.split("/", 1)[0]:
        return False
    return not any(part == ".." for part in posixpath.normpath(name).split("/")) and not posixpath.isabs(
        posixpath.normpath(name)
    )


def _check_zip(data: bytes, handler: str) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise BadRequest("func_code.file: code_type zip needs the base64 of a zip archive") from None
    with archive:
        entries = archive.infolist()
        if len(entries) > MAX_ENTRIES:
            raise BadRequest(f"func_code.file: the zip holds more than {MAX_ENTRIES} entries")
        total = 0
        names = set()
        for entry in entries:
            if not safe_name(entry.filename):
                raise BadRequest(
                    f"func_code.file: zip entry {entry.filename[:120]!r} leaves the code directory"
                )
            total += entry.file_size
            names.add(posixpath.normpath(entry.filename))
        if total > MAX_UNPACKED_BYTES:
            raise BadRequest(f"func_code.file: the zip unpacks to more than {MAX_UNPACKED_BYTES >> 20} MB")
    wanted = handler_file(handler)
    if wanted not in names:
        raise BadRequest(f"handler {handler}: the code has no {wanted} at the root of the zip")


def package(code_type: str, file_b64: str, handler: str, filename: str | None) -> Code:
    """The stored form of uploaded code; 400 for anything the runtime could not run."""
    raw = _decode(file_b64)
    if len(raw) > MAX_ZIP_BYTES:
        raise BadRequest(f"func_code.file: the code is larger than {MAX_ZIP_BYTES >> 10} KiB")
    if code_type == "inline":
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("func_code.file: inline code must be UTF-8 source text") from None
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            info = zipfile.ZipInfo(handler_file(handler), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, raw, zipfile.ZIP_DEFLATED)
        data = buffer.getvalue()
        filename = None
    else:
        _check_zip(raw, handler)
        data = raw
    return Code(data, hashlib.sha512(data).hexdigest(), filename)


def check_handler(code_type: str, data: bytes, handler: str) -> None:
    """A new handler must name a file the stored code has (UpdateFunctionConfig may change it)."""
    if code_type == "inline":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if handler_file(handler) not in archive.namelist():
                raise BadRequest(
                    f"handler {handler}: the inline code is {archive.namelist()[0]}; upload the code again"
                    " to rename its file"
                )
        return
    _check_zip(data, handler)


def source_of(code_type: str, data: bytes) -> str:
    """What ShowFunctionCode returns in ``func_code.file``: base64 of the source (inline) or the zip."""
    if code_type == "inline":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return base64.b64encode(archive.read(archive.namelist()[0])).decode()
    return base64.b64encode(data).decode()
