"""How a claimed delivery leaves: email over SMTP, SMS through the operator's gateway, signed HTTP(S) POSTs.

Each send either returns (the peer accepted: SMTP 250 after DATA, HTTP 2xx) or raises
:class:`~opencts.smn.worker.DeliveryFailed`; the worker turns that into a retry or a dead letter.
Every send carries the message id (``X-Smn-Message-Id``; for email also a stable ``Message-ID``) so a
receiver can drop the rare duplicate that at-least-once delivery allows.

HTTP(S) body of a notification (JSON, signed as :mod:`opencts.smn.signing` describes)::

    {"type": "Notification", "message_id", "topic_urn", "subject", "message", "timestamp",
     "unsubscribe_url", "signature_version": "v1", "signature", "signing_cert_url"}

and of a confirmation: ``{"type": "SubscriptionConfirmation", "message_id", "topic_urn",
"subscription_urn", "subscribe_url", "message", "timestamp", ...signature fields}``; the receiver confirms
by GETting ``subscribe_url``.
"""

from __future__ import annotations

import email.policy
import hashlib
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Any
from urllib.parse import quote

import aiosmtplib
import httpx
import orjson

from opencts import __version__
from opencts.config import Settings
from opencts.iam.secrets import SealedValueError, SecretBox
from opencts.smn.model import settable_header, text_for
from opencts.smn.signing import Signer
from opencts.smn.ssrf import EndpointRefused, check_url
from opencts.smn.subscriptions import open_headers
from opencts.smn.topics import iso
from opencts.smn.worker import DeliveryFailed, Job

USER_AGENT = f"OpenCTS-SMN/{__version__}"
#: SMTP's rules, but headers fold only past RFC 5322's 998-character limit: a URL in angle brackets has no
#: place to fold, and at 78 characters the generator would turn List-Unsubscribe into RFC 2047 encoded
#: words that no mail client reads as a link
WIRE_POLICY = email.policy.SMTP.clone(max_line_length=998)


class Links:
    """The URLs OpenCTS puts in messages, all under the public base URL."""

    def __init__(self, public_url: str, signer: Signer) -> None:
        self.base = public_url.rstrip("/")
        self.signer = signer

    @property
    def signing_cert(self) -> str:
        return f"{self.base}/v2/notifications/signing-cert.pem"

    def confirm(self, subscription_urn: str) -> str:
        return f"{self.base}/v2/notifications/subscriptions/confirm?token={self._token(subscription_urn)}"

    def unsubscribe(self, subscription_urn: str) -> str:
        return f"{self.base}/v2/notifications/subscriptions/unsubscribe?token={self._token(subscription_urn)}"

    def _token(self, subscription_urn: str) -> str:
        return quote(self.signer.token(subscription_urn), safe="")


def topic_title(job: Job) -> str:
    return job.display_name or job.topic_name


def http_document(job: Job, links: Links, signer: Signer) -> dict[str, Any]:
    """The signed JSON body for an HTTP(S) subscriber."""
    doc: dict[str, Any] = {
        "message_id": job.message_id,
        "topic_urn": job.topic_urn,
        "timestamp": iso(job.created_at),
        "signing_cert_url": links.signing_cert,
    }
    if job.kind == "confirmation":
        doc.update(
            type="SubscriptionConfirmation",
            subscription_urn=job.subscription_urn,
            subscribe_url=links.confirm(job.subscription_urn),
            message=(
                f"You are invited to subscribe to topic {job.topic_urn}. "
                "To confirm the subscription, visit the subscribe_url included in this message."
            ),
        )
    else:
        doc.update(
            type="Notification",
            subject=job.subject,
            message=text_for(job.protocol, job.message, job.message_structure),
            unsubscribe_url=links.unsubscribe(job.subscription_urn),
        )
    return signer.sign(doc)


def _set_text(msg: EmailMessage, text: str) -> None:
    """Plain 7-bit text when possible, so links stay greppable in the raw message (no quoted-printable)."""
    if text.isascii() and all(len(line) <= 990 for line in text.splitlines()):
        msg.set_content(text, cte="7bit")
    else:
        msg.set_content(text)


