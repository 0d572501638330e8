"""SMN's error codes. SMN answers errors as ``{"request_id", "code": "SMN.xxxxxxxx", "message"}``.

Two codes are the real service's (topic not found, subscription URN invalid: the Terraform provider and
the API reference match on them); the others follow SMN's numbering for the cases OpenCTS adds. An error
raised in the SMN domain carries its SMN code; any other error leaving an SMN route (authentication,
validation, quota) is given the SMN code of its kind by :func:`smn_code`.
"""

from __future__ import annotations

from opencts.errors import Conflict, OpenCTSError

INVALID_PARAMETER = "SMN.00010001"
UNAUTHORIZED = "SMN.00010002"
FORBIDDEN = "SMN.00010003"
NOT_FOUND = "SMN.00010004"
METHOD_NOT_ALLOWED = "SMN.00010005"
ALREADY_EXISTS = "SMN.00010006"
QUOTA_EXCEEDED = "SMN.00010007"
#: the real service's "topic not found"
TOPIC_NOT_FOUND = "SMN.00010008"
PAYLOAD_TOO_LARGE = "SMN.00010009"
TOO_MANY_REQUESTS = "SMN.00010010"
INTERNAL_ERROR = "SMN.00010011"
UNSUPPORTED_MEDIA_TYPE = "SMN.00010012"
#: a CTS key event notification publishes to the topic, so deleting it would drop alarms
TOPIC_IN_USE = "SMN.00010013"
#: the http(s) endpoint resolves to an address the SSRF guard refuses
ENDPOINT_REFUSED = "SMN.00011001"
#: email without an SMTP relay, or sms without a gateway, configured on this OpenCTS
PROTOCOL_NOT_CONFIGURED = "SMN.00011002"
#: the real service's "subscription_urn is invalid" (also an unknown or revoked link token)
SUBSCRIPTION_NOT_FOUND = "SMN.00011027"

#: the SMN code for an error raised with a CTS code (shared code: auth, body parsing, quotas)
_BY_CTS_CODE = {
    "CTS.0001": INVALID_PARAMETER,
    "CTS.0002": INVALID_PARAMETER,
    "CTS.0401": UNAUTHORIZED,
    "CTS.0403": FORBIDDEN,
    "CTS.0404": NOT_FOUND,
    "CTS.0405": METHOD_NOT_ALLOWED,
    "CTS.0409": ALREADY_EXISTS,
    "CTS.0412": QUOTA_EXCEEDED,
    "CTS.0413": PAYLOAD_TOO_LARGE,
    "CTS.0415": UNSUPPORTED_MEDIA_TYPE,
    "CTS.0429": TOO_MANY_REQUESTS,
    "CTS.0430": TOO_MANY_REQUESTS,
}
_BY_STATUS = {
    400: INVALID_PARAMETER,
    401: UNAUTHORIZED,
    403: FORBIDDEN,
    404: NOT_FOUND,
    405: METHOD_NOT_ALLOWED,
    409: ALREADY_EXISTS,
    413: PAYLOAD_TOO_LARGE,
    415: UNSUPPORTED_MEDIA_TYPE,
    422: INVALID_PARAMETER,
    429: TOO_MANY_REQUESTS,
}


def smn_code(code: str, status: int) -> str:
    """The SMN code for an error: its own if it has one, else the one of its CTS code or HTTP status."""
    if code.startswith("SMN."):
        return code
    return _BY_CTS_CODE.get(code) or _BY_STATUS.get(
        status, INTERNAL_ERROR if status >= 500 else INVALID_PARAMETER
    )


class TopicInUse(Conflict):
    """DeleteTopic of a topic that CTS key event notifications publish to."""

    code = TOPIC_IN_USE


class EndpointNotAllowed(OpenCTSError):
    """AddSubscription of an endpoint OpenCTS will not deliver to (SSRF guard, protocol not configured)."""

    status = 400
    code = ENDPOINT_REFUSED
