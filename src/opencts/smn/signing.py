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
Instances that share one PostgreSQL database must therefore share the key file too.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

KEY_FILE = "smn_signing_key.pem"
CERT_FILE = "smn_signing_cert.pem"
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


def _write_once(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``data`` unless it exists; two processes starting at once agree on one file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_or_create(data_dir: Path) -> Signer:
    """Load the signing key from the data dir; the first start creates an RSA-2048 key (0600) and a cert."""
    data_dir.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = data_dir / KEY_FILE, data_dir / CERT_FILE
    if not key_path.exists():
        new = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = new.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_once(key_path, pem, 0o600)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{key_path} does not hold an RSA private key")
    if not cert_path.exists():
        _write_once(cert_path, _self_signed(key), 0o644)
    cert_pem = cert_path.read_bytes()
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    cert_key = x509.load_pem_x509_certificate(cert_pem).public_key()
    if cert_key.public_bytes(serialization.Encoding.DER, public) != key.public_key().public_bytes(
        serialization.Encoding.DER, public
    ):
        cert_pem = _self_signed(key)  # the key was replaced by hand: never publish a certificate that lies
    return Signer.from_private_key(key, cert_pem)
