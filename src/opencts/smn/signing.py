"""The key that signs every HTTP(S) notification, and the tokens in confirmation and unsubscribe links.

Signature (``signature_version`` ``"v1"``), SMN/SNS style: take these fields of the JSON message, in this
order, skipping those that are absent or null::

    message, message_id, subject, subscribe_url, subscription_urn, timestamp, topic_urn, type,
    unsubscribe_url

and write each as ``<name>\\n<value>\\n``. The UTF-8 bytes of that string are signed with RSASSA-PKCS1-v1_5
and SHA-256 (SMN's SHA256withRSA); ``signature`` is the standard base64 of the result. The certificate is
served unauthenticated at ``signing_cert_url`` (``/v2/notifications/signing-cert.pem``); a receiver should
check that this URL points at the OpenCTS it subscribed to before trusting the key it fetches.

Link tokens are not random numbers kept somewhere: a token is an HMAC of the subscription URN under a key
derived from the signing key. The database keeps only the token's SHA-256 (to find the subscription when
the link is clicked), and the outbox renders the link when it sends, so no usable token is ever stored.

The key pair lives in the database (``server_keys``), the private key sealed under the master key
(:mod:`opencts.iam.keyring`), so every node sharing a database signs with the same key, publishes the same
certificate and renders the same link tokens. A key file an earlier version left in the data dir is
moved into the database on the first start that finds none there.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import Connection

from opencts.iam.keyring import get_key, put_key_once, set_key
from opencts.iam.secrets import MasterKeyError, SealedValueError, SecretBox

log = logging.getLogger(__name__)

#: where an earlier version kept the key pair, in the data dir
KEY_FILE = "smn_signing_key.pem"
CERT_FILE = "smn_signing_cert.pem"
#: ``server_keys`` rows: the sealed PKCS#8 private key, and the certificate (public, in PEM)
KEY_NAME = "smn_signing_key"
CERT_NAME = "smn_signing_cert"
SIGNATURE_VERSION = "v1"
SIGNED_FIELDS: tuple[str, ...] = (
    "message",
    "message_id",
    "subject",
    "subscribe_url",
    "subscription_urn",
    "timestamp",
    "topic_urn",
    "type",
    "unsubscribe_url",
)


def canonical_string(doc: Mapping[str, Any]) -> str:
    """The exact text that is signed (see the module docstring)."""
    parts = []
    for name in SIGNED_FIELDS:
        value = doc.get(name)
        if value is not None:
            parts.append(f"{name}\n{value}\n")
    return "".join(parts)


def verify_message(doc: Mapping[str, Any], public_key_pem: bytes | str) -> bool:
    """True if ``doc`` (a received notification) carries a valid v1 signature by this key or certificate.

    Meant for receivers (and our tests): ``public_key_pem`` is what ``signing_cert_url`` serves, either
    an X.509 certificate or a bare public key in PEM.
    """
    pem = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
    try:
        if b"BEGIN CERTIFICATE" in pem:
            key: Any = x509.load_pem_x509_certificate(pem).public_key()
        else:
            key = serialization.load_pem_public_key(pem)
        if not isinstance(key, rsa.RSAPublicKey) or doc.get("signature_version") != SIGNATURE_VERSION:
            return False
        signature = base64.b64decode(str(doc.get("signature", "")), validate=True)
        key.verify(signature, canonical_string(doc).encode(), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True)
class Signer:
    """The loaded key pair; signs messages and derives link tokens."""

    private_key: rsa.RSAPrivateKey
    cert_pem: bytes
    token_key: bytes

    @classmethod
    def from_private_key(cls, key: rsa.RSAPrivateKey, cert_pem: bytes | None = None) -> Signer:
        der = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        token_key = hashlib.sha256(b"opencts-smn-link-token\0" + der).digest()
        return cls(key, cert_pem or _self_signed(key), token_key)

    def sign(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Add ``signature_version`` and ``signature`` to ``doc`` (in place) and return it."""
        doc["signature_version"] = SIGNATURE_VERSION
        raw = self.private_key.sign(canonical_string(doc).encode(), padding.PKCS1v15(), hashes.SHA256())
        doc["signature"] = base64.b64encode(raw).decode()
        return doc

    def token(self, subscription_urn: str) -> str:
        """The secret of a subscription's confirm and unsubscribe links."""
        mac = hmac.new(self.token_key, subscription_urn.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _self_signed(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OpenCTS SMN message signing")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def load_or_create(conn: Connection, box: SecretBox, legacy_dir: Path | None = None) -> Signer:
    """The deployment's signing key from the database; the first start stores one (see the module doc).

    With ``legacy_dir``, a key file found there is adopted instead of generating a new key, so links
    already sent keep working; :func:`remove_legacy_files` deletes it once the database holds it.
    """
    sealed = get_key(conn, KEY_NAME)
    if sealed is None:
        key = _legacy_key(legacy_dir) or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        sealed = put_key_once(conn, KEY_NAME, box.seal(_der(key), context=KEY_NAME))
    try:
        loaded = serialization.load_der_private_key(box.open(sealed, context=KEY_NAME), password=None)
    except SealedValueError as exc:
        raise MasterKeyError(f"the SMN signing key cannot be read: {exc}") from None
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise MasterKeyError("the stored SMN signing key is not an RSA key")
    cert_pem = get_key(conn, CERT_NAME)
    if cert_pem is None:
        legacy = _legacy_cert(legacy_dir, loaded)
        cert_pem = put_key_once(conn, CERT_NAME, legacy or _self_signed(loaded).decode())
    if not _certifies(cert_pem.encode(), loaded):  # never publish a certificate that lies about the key
        cert_pem = _self_signed(loaded).decode()
        set_key(conn, CERT_NAME, cert_pem)
    return Signer.from_private_key(loaded, cert_pem.encode())


def remove_legacy_files(data_dir: Path, signer: Signer) -> None:
    """Delete the key file an earlier version wrote, once the database holds that very key."""
    key_path = data_dir / KEY_FILE
    key = _legacy_key(data_dir)
    if key is None:
        return
    if _der(key) != _der(signer.private_key):
        log.warning("%s is not the deployment's signing key (kept in the database); it is unused", key_path)
        return
    key_path.unlink(missing_ok=True)
    (data_dir / CERT_FILE).unlink(missing_ok=True)
    log.info("the SMN signing key of %s is now kept sealed in the database; the file is removed", key_path)


def _der(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _legacy_key(legacy_dir: Path | None) -> rsa.RSAPrivateKey | None:
    if legacy_dir is None or not (legacy_dir / KEY_FILE).is_file():
        return None
    key = serialization.load_pem_private_key((legacy_dir / KEY_FILE).read_bytes(), password=None)
    return key if isinstance(key, rsa.RSAPrivateKey) else None


def _legacy_cert(legacy_dir: Path | None, key: rsa.RSAPrivateKey) -> str | None:
    if legacy_dir is None or not (legacy_dir / CERT_FILE).is_file():
        return None
    pem = (legacy_dir / CERT_FILE).read_bytes()
    return pem.decode() if _certifies(pem, key) else None


def _certifies(cert_pem: bytes, key: rsa.RSAPrivateKey) -> bool:
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    try:
        cert_key = x509.load_pem_x509_certificate(cert_pem).public_key()
    except ValueError:
        return False
    return cert_key.public_bytes(serialization.Encoding.DER, public) == key.public_key().public_bytes(
        serialization.Encoding.DER, public
    )
