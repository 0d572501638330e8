"""Generators, hashing and sealing of secrets.

Passwords are hashed with Argon2id (argon2-cffi's defaults). Secrets the service must use again (an AK/SK
secret key verifies HMAC signatures; the SMN signing key signs) cannot be hashed, so they are sealed:
AES-256-GCM under the master key, with a random 96-bit nonce and the row's identity as associated data,
so a sealed value copied onto another row does not open. A sealed value is text::

    sealed:v1:<base64 of nonce || ciphertext || tag>

The master key is 32 random bytes written in base64 (44 characters, ``openssl rand -base64 32``).
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import string
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_hasher = PasswordHasher()
_AK_ALPHABET = string.ascii_uppercase + string.digits
_SK_ALPHABET = string.ascii_letters + string.digits


def new_id() -> str:
    """32 hex characters: the shape of Huawei Cloud domain, project and user ids."""
    return secrets.token_hex(16)


def new_access_key() -> str:
    return "".join(secrets.choice(_AK_ALPHABET) for _ in range(20))


def new_secret_key() -> str:
    return "".join(secrets.choice(_SK_ALPHABET) for _ in range(40))


def new_password() -> str:
    return secrets.token_urlsafe(15)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@cache
def _decoy_hash() -> str:
    """The hash of a random password nobody knows, made with the same parameters as every real hash."""
    return _hasher.hash(secrets.token_urlsafe(32))


def check_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches. Without a hash (no such user, or one without a password) the same
    Argon2 work is spent on a decoy, so the time a login takes does not tell which user names exist."""
    try:
        return _hasher.verify(password_hash or _decoy_hash(), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


SEALED_PREFIX = "sealed:v1:"
MASTER_KEY_BYTES = 32
_NONCE_BYTES = 12


class MasterKeyError(Exception):
    """The master key is missing, malformed or not the one the database's secrets are sealed under.

    The message says what to fix; the service refuses to start rather than run with secrets it cannot use.
    """


class SealedValueError(Exception):
    """A sealed value does not open under this key and associated data (wrong key, moved or damaged)."""


def new_master_key() -> str:
    """A fresh master key, in the text form settings and the key file hold."""
    return base64.b64encode(os.urandom(MASTER_KEY_BYTES)).decode()


def parse_master_key(text: str, *, source: str) -> bytes:
    """The 32 key bytes of ``text`` (standard or URL-safe base64); ``source`` names it in errors."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != MASTER_KEY_BYTES:
        raise MasterKeyError(
            f"{source} is not a master key: it must be {MASTER_KEY_BYTES} random bytes in base64 "
            "(44 characters), e.g. the output of `openssl rand -base64 32`"
        )
    return raw


class SecretBox:
    """Seals and opens secrets under the master key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != MASTER_KEY_BYTES:
            raise MasterKeyError(f"a master key is {MASTER_KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, *, context: str) -> str:
        """Encrypt ``plaintext``; ``context`` (e.g. ``credentials:<access key>``) must be given to open it."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext, context.encode())
        return SEALED_PREFIX + base64.b64encode(nonce + sealed).decode()

    def open(self, value: str, *, context: str) -> bytes:
        if not is_sealed(value):
            raise SealedValueError(f"{context}: the stored value is not sealed")
        try:
            raw = base64.b64decode(value[len(SEALED_PREFIX) :], validate=True)
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
        except (InvalidTag, binascii.Error, ValueError):
            raise SealedValueError(
                f"{context}: the stored value does not open under the master key"
            ) from None


def is_sealed(value: str) -> bool:
    return value.startswith(SEALED_PREFIX)


def credential_context(access_key: str) -> str:
    """The associated data of an access key's sealed secret key: the row it belongs to."""
    return f"credentials:{access_key}"
