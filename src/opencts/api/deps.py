"""What handlers need, named: the service container, the body reader, the project guard."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from opencts.config import Settings
from opencts.consumers import LogSignal
from opencts.errors import PayloadTooLarge, UnsupportedMediaType
from opencts.iam.authenticate import Authenticator
from opencts.iam.secrets import SecretBox
from opencts.notifications.cache import MatcherCache
from opencts.store import Database
from opencts.traces.writer import TraceWriter
from opencts.trackers.recording import PolicyCache

if TYPE_CHECKING:
    from opencts.archive.digests import DigestWriter
    from opencts.archive.storage import ObjectStore
    from opencts.archive.transfer import Transfer
    from opencts.archive.verification_worker import VerificationWorker
    from opencts.functions.service import FunctionService
    from opencts.kms import KeyService
    from opencts.smn.service import SmnService


@dataclass
class Services:
    """Everything the lifespan opened; handed to handlers through ``app.state``."""

    settings: Settings
    db: Database
    signal: LogSignal
    authenticator: Authenticator
    writer: TraceWriter
    #: seals and opens stored secrets under the deployment's master key
    box: SecretBox
    policies: PolicyCache = field(default_factory=PolicyCache)
    smn: SmnService | None = None
    #: compiled notification matchers; the notification routes invalidate a project's on every change
    matchers: MatcherCache = field(default_factory=MatcherCache)
    #: FunctionGraph: the runtime pool and the invocation queue's worker
    functions: FunctionService | None = None
    transfer: Transfer | None = None
    #: the archive: the key service (KMS) and the object store trackers' buckets live in
    kms: KeyService | None = None
    storage: ObjectStore | None = None
    #: the hourly digest files of validating trackers
    digests: DigestWriter | None = None
    #: verifications of trackers' archives, asked for or scheduled (``archive.verifications``)
    verifications: VerificationWorker | None = None


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def read_body(request: Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes, refusing larger bodies before they are buffered whole.

    The body is kept on the request so later readers (signature checks, audit) see the same bytes.
    """
    cached = getattr(request, "_body", None)
    if isinstance(cached, bytes):
        if len(cached) > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        return cached
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body
    return body


def require_json(request: Request) -> None:
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype not in ("application/json", ""):
        raise UnsupportedMediaType(f"send application/json, not {ctype}")
