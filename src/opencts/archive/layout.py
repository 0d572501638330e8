"""Where every archive object lives and what its name says, in the CTS layout (spec §2.2 and §2.5).

Trace files::

    CloudTraces/REGION/YYYY/M/D/TRACKER/SERVICE/PREFIX_CloudTrace_REGION-PROJECT_YYYY-MM-DDTHH-MM-SSZ_RANDOM16.json.gz

Month and day carry no zero padding (as in CTS); the folder date and the name's stamp are the moment the
file was planned, in UTC. ``SERVICE/`` is left out when the tracker does not sort by service, ``PREFIX_``
when it has no file prefix; ``.json`` replaces ``.json.gz`` for ``compress_type: json``; an encrypted file
ends in ``.enc`` after either. RANDOM16 is derived from what the file holds (:func:`file_random`), so a
transfer repeated after a crash names the same object instead of adding a second one.

Digests (one chain per tracker, so one folder; CTS puts one under ``Digest/SERVICE``)::

    CloudTraces/REGION/YYYY/M/D/TRACKER/Digest/PREFIX_CloudTrace-Digest_REGION-PROJECT_YYYY-MM-DDTHH-MM-SSZ.json.gz
    ... .json.gz.sig          the digest's signature (JSON), a sibling object so that copies keep it
    ... CloudTrace-Leaves_... .bin.gz   the Merkle leaf hashes the digest's checkpoint added

The digest's folder date is the start of the hour it covers; its stamp is the hour's end.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

ROOT = "CloudTraces"
DIGEST_FOLDER = "Digest"
SIGNATURE_SUFFIX = ".sig"
ENCRYPTED_SUFFIX = ".enc"
_STAMP = "%Y-%m-%dT%H-%M-%SZ"

Compress = Literal["gzip", "json"]
Kind = Literal["trace", "digest", "signature", "leaves"]


def stamp(ms: int) -> str:
    """``2016-05-30T16-20-56Z``: the time in a file name (hyphens, not colons, in the time part)."""
    return datetime.fromtimestamp(ms // 1000, UTC).strftime(_STAMP)


def parse_stamp(text: str) -> int:
    """Milliseconds since the epoch of a :func:`stamp`; ValueError if it is not one."""
    return int(datetime.strptime(text, _STAMP).replace(tzinfo=UTC).timestamp()) * 1000


def tracker_folder(region: str, tracker: str, ms: int) -> str:
    """``CloudTraces/REGION/YYYY/M/D/TRACKER`` for the UTC day of ``ms``, no zero padding."""
    day = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{ROOT}/{region}/{day.year}/{day.month}/{day.day}/{tracker}"


def _prefixed(prefix: str | None, name: str) -> str:
    return f"{prefix}_{name}" if prefix else name


def file_random(tracker_id: str, service: str | None, first_seq: int, last_seq: int) -> str:
    """The RANDOM16 of a trace file: 16 hex digits fixed by the tracker and the log range it holds."""
    seed = f"{tracker_id}\n{service or ''}\n{first_seq}\n{last_seq}".encode()
    return hashlib.sha256(seed).hexdigest()[:16]


def trace_file_key(
    *,
    region: str,
    project_id: str,
    tracker: str,
    service: str | None,
    prefix: str | None,
    at_ms: int,
    random16: str,
    compress: Compress = "gzip",
    encrypted: bool = False,
) -> str:
    """The object key of a trace file; ``service`` None when the tracker does not sort by service."""
    folder = tracker_folder(region, tracker, at_ms)
    if service:
        folder = f"{folder}/{service}"
    ext = ".json.gz" if compress == "gzip" else ".json"
    if encrypted:
        ext += ENCRYPTED_SUFFIX
    name = _prefixed(prefix, f"CloudTrace_{region}-{project_id}_{stamp(at_ms)}_{random16}{ext}")
    return f"{folder}/{name}"


def digest_key(*, region: str, project_id: str, tracker: str, prefix: str | None, hour_start_ms: int) -> str:
    """The object key of the digest covering the hour that starts at ``hour_start_ms``."""
    folder = tracker_folder(region, tracker, hour_start_ms)
    end = hour_start_ms + 3_600_000
    name = _prefixed(prefix, f"CloudTrace-Digest_{region}-{project_id}_{stamp(end)}.json.gz")
    return f"{folder}/{DIGEST_FOLDER}/{name}"


def signature_key(digest: str) -> str:
    """The sibling object that holds a digest's signature."""
    return digest + SIGNATURE_SUFFIX


def leaves_key(*, region: str, project_id: str, tracker: str, prefix: str | None, hour_start_ms: int) -> str:
    """The object holding the Merkle leaf hashes (32 bytes each, gzip) that hour's digest refers to."""
    folder = tracker_folder(region, tracker, hour_start_ms)
    end = hour_start_ms + 3_600_000
    name = _prefixed(prefix, f"CloudTrace-Leaves_{region}-{project_id}_{stamp(end)}.bin.gz")
    return f"{folder}/{DIGEST_FOLDER}/{name}"


_FOLDER = re.compile(
    rf"^{ROOT}/(?P<region>[^/]+)/(?P<year>\d{{4}})/(?P<month>[1-9]\d?)/(?P<day>[1-9]\d?)/(?P<tracker>[^/]+)/"
    r"(?:(?P<sub>[^/]+)/)?(?P<name>[^/]+)$"
)
_NAME = re.compile(
    r"^(?:(?P<prefix>.*)_)?CloudTrace(?P<what>|-Digest|-Leaves)_(?P<region>.+)-(?P<project>[0-9A-Za-z]+)_"
    r"(?P<stamp>\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ)(?:_(?P<random>[0-9a-f]{16}))?"
    r"(?P<ext>\.json\.gz|\.json|\.bin\.gz)(?P<enc>\.enc)?(?P<sig>\.sig)?$"
)


@dataclass(frozen=True, slots=True)
class ArchiveKey:
    """What an object key says about the object (the verifier compares it with what the object holds)."""

    key: str
    kind: Kind
    region: str
    year: int
    month: int
    day: int
    tracker: str
    #: the service folder of a trace file (None when not sorted by service)
    service: str | None
    prefix: str | None
    project_id: str
    stamp_ms: int
    random16: str | None
    compress: Compress
    encrypted: bool


def parse_key(key: str) -> ArchiveKey | None:
    """Read an object key written by this module; None for anything else (a stranger in the bucket)."""
    folder = _FOLDER.match(key)
    if not folder:
        return None
    name = _NAME.match(folder["name"])
    if not name or name["region"] != folder["region"]:
        return None
    kind = _kind(name["what"], bool(name["sig"]), folder["sub"], bool(name["random"]))
    if kind is None:
        return None
    try:
        at = parse_stamp(name["stamp"])
    except ValueError:
        return None
    return ArchiveKey(
        key=key,
        kind=kind,
        region=folder["region"],
        year=int(folder["year"]),
        month=int(folder["month"]),
        day=int(folder["day"]),
        tracker=folder["tracker"],
        service=folder["sub"] if kind == "trace" else None,
        prefix=name["prefix"],
        project_id=name["project"],
        stamp_ms=at,
        random16=name["random"],
        compress="json" if name["ext"] == ".json" else "gzip",
        encrypted=bool(name["enc"]),
    )


def _kind(what: str, sig: bool, sub: str | None, has_random: bool) -> Kind | None:
    if what == "":
        return "trace" if has_random and not sig and sub != DIGEST_FOLDER else None
    if sub != DIGEST_FOLDER or has_random:
        return None
    if what == "-Digest":
        return "signature" if sig else "digest"
    return None if sig else "leaves"