def email_message(job: Job, links: Links, sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = formataddr((topic_title(job) or "OpenCTS", sender))
    msg["To"] = job.endpoint
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    # stable across retries, distinct per recipient: a mail store can drop a resend
    tag = hashlib.sha256(job.subscription_urn.encode()).hexdigest()[:12]
    msg["Message-ID"] = f"<{job.message_id}.{tag}@opencts.smn>"
    msg["X-Smn-Message-Id"] = job.message_id
    msg["X-Smn-Topic-Urn"] = job.topic_urn
    if job.kind == "confirmation":
        msg["Subject"] = f"Confirm your subscription to {topic_title(job)}"
        _set_text(
            msg,
            f"You have been subscribed to the OpenCTS notification topic {job.topic_urn}.\n\n"
            "To confirm and start receiving messages, open this link:\n\n"
            f"{links.confirm(job.subscription_urn)}\n\n"
            "If you did not ask for this, ignore this message; nothing will be sent to you.\n",
        )
    else:
        msg["Subject"] = job.subject or topic_title(job)
        # RFC 2369; RFC 8058 one-click (the POST the link's page also sends) is offered only over HTTPS
        unsubscribe = links.unsubscribe(job.subscription_urn)
        msg["List-Unsubscribe"] = f"<{unsubscribe}>"
        if unsubscribe.startswith("https://"):
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        text = text_for("email", job.message, job.message_structure)
        _set_text(
            msg,
            f"{text}\n\n--\nTo stop receiving messages from this topic, open:\n"
            f"{links.unsubscribe(job.subscription_urn)}\n",
        )
    return msg


def sms_text(job: Job, links: Links) -> str:
    if job.kind == "confirmation":
        url = links.confirm(job.subscription_urn)
        return f"OpenCTS: confirm your subscription to {topic_title(job)}: {url}"
    return text_for("sms", job.message, job.message_structure)


class Channels:
    """The :class:`~opencts.smn.worker.Sender` the service uses: one method per protocol."""

    def __init__(self, settings: Settings, signer: Signer, links: Links, box: SecretBox) -> None:
        self.settings = settings
        self.signer = signer
        self.box = box
        self.links = links
        # No redirects (a 30x to an internal address would dodge the SSRF guard), no proxies from the env.
        self.http = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            timeout=settings.smn_send_timeout_seconds,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=settings.smn_concurrency * 2, max_keepalive_connections=32),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def send(self, job: Job) -> None:
        if job.protocol == "email":
            await self._email(job)
        elif job.protocol == "sms":
            await self._sms(job)
        elif job.protocol in ("http", "https"):
            await self._http(job)
        else:
            raise DeliveryFailed(f"protocol {job.protocol} is not supported", permanent=True)

    async def _email(self, job: Job) -> None:
        s = self.settings
        if not s.smtp_host:
            raise DeliveryFailed("email is not configured on this OpenCTS (set OPENCTS_SMTP_HOST)")
        password = s.smtp_password.get_secret_value() if s.smtp_password else None
        try:
            await aiosmtplib.send(
                email_message(job, self.links, s.smtp_from).as_bytes(policy=WIRE_POLICY),
                sender=s.smtp_from,
                recipients=[job.endpoint],
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_user or None,
                password=password if s.smtp_user else None,
                use_tls=s.smtp_security == "tls",
                start_tls=s.smtp_security == "starttls",
                timeout=s.smn_send_timeout_seconds,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            # the exception text is the server's reply or the socket error, never the password
            raise DeliveryFailed(f"SMTP {s.smtp_host}:{s.smtp_port}: {type(exc).__name__}: {exc}") from None

    async def _sms(self, job: Job) -> None:
        url = self.settings.sms_gateway_url
        if not url:
            raise DeliveryFailed("SMS is not configured on this OpenCTS (set OPENCTS_SMS_GATEWAY_URL)")
        body = {"number": job.endpoint, "text": sms_text(job, self.links), "message_id": job.message_id}
        await self._post(url, orjson.dumps(body), {"X-Smn-Message-Id": job.message_id}, "SMS gateway")

    async def _http(self, job: Job) -> None:
        try:
            await check_url(job.endpoint, allow_private=self.settings.allow_private_endpoints)
        except EndpointRefused as exc:
            raise DeliveryFailed(str(exc), permanent=True) from None
        doc = http_document(job, self.links, self.signer)
        try:
            custom = open_headers(self.box, job.subscription_urn, job.extension)
        except SealedValueError as exc:
            raise DeliveryFailed(str(exc), permanent=True) from None
        headers = {
            **{str(k): str(v) for k, v in custom.items() if settable_header(str(k))},
            "X-Smn-Message-Id": job.message_id,
            "X-Smn-Topic-Urn": job.topic_urn,
            "X-Smn-Message-Type": doc["type"],
        }
        await self._post(job.endpoint, orjson.dumps(doc), headers, "endpoint")

    async def _post(self, url: str, body: bytes, headers: dict[str, str], what: str) -> None:
        headers = {**headers, "Content-Type": "application/json; charset=utf-8"}
        try:
            resp = await self.http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{what} unreachable: {type(exc).__name__}: {exc}") from None
        if not 200 <= resp.status_code < 300:
            raise DeliveryFailed(f"{what} answered HTTP {resp.status_code}")
