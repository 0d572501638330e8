"""The credentials a handler's context hands out: its agency's, for its own project, for this invocation.

:class:`AgencyCredentials` is the function service's ``credentials`` issuer: called before each
invocation with the function and how long the invocation may take, it issues temporary credentials
(:mod:`opencts.iam.temporary`) that expire then, never later than the function's timeout plus
:data:`MARGIN_MS` after issue. A function without an agency (``xrole``) gets none, as on FunctionGraph,
where ``getToken()`` is empty unless the function has an agency. An agency that the object-storage
grant covers (:mod:`opencts.functions.agency_storage`) hands out the store's key pair too. Nothing here
logs a credential.
"""

from __future__ import annotations

from opencts.clock import now_ms
from opencts.functions.agency_storage import StorageGrant
from opencts.functions.repository import FunctionRecord
from opencts.functions.runtime import Credentials
from opencts.iam import temporary
from opencts.iam.secrets import SecretBox
from opencts.store import Database

#: room for the worker's start and the request in flight when the timeout strikes
MARGIN_MS = 10_000
#: never shorter than this: a handler needs a moment to use them at all
MIN_TTL_MS = 1_000


class AgencyCredentials:
    """``CredentialIssuer``: ``await issuer(record, seconds)`` → the runtime's ``Credentials`` or None."""

    def __init__(self, db: Database, box: SecretBox, *, storage: StorageGrant | None = None) -> None:
        self.db = db
        self.box = box
        #: the object store's keys the agencies it covers hand out (``agency_storage``)
        self.storage = storage

    async def __call__(self, record: FunctionRecord, seconds: int) -> Credentials | None:
        issued = await self.issue(record, seconds * 1000 + MARGIN_MS)
        if issued is None:
            return None
        storage = self.storage if self.storage is not None and self.storage.covers(record.xrole) else None
        return Credentials(
            access_key=issued.access_key,
            secret_key=issued.secret_key,
            security_token=issued.security_token,
            auth_token=issued.auth_token,
            expires_at_ms=issued.expires_at_ms,
            storage_access_key=storage.access_key if storage else "",
            storage_secret_key=storage.secret_key.get_secret_value() if storage else "",
        )

    async def issue(self, record: FunctionRecord, ttl_ms: int) -> temporary.Issued | None:
        agency = record.xrole
        if not agency:
            return None
        ttl = max(MIN_TTL_MS, min(ttl_ms, record.timeout * 1000 + MARGIN_MS))
        now = now_ms()
        return await self.db.write(
            lambda conn: temporary.issue(
                conn,
                box=self.box,
                project_id=record.project_id,
                func_id=record.func_id,
                agency=agency,
                now=now,
                ttl_ms=ttl,
            )
        )
