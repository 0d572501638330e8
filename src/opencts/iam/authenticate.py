"""Turn a request's credentials into a :class:`Principal`, or refuse it.

Two ways in, as on Huawei Cloud: an ``SDK-HMAC-SHA256`` signature made with an AK/SK, or an
``X-Auth-Token`` from a password login. Either may also be a function's temporary credential
(:mod:`opencts.iam.temporary`): a temporary AK/SK must sign its ``X-Security-Token``, and both stop at
their expiry and act in the function's project only.

Lookups are cached for a few seconds (a disabled key stops working within ``cache_seconds`` on other
processes, at once on this one), so a signed call costs no database trip and no decryption: the secret
key is unsealed once per lookup and kept with the cached credential.

Replays: any signed request is accepted again within the 15-minute date window, as by the cloud APIs,
unless it signs ``X-Request-Nonce``; such a write is served once (``iam.replays``).

What is refused, and why it is said the way it is: messages tell the caller what to fix (date skew, a
replay, a key that is disabled) but never echo a secret or the signature we expected.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, or_, select, update

from opencts.clock import now_ms
from opencts.errors import Unauthorized
from opencts.iam import replays, temporary
from opencts.iam import signature as sig
from opencts.iam.keyring import open_secret_key
from opencts.iam.principal import Principal
from opencts.iam.secrets import SealedValueError, SecretBox
from opencts.iam.tokens import token_hash
from opencts.sources import tokens as source_tokens
from opencts.store import Database
from opencts.store.tables import credentials, domains, group_members, group_roles, projects, tokens, users
from opencts.ttlcache import TtlCache

log = logging.getLogger("opencts.iam")

SKEW_MS = 15 * 60 * 1000
#: an access key's ``last_used`` is written at most this often: it is for people, to the minute, and a
#: write per signed request would double the writes of a busy producer
USE_RECORD_MS = 60_000
#: a signed header of random value that makes a write single-use (``HmacAuth(nonce=True)`` sends it)
NONCE_HEADER = "x-request-nonce"
_PROJECT_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    user_name: str
    enabled: bool
    domain_id: str
    domain_name: str
    roles: frozenset[str]


@dataclass(frozen=True, slots=True)
class Credential:
    access_key: str
    secret_key: str
    active: bool
    identity: Identity


def load_identity(conn: Connection, user_id: str) -> Identity | None:
    row = conn.execute(
        select(
            users.c.id,
            users.c.name,
            users.c.enabled,
            domains.c.id.label("domain_id"),
            domains.c.name.label("dn"),
        )
        .join(domains, domains.c.id == users.c.domain_id)
        .where(users.c.id == user_id)
    ).first()
    if row is None:
        return None
    roles = conn.execute(
        select(group_roles.c.role)
        .join(group_members, group_members.c.group_id == group_roles.c.group_id)
        .where(group_members.c.user_id == user_id)
    ).scalars()
    return Identity(row.id, row.name, bool(row.enabled), row.domain_id, row.dn, frozenset(roles))


def load_credential(conn: Connection, access_key: str, box: SecretBox) -> Credential | None:
    row = conn.execute(
        select(credentials.c.secret_key, credentials.c.status, credentials.c.user_id).where(
            credentials.c.access_key == access_key
        )
    ).first()
    if row is None:
        return None
    identity = load_identity(conn, row.user_id)
    if identity is None:
        return None
    try:
        secret_key = open_secret_key(box, access_key, row.secret_key)
    except SealedValueError:
        return None  # sealed under another key or damaged: unusable, refused like an unknown key
    return Credential(access_key, secret_key, row.status == "active", identity)


def load_token(conn: Connection, hashed: str) -> tuple[Identity, str | None, int, bool] | None:
    row = conn.execute(
        select(tokens.c.user_id, tokens.c.project_id, tokens.c.expires_at, tokens.c.revoked).where(
            tokens.c.token_hash == hashed
        )
    ).first()
    if row is None:
        return None
    identity = load_identity(conn, row.user_id)
    return (identity, row.project_id, int(row.expires_at), bool(row.revoked)) if identity else None


def record_use(conn: Connection, access_key: str, when: int) -> None:
    """Set ``last_used_at``, never backwards (another process may have recorded a later use)."""
    last = credentials.c.last_used_at
    conn.execute(
        update(credentials)
        .where(credentials.c.access_key == access_key, or_(last.is_(None), last < when))
        .values(last_used_at=when)
    )


class Authenticator:
    def __init__(
        self,
        db: Database,
        box: SecretBox,
        *,
        skew_ms: int = SKEW_MS,
        cache_seconds: float = 5.0,
        clock: Callable[[], int] = now_ms,
        use_record_ms: int = USE_RECORD_MS,
    ) -> None:
        self.db = db
        self.box = box
        self.skew_ms = skew_ms
        self.cache_seconds = cache_seconds
        self.clock = clock
        self.use_record_ms = use_record_ms
        #: access key -> when this process last wrote its ``last_used``
        self._use_recorded: dict[str, int] = {}
        self._use_writes: set[asyncio.Task[None]] = set()
        self._credentials: TtlCache[str, Credential | None] = TtlCache(cache_seconds)
        self._tokens: TtlCache[str, tuple[Identity, str | None, int, bool] | None] = TtlCache(cache_seconds)
        #: temporary credentials by "k:<access key>" or "t:<token hash>"
        self._temporary: TtlCache[str, temporary.Temporary | None] = TtlCache(cache_seconds)
        self._sources: TtlCache[str, source_tokens.Holder | None] = TtlCache(cache_seconds)
        self._projects: dict[str, str | None] = {}
        #: signature -> ms after which a replay would fail the date check anyway
        self._seen: dict[str, int] = {}

    def invalidate(self) -> None:
        """Forget cached credentials and tokens, e.g. after a key was disabled or a user removed."""
        self._credentials.invalidate()
        self._tokens.invalidate()
        self._temporary.invalidate()
        self._sources.invalidate()

    async def _temporary_lookup(self, key: str, by_token: bool) -> temporary.Temporary | None:
        """A temporary credential by access key or by X-Auth-Token, cached like the others."""
        cache_key = ("t:" + token_hash(key)) if by_token else ("k:" + key)
        find = temporary.by_token if by_token else temporary.by_access_key

        async def load(_stale: temporary.Temporary | None) -> temporary.Temporary | None:
            return await self.db.read(lambda conn: find(conn, key, self.box))

        return await self._temporary.get(cache_key, load)

    async def _find_key(
        self, parsed: sig.ParsedAuthorization, headers: Mapping[str, str]
    ) -> Credential | temporary.Temporary:
        """(3) A permanent access key, or a function's temporary one with its own signed security token."""
        cred = await self.credential(parsed.access_key)
        if cred is not None:
            return cred
        temp = await self._temporary_lookup(parsed.access_key, by_token=False)
        if temp is None:
            raise Unauthorized("authentication failed: unknown access key")
        if "x-security-token" not in parsed.signed_headers:
            raise Unauthorized("authentication failed: temporary credentials need a signed X-Security-Token")
        if not temp.token_matches(headers.get("x-security-token")):
            raise Unauthorized("authentication failed: the security token does not belong to this access key")
        return temp

    def _temporary_principal(self, temp: temporary.Temporary) -> Principal:
        if temp.expires_at <= self.clock():
            raise Unauthorized("authentication failed: the temporary credentials have expired")
        return Principal(
            user_id=temp.func_id,
            user_name=temp.agency,
            domain_id=temp.domain_id,
            domain_name=temp.domain_name,
            project_id=temp.project_id,
            roles=temp.roles,
            method="aksk",
            access_key=temp.access_key,
            temporary=True,
        )

    async def credential(self, access_key: str) -> Credential | None:
        async def load(_stale: Credential | None) -> Credential | None:
            return await self.db.read(lambda conn: load_credential(conn, access_key, self.box))

        return await self._credentials.get(access_key, load)

    async def project_domain(self, project_id: str) -> str | None:
        if not _PROJECT_ID.fullmatch(project_id):
            return None  # not an id we ever issue; also keeps NUL bytes and the like away from the database
        if project_id in self._projects:
            return self._projects[project_id]
        domain = await self.db.read(
            lambda conn: conn.execute(
                select(projects.c.domain_id).where(projects.c.id == project_id)
            ).scalar()
        )
        if domain is not None:  # remember hits only: a project created later must become visible
            self._projects[project_id] = domain
        return domain

    async def by_signature(
        self,
        *,
        authorization: str,
        method: str,
        raw_path: str,
        query_string: str,
        headers: Mapping[str, str],
        body: bytes,
        replay_safe: bool = False,
    ) -> Principal:
        """Steps: (1) parse the header, (2) check the date is within the skew window, (3) find the key,
        (4) recompute and compare the signature, (5) refuse a replayed write that signs a nonce, (6) the key
        must be active."""
        try:
            parsed = sig.parse_authorization(authorization)  # (1)
            date = headers.get("x-sdk-date")
            if not date:
                raise sig.SignatureError("X-Sdk-Date header is missing")
            now = self.clock()
            sig.check_clock_skew(sig.parse_sdk_date(date), now, self.skew_ms)  # (2)
        except sig.SignatureError as exc:
            raise Unauthorized(f"authentication failed: {exc}") from None
        key = await self._find_key(parsed, headers)  # (3)
        try:
            ok = sig.verify(  # (4)
                method=method,
                path=raw_path,
                query_string=query_string,
                headers=headers,
                body=body,
                secret_key=key.secret_key,
                parsed=parsed,
            )
        except sig.SignatureError as exc:
            raise Unauthorized(f"authentication failed: {exc}") from None
        if not ok:
            raise Unauthorized("authentication failed: the signature does not match the request")
        if NONCE_HEADER in parsed.signed_headers and method not in ("GET", "HEAD") and not replay_safe:
            await self._claim_once(parsed.signature, now)  # (5)
        if isinstance(key, temporary.Temporary):
            return self._temporary_principal(key)
        cred = key
        if not cred.active:  # (6)
            raise Unauthorized("authentication failed: the access key is disabled")
        if not cred.identity.enabled:
            raise Unauthorized("authentication failed: the user is disabled")
        self._note_use(cred.access_key, now)
        ident = cred.identity
        return Principal(
            user_id=ident.user_id,
            user_name=ident.user_name,
            domain_id=ident.domain_id,
            domain_name=ident.domain_name,
            project_id=headers.get("x-project-id"),
            roles=ident.roles,
            method="aksk",
            access_key=cred.access_key,
        )

    async def _claim_once(self, signature: str, now: int) -> None:
        """Refuse a signed write seen before, when it signs a nonce.

        The SDK's signature has one-second resolution, so a client that sends the same write twice in a
        second sends the same signature twice; refusing it would break the SDK, and the cloud APIs bound
        replays by the date window alone. A client that signs a nonce header asks for more: its signatures
        are unique, so one seen before is a replay. Reads and ingest are never claimed.
        """
        self._forget_old(now)
        replay = Unauthorized("authentication failed: this signed request was already used (replay)")
        if signature in self._seen:  # this process served it: no need to ask the database
            raise replay
        expires_at = now + self.skew_ms
        self._seen[signature] = expires_at
        if not await self.db.write(
            lambda conn: replays.claim(conn, signature, expires_at=expires_at, now=now)
        ):
            raise replay  # another process served it

    async def by_token(self, token: str) -> Principal:
        hashed = token_hash(token)

        async def load(
            _stale: tuple[Identity, str | None, int, bool] | None,
        ) -> tuple[Identity, str | None, int, bool] | None:
            return await self.db.read(lambda conn: load_token(conn, hashed))

        found = await self._tokens.get(hashed, load)
        if found is None:
            temp = await self._temporary_lookup(token, by_token=True)
            if temp is None:
                raise Unauthorized("authentication failed: unknown token")
            return dataclasses.replace(self._temporary_principal(temp), method="token", access_key=None)
        identity, project_id, expires_at, revoked = found
        if revoked:
            raise Unauthorized("authentication failed: the token was revoked (logged out)")
        if expires_at <= self.clock():
            raise Unauthorized("authentication failed: the token has expired")
        if not identity.enabled:
            raise Unauthorized("authentication failed: the user is disabled")
        return Principal(
            user_id=identity.user_id,
            user_name=identity.user_name,
            domain_id=identity.domain_id,
            domain_name=identity.domain_name,
            project_id=project_id,
            roles=identity.roles,
            method="token",
        )

    async def by_source_token(self, token: str) -> Principal:
        """A source token (``Authorization: Bearer``): it acts in its project, as its source, and only so."""
        hashed = token_hash(token)

        async def load(_stale: source_tokens.Holder | None) -> source_tokens.Holder | None:
            return await self.db.read(lambda conn: source_tokens.lookup(conn, hashed))

        found = await self._sources.get(hashed, load)
        if found is None:
            raise Unauthorized("authentication failed: unknown source token")
        if found.token.revoked_at is not None:
            raise Unauthorized("authentication failed: the source token was revoked")
        return Principal(
            user_id=found.token.id,
            user_name=found.token.name,
            domain_id=found.domain_id,
            domain_name=found.domain_name,
            project_id=found.token.project_id,
            roles=frozenset(),
            method="source",
            source=found.token.source,
        )

    def forget_source_tokens(self) -> None:
        """After a revocation: this process refuses the token from the next request on."""
        self._sources.invalidate()

    def _note_use(self, access_key: str, now: int) -> None:
        """Record that the key authenticated, at most once per ``use_record_ms`` per key, beside the
        request rather than in its way: the write is a task of its own, and the request does not wait."""
        if now - self._use_recorded.get(access_key, now - self.use_record_ms) < self.use_record_ms:
            return
        if len(self._use_recorded) > 10_000:
            self._use_recorded.clear()
        self._use_recorded[access_key] = now
        task = asyncio.get_running_loop().create_task(self._record_use(access_key, now))
        self._use_writes.add(task)
        task.add_done_callback(self._use_writes.discard)

    async def _record_use(self, access_key: str, when: int) -> None:
        try:
            await self.db.write(lambda conn: record_use(conn, access_key, when))
        except Exception:
            # only a display field is lost; the next use writes it again
            self._use_recorded.pop(access_key, None)
            log.warning("could not record when access key %s was last used", access_key, exc_info=True)

    async def close(self) -> None:
        """Let the ``last_used`` writes in flight finish, before the database closes."""
        await asyncio.gather(*self._use_writes, return_exceptions=True)

    def forget_token(self, token: str) -> None:
        self._tokens.invalidate(token_hash(token))

    def _forget_old(self, now: int) -> None:
        if len(self._seen) > 1000:
            for key in [k for k, until in self._seen.items() if until < now]:
                del self._seen[key]
